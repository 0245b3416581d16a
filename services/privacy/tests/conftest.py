"""Fixtures of the privacy service tests: the service on real RabbitMQ and PostgreSQL,
a stand-in identity (role permissions only), a publisher of audit records and the
outbox relay of privacy itself (its own ``audit_query`` records come back through it)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from kombu import Connection
from nameko.rpc import rpc
from upgestao_kernel.audit import BATCH_KEY, AuditRecord
from upgestao_kernel.db import create_engine
from upgestao_kernel.relay import OutboxRelay
from upgestao_kernel.testing import service_amqp_uri, wait_for
from upgestao_kernel.testing_tokens import acting_as
from upgestao_kernel.topology import AUDIT_EXCHANGE, audit_exchange, audit_routing_key, declare_publishing

MIGRATIONS = "upgestao_privacy:migrations"
DPO = {"actor_id": "00000000-0000-4000-8000-00000000d0d0", "actor_role": "dpo"}
ATTENDANT = {"actor_id": "00000000-0000-4000-8000-00000000a77e", "actor_role": "attendant"}
# no proof, only claims: what anyone with broker credentials could send (the service must see nobody)
FORGED_DPO = dict(DPO)


class FakeIdentity:
    """Only what privacy asks of identity: which permissions each role grants."""

    name = "identity"

    @rpc
    def role_permissions(self) -> dict:
        return {"roles": {"dpo": ["audit.read"], "admin": ["users.read"], "attendant": []}}


def audit_record(**over) -> dict:
    """A valid wire-form audit record (what services publish on the ``audit`` exchange)."""
    fields = {
        "service": "identity", "action": "read", "resource_type": "user", "resource_id": str(uuid.uuid4()),
        "subject_id": str(uuid.uuid4()), "fields": ("email", "full_name"), "purpose": "profile",
        "actor_id": str(uuid.uuid4()), "actor_role": "admin", "request_id": uuid.uuid4().hex,
        "source_ip": "203.0.113.9", "occurred_at": datetime.now(UTC),
    }
    fields.update(over)
    return AuditRecord(**fields).to_message()


class PrivacyHarness:
    DPO = DPO
    ATTENDANT = ATTENDANT
    FORGED_DPO = FORGED_DPO
    record = staticmethod(audit_record)

    def __init__(self, run_service, service_env, database_url: str, config: dict, owner_url: str | None = None) -> None:
        self._run_service = run_service
        self.env = service_env
        self.database_url = database_url  # the runtime role's: what the service and its relay log in as
        self.owner_url = owner_url or database_url  # the migrations' (the tests read and tamper with it)
        self.config = config
        self.engine = sa.create_engine(self.owner_url)
        self.amqp_uri = service_env["AMQP_URI"]
        self.container = None
        self._proxies: list = []
        self._relay_stop: threading.Event | None = None

    # -- processes --------------------------------------------------------------------------
    def start(self):
        from upgestao_privacy.service import PrivacyService

        self.proxy = self._run_service(PrivacyService, None, database_url=self.database_url)
        return self.proxy

    def stop_service(self) -> None:
        """Stop the privacy containers started so far (the queue keeps what arrives meanwhile)."""
        for container, _ in self._run_service.started:
            if container.service_name == "privacy":
                container.stop()

    def start_relay(self) -> None:
        """Privacy's own outbox relay (its ``audit_query`` records go out through it)."""
        stop = self._relay_stop or threading.Event()
        relay = OutboxRelay(create_engine(self.database_url, pool_size=2), service_amqp_uri(self.amqp_uri, "privacy"),
                            services=["privacy"],
                            poll_interval_s=0.05)
        threading.Thread(target=relay.run, args=(stop,), daemon=True).start()
        self._relay_stop = stop

    def start_stream_feeder(self) -> None:
        """What privacy's relay process also runs: stored records onto the audit stream."""
        from upgestao_kernel.config import load_settings
        from upgestao_privacy.adapters.stream_feeder import relay_loops

        stop = self._relay_stop or threading.Event()
        for loop in relay_loops(load_settings("privacy")):
            threading.Thread(target=loop, args=(stop,), daemon=True).start()
        self._relay_stop = stop

    def close(self) -> None:
        if self._relay_stop is not None:
            self._relay_stop.set()
        for ctx in self._proxies:
            ctx.stop()
        self.engine.dispose()

    def caller(self, context: dict, request_id: str | None = None):
        from nameko.standalone.rpc import ServiceRpcProxy

        proven = context is DPO or context is ATTENDANT  # any other context is sent exactly as given
        data = acting_as(context["actor_id"], context["actor_role"]) if proven else dict(context)
        if request_id:
            data["request_id"] = request_id
        ctx = ServiceRpcProxy("privacy", self.config, context_data=data, timeout=15)
        self._proxies.append(ctx)
        return ctx.start()

    # -- audit records ------------------------------------------------------------------------
    def publish(self, records: list[dict], as_service: str | None = None) -> None:
        """Publish ``records``, each as its ``service``'s broker user (as ``as_service``'s, if given)."""
        by_sender: dict[str, list[dict]] = {}
        for record in records:
            by_sender.setdefault(as_service or record["service"], []).append(record)
        for sender, batch in by_sender.items():
            with Connection(service_amqp_uri(self.amqp_uri, sender), transport_options={"confirm_publish": True}) \
                    as conn:
                declare_publishing(conn.default_channel)
                producer = conn.Producer()
                for record in batch:
                    producer.publish(record, exchange=audit_exchange(), routing_key=audit_routing_key(
                        sender, record["action"]), message_id=record["audit_id"], delivery_mode=2,
                        serializer="json")

    def publish_batch(self, records: list[dict], as_service: str | None = None) -> str:
        """Publish ``records`` as one batch message (``{"records": [...]}``, what ``AuditEmitter.emit_many``
        sends) as the first record's ``service``'s broker user (``as_service``'s, if given); its message id."""
        sender = as_service or records[0]["service"]
        message_id = records[0]["audit_id"]
        self.publish_raw(json.dumps({BATCH_KEY: records}).encode(), message_id=message_id, as_service=sender,
                         routing_key=audit_routing_key(sender, records[0]["action"]))
        return message_id

    def publish_raw(self, body: bytes, message_id: str, as_service: str = "identity",
                    routing_key: str = "audit.identity.read") -> None:
        with Connection(service_amqp_uri(self.amqp_uri, as_service), transport_options={"confirm_publish": True}) \
                as conn:
            conn.Producer().publish(body, exchange=AUDIT_EXCHANGE, routing_key=routing_key,
                                    message_id=message_id, content_type="application/json",
                                    content_encoding="utf-8", delivery_mode=2)

    def scalar(self, sql: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM audit_records")).scalar_one()

    def wait_count(self, n: int, timeout: float = 20.0) -> int:
        wait_for(lambda: self.count() >= n, timeout=timeout)
        return self.count()

    def stored(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, leaf FROM audit_records ORDER BY seq")).all()
        return [{"seq": row.seq, **json.loads(row.leaf)} for row in rows]


@pytest.fixture(name="audit_record")
def audit_record_fixture():
    """``audit_record(**over)``: a valid wire-form record."""
    return audit_record


@pytest.fixture
def fake_identity(run_service, tmp_path):
    return run_service(FakeIdentity, None, database_url=f"sqlite:///{tmp_path / 'identity.sqlite3'}")


@pytest.fixture
def runtime_database(database_factory, monkeypatch):
    """A fresh PostgreSQL database migrated as its owner, with the runtime role the service logs in as
    (issue 11, finding 7): ``(owner_url, runtime_url)``; the role is dropped afterwards."""
    from upgestao_kernel.migrations import upgrade
    from upgestao_privacy.adapters.database_roles import create_runtime_role, default_runtime_role, runtime_url

    owner_url = database_factory("privacy")
    role = default_runtime_role(owner_url)
    admin = sa.create_engine(owner_url)
    with admin.begin() as conn:
        url = runtime_url(owner_url, role, create_runtime_role(conn, role))
    with monkeypatch.context() as patched:  # the migrations grant the runtime role what it needs
        patched.setenv("PRIVACY_MIGRATION_DATABASE_URL", owner_url)
        upgrade(MIGRATIONS, url)
    yield owner_url, url
    drop_role(admin, role)
    admin.dispose()


def drop_role(engine, role: str) -> None:
    """Drop a test's login role once its sessions are gone (the database itself is dropped after)."""
    quoted = engine.dialect.identifier_preparer.quote(role)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                     {"role": role})
        conn.exec_driver_sql(f"DROP OWNED BY {quoted}")
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {quoted}")


@pytest.fixture
def privacy(run_service, service_env, runtime_database, fake_identity, monkeypatch):
    """The privacy service on a fresh PostgreSQL database, logged in as the runtime role (the tests' own
    reads and edits use the owner's), checkpoints every second."""
    owner_url, url = runtime_database
    monkeypatch.setenv("PRIVACY_AUDIT_CHECKPOINT_INTERVAL_S", "1")
    harness = PrivacyHarness(run_service, service_env, url,
                             {"AMQP_URI": service_env["AMQP_URI"], "serializer": "json"}, owner_url=owner_url)
    harness.start()
    yield harness
    harness.close()
    harness.stop_service()  # before the runtime role is dropped
