"""UpGestão identity service: staff users and customers, their personal data,
roles and permissions, authentication (issue 3)."""
