"""Use cases of the privacy service (no nameko here)."""
