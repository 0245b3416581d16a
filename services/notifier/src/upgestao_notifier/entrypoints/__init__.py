"""The notifier's entrypoints layer."""
