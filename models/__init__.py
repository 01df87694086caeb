"""Generators, the scene document, checkpoints, training and metrics. Plain PyTorch: no Qt here.

Sub-packages by what depends on what: document/ (no torch), nets/, io/, data/, training/,
metrics/, tools/; render.py and synthesis.py turn a scene into pixels."""
