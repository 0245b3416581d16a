"""Fixtures of the notifier's service tests: identity and the notifier on real RabbitMQ and PostgreSQL,
identity's relay publishing its events, and a real SMTP server (aiosmtpd, in a process of its own)."""

from __future__ import annotations

import os
from datetime import date

import pytest
import sqlalchemy as sa
from upgestao_kernel.testing import wait_for
from upgestao_notifier.testing_smtp import smtp_server  # noqa: F401  (the fixture)

PASSWORD = "correct horse battery staple"
ADDRESS = {"street": "Rua das Flores", "number": "100", "district": "Centro", "city": "São Paulo", "state": "SP",
           "postal_code": "01001-000", "country": "BR"}


def _adult(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


class Mailroom:
    """Identity (whose notices the notifier reads), its relay, the notifier and the SMTP server."""

    def __init__(self, run_service, amqp_uri: str, smtp) -> None:
        from nameko.standalone.rpc import ServiceRpcProxy
        from upgestao_identity.service import IdentityService
        from upgestao_kernel.db import create_engine
        from upgestao_kernel.relay import OutboxRelay
        from upgestao_kernel.testing import service_amqp_uri
        from upgestao_notifier.service import NotifierService

        self.smtp = smtp
        self._proxy = ServiceRpcProxy
        self.identity = run_service(IdentityService, "upgestao_identity:migrations")
        wait_for(lambda: self.identity.health()["status"] == "ok", 20)
        self.identity_url = os.environ["IDENTITY_DATABASE_URL"]
        self.identity_db = create_engine(self.identity_url)
        self.admin_id = self._rows(self.identity_db, "SELECT id FROM users WHERE role = 'admin'")[0].id
        self.relay = OutboxRelay(create_engine(self.identity_url), service_amqp_uri(amqp_uri, "identity"),
                                 services=["identity"])
        self.notifier = run_service(NotifierService, "upgestao_notifier:migrations")
        self.notifier_db = create_engine(os.environ["NOTIFIER_DATABASE_URL"])
        self.config = {"AMQP_URI": amqp_uri, "serializer": "json"}
        self._contexts: list = []

    @staticmethod
    def _rows(engine, query: str, **params) -> list:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params).all()

    def caller(self, service: str, context: dict | None = None):
        ctx = self._proxy(service, self.config, context_data=context or {}, timeout=15)
        self._contexts.append(ctx)
        return ctx.start()

    def as_admin(self, service: str):
        from upgestao_kernel.testing_tokens import acting_as

        return self.caller(service, acting_as(self.admin_id, "admin"))

    def add_user(self, n: int, **over) -> dict:
        data = {"full_name": f"Bia Lima {n}", "email": f"bia{n}@example.com.br", "phone": "+55 11 91234-5678",
                "birth_date": _adult(30), "job_title": "Atendente", "gender": None, "role": "attendant",
                "address": ADDRESS, "password": PASSWORD, **over}
        return self.as_admin("identity").create_user(data)

    def request_reset(self, email: str) -> None:
        self.caller("identity", {"source_ip": "198.51.100.7"}).request_password_reset(email)
        self.publish()

    def publish(self) -> int:
        from upgestao_kernel.relay import drain

        return drain(self.relay)

    def deliveries(self, **where) -> list:
        clause = " AND ".join(f"{k} = :{k}" for k in where) or "TRUE"
        return self._rows(self.notifier_db, f"SELECT * FROM deliveries WHERE {clause} ORDER BY created_at", **where)

    def published(self, event_type: str) -> list[dict]:
        from upgestao_kernel.schema import outbox

        with self.identity_db.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.body).where(outbox.c.routing_key == event_type)
                                .order_by(outbox.c.id)).all()
        return [r.body for r in rows]

    def close(self) -> None:
        for ctx in self._contexts:
            ctx.stop()
        self.relay.close()
        self.identity_db.dispose()
        self.notifier_db.dispose()


@pytest.fixture
def mail_env(monkeypatch, smtp_server):  # noqa: F811
    """The notifier's settings for tests: the test SMTP server, retries within a second."""
    env = {"SMTP_URL": smtp_server.url, "SMTP_TIMEOUT_S": "3", "NOTIFIER_RETRY_BASE_S": "0.3",
           "NOTIFIER_RETRY_FACTOR": "1", "NOTIFIER_MAX_ATTEMPTS": "4", "NOTIFIER_SWEEP_INTERVAL_S": "0.1",
           "NOTIFIER_PUBLIC_URL": "https://upgestao.test", "IDENTITY_BCRYPT_COST": "4",
           "UPGESTAO_ADMIN_EMAIL": "first.admin@example.com.br", "UPGESTAO_ADMIN_PASSWORD": PASSWORD,
           "UPGESTAO_ADMIN_BIRTH_DATE": _adult(40), "UPGESTAO_ADMIN_NAME": "Ada Admin"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def mailroom(run_service, amqp_uri, smtp_server, mail_env):  # noqa: F811
    room = Mailroom(run_service, amqp_uri, smtp_server)
    yield room
    room.close()
