"""Adapters of the identity service to the outside world (hashing, storage, ...)."""
