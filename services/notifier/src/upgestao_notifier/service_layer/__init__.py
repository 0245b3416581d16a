"""The notifier's service_layer layer."""
