"""Fitting a generator to a picture the user brings (issue 26): layout.py finds where the
objects are, optimize.py fits the scene's latents (and, optionally, the weights) to it."""
