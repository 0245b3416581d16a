"""The thin nameko layer of the identity service."""
