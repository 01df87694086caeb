"""The scene document and its files: scenes, sessions, atomic file writing. No torch."""
