"""Metrics: co-move ratio, block distortion, style-swap locality, domain FD (DESIGN.md)."""
