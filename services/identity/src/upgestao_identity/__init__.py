"""UpGestão identity service: Staff users and customers, their personal data, roles and permissions, authentication (issue 3)."""
