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
        """``status`` "ok" only once the service can serve: its database answers and its start-up
        tasks are done (``not_ready_reason``); otherwise "starting" with the reason."""
        database = self.db.ping()  # type: ignore[attr-defined]
        reason = self.not_ready_reason()
        if reason is not None:
            return {"service": self.name, "status": "starting", "reason": reason, "database": database}
        return {"service": self.name, "status": "ok", "database": database}

    def not_ready_reason(self) -> str | None:
        """Override: why the service cannot serve yet (``None``: it can)."""
        return None
