"""The networks: layers, the generator, motion, heatmaps, the discriminators."""
