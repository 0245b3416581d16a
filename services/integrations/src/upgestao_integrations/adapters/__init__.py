"""UpGestão integrations service."""
