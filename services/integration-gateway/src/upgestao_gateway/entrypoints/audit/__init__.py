"""The routes of the privacy service's audit log (and their schemas)."""
