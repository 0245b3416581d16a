"""UpGestão privacy service: The audit log, data-subject requests, consent, incidents (D3, R5, R6, R7)."""
