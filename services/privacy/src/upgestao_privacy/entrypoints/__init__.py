"""nameko extensions of the privacy service (thin: they call the service layer)."""
