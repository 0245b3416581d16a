"""Fixtures of messaging's service tests: messaging on real RabbitMQ and PostgreSQL, beside a stand-in
for identity that answers the two RPCs messaging asks of it (``role_permissions``, ``directory``) as
identity's broker user, from a table the test fills. Callers act through signed test tokens."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from nameko.rpc import rpc
from upgestao_kernel.migrations import upgrade

ROLES = {
    "admin": ["conversations.read", "conversations.write", "conversations.record_incoming",
              "conversations.read_all", "teams.manage", "chats.use", "messages.moderate"],
    "supervisor": ["conversations.read", "conversations.write", "conversations.record_incoming",
                   "conversations.read_team", "chats.use"],
    "attendant": ["conversations.read", "conversations.write", "conversations.record_incoming", "chats.use"],
    "dpo": ["chats.use"],
}
PEOPLE: dict[str, dict[str, Any]] = {}  # id -> {"kind", "role", "active"}: what the stand-in's directory knows


class IdentityStandIn:
    """Identity's two answers to messaging, and nothing else (identity's own tests cover identity)."""

    name = "identity"

    @rpc
    def role_permissions(self) -> dict:
        return {"roles": ROLES}

    @rpc
    def directory(self, ids: list[str]) -> dict:
        return {"items": {i: PEOPLE[i] for i in ids if i in PEOPLE}}


class Desk:
    """Messaging and the identity stand-in, with callers acting as people of the directory."""

    def __init__(self, run_service, amqp_uri: str) -> None:
        from nameko.standalone.rpc import ServiceRpcProxy
        from upgestao_messaging.service import MessagingService

        PEOPLE.clear()
        self._proxy = ServiceRpcProxy
        self.amqp_uri = amqp_uri
        run_service(IdentityStandIn, lambda url: None)
        self.messaging = run_service(MessagingService, "upgestao_messaging:migrations")
        self.db = sa.create_engine(os.environ["MESSAGING_DATABASE_URL"])
        self._contexts: list = []

    def person(self, kind: str = "staff", role: str | None = "attendant", active: bool = True) -> str:
        pid = str(uuid.uuid4())
        PEOPLE[pid] = {"kind": kind, "role": role if kind == "staff" else None, "active": active}
        return pid

    def caller(self, user_id: str | None = None, *, service: str | None = None, timeout: float = 15,
               **headers: str):
        from upgestao_kernel.testing import service_amqp_uri
        from upgestao_kernel.testing_tokens import acting_as

        context = {**(acting_as(user_id, PEOPLE[user_id]["role"]) if user_id else {}), **headers}
        uri = service_amqp_uri(self.amqp_uri, service) if service else self.amqp_uri
        ctx = self._proxy("messaging", {"AMQP_URI": uri, "serializer": "json"}, context_data=context,
                          timeout=timeout)
        self._contexts.append(ctx)
        return ctx.start()

    def rows(self, query: str, **params) -> list:
        with self.db.connect() as conn:
            return conn.execute(sa.text(query), params).all()

    def close(self) -> None:
        for ctx in self._contexts:
            ctx.stop()
        self.db.dispose()


@pytest.fixture
def desk(run_service, amqp_uri, monkeypatch):
    monkeypatch.setenv("MESSAGING_SNOOZE_SWEEP_INTERVAL_S", "0.2")
    room = Desk(run_service, amqp_uri)
    yield room
    room.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def messaging_database(request, tmp_path) -> str:
    """The URL of a database at messaging's migrations' head: a SQLite file, or a fresh PostgreSQL database
    (the adapters' tests run on both, as the service may)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'messaging.sqlite3'}"
    else:
        url = request.getfixturevalue("database_factory")("messaging")
    upgrade("upgestao_messaging:migrations", url)
    return url
