"""Training: configs, losses, the loop, and resumable state on disk."""
