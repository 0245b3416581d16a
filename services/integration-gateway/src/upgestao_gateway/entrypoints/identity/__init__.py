"""The routes of the identity service: people, roles, authentication (and their schemas)."""
