"""Readiness of a ``run`` process: its nameko containers, their broker consumers and databases (issue 16).

The probe listener and the checks that know nothing of nameko are :mod:`upgestao_kernel.probes`; what
looks inside nameko's containers lives here, with the other nameko extensions.
"""

from __future__ import annotations

from collections.abc import Iterable

from nameko.messaging import QueueConsumer

from ..probes import DATABASE_CHECK_TIMEOUT_S, DATABASE_CHECK_TTL_S, CachedCheck, Check, database_problem
from .database import Database


class ServiceReadiness:
    """Readiness of ``run``: the nameko runner once started (``runner``, set by the command), its containers
    running, every queue consumer connected to the broker, every ``Database`` answering (cached)."""

    def __init__(self, *, database_ttl_s: float = DATABASE_CHECK_TTL_S,
                 database_timeout_s: float = DATABASE_CHECK_TIMEOUT_S) -> None:
        self.runner = None
        self._database_ttl_s = database_ttl_s
        self._database_timeout_s = database_timeout_s
        self._database_checks: dict[int, CachedCheck] = {}

    def __call__(self) -> list[Check]:
        runner = self.runner
        if runner is None:
            return [("service", "starting")]
        containers = list(runner.containers)
        stopped = [c for c in containers if not c.started or c._died.ready()]
        if not containers or stopped:
            return [("service", "stopped")]
        return [("service", None), ("broker", broker_problem(containers)),
                ("database", self._database_problem(containers))]

    def _database_problem(self, containers: Iterable) -> str | None:
        for engine in _engines(containers):
            check = self._database_checks.get(id(engine))
            if check is None:
                check = self._database_checks[id(engine)] = CachedCheck(
                    lambda engine=engine: database_problem(engine, self._database_timeout_s), self._database_ttl_s)
            problem = check()
            if problem is not None:
                return problem
        return None


def broker_problem(containers: Iterable) -> str | None:
    """``None`` when every queue consumer of ``containers`` holds a connected broker connection (tracked by
    :mod:`.nameko_ext.reconnect`)."""
    for container in containers:
        for extension in container.extensions:
            if isinstance(extension, QueueConsumer):
                connection = getattr(extension, "broker_connection", None)
                if connection is None or not connection.connected:
                    return "not connected"
    return None


def _engines(containers: Iterable) -> list:
    engines = []
    for container in containers:
        for dependency in container.dependencies:
            engine = getattr(dependency, "engine", None) if isinstance(dependency, Database) else None
            if engine is not None and all(engine is not e for e in engines):
                engines.append(engine)
    return engines
