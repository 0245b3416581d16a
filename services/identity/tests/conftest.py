"""Fixtures of the identity service tests: the service on real RabbitMQ and PostgreSQL,
and RPC callers acting as a given user (context data as the gateway sends it)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from upgestao_kernel.testing import wait_for

ADMIN_CONTEXT = {"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "admin"}


class IdentityHarness:
    def __init__(self, config: dict, database_url: str) -> None:
        self.config = config
        self.database_url = database_url
        self.engine = sa.create_engine(database_url)
        self._proxies: list = []

    def caller(self, actor_id: str | None = None, role: str | None = None, source_ip: str = "203.0.113.7",
               request_id: str | None = None):
        from nameko.standalone.rpc import ServiceRpcProxy

        context = {"source_ip": source_ip}
        if actor_id:
            context.update(actor_id=actor_id, actor_role=role)
        if request_id:
            context["request_id"] = request_id
        ctx = ServiceRpcProxy("identity", self.config, context_data=context, timeout=15)
        self._proxies.append(ctx)
        return ctx.start()

    def admin(self):
        return self.caller(**{"actor_id": ADMIN_CONTEXT["actor_id"], "role": "admin"})

    def close(self) -> None:
        for ctx in self._proxies:
            ctx.stop()
        self.engine.dispose()


@pytest.fixture
def identity(run_service, database_factory, service_env, monkeypatch):
    """The identity service (bcrypt cost 4 for speed) with the built-in roles defined."""
    from upgestao_identity.service import IdentityService
    from upgestao_kernel.migrations import upgrade

    monkeypatch.setenv("IDENTITY_BCRYPT_COST", "4")
    url = database_factory("identity")
    upgrade("upgestao_identity:migrations", url)
    run_service(IdentityService, None, database_url=url)
    harness = IdentityHarness({"AMQP_URI": service_env["AMQP_URI"], "serializer": "json"}, url)
    with harness.engine.connect() as conn:
        wait_for(lambda: conn.execute(sa.text("SELECT count(*) FROM roles")).scalar() == 4)
    yield harness
    harness.close()
