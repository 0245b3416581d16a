"""The health RPC every service answers."""

from __future__ import annotations

from .rpc import rpc


class HealthRpc:
    """Mixin: ``health()`` says the service is up and its database answers;
    ``ping()`` answers without touching anything.

    The service class must have a ``db`` (:class:`Database`) dependency.
    """

    name: str

    @rpc
    def ping(self) -> dict:
        """No I/O at all: the cost of one RPC round trip (the benchmark baseline)."""
        return {"service": self.name}

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok", "database": self.db.ping()}  # type: ignore[attr-defined]
