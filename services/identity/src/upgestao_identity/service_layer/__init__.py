"""Use cases of the identity service: each takes a unit of work and plain values."""
