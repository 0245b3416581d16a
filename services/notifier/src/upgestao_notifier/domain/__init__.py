"""The notifier's domain layer."""
