"""Checkpoints, opening generators by name or file, video encoding."""
