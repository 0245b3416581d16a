"""UpGestão notifier service: E-mail delivery with per-recipient tracking and retries (R6.1, R10.1, R11.1)."""
