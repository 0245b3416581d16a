"""The notifier's adapters layer."""
