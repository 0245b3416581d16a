"""Fixtures of the integrations service tests: the service on real RabbitMQ and PostgreSQL, small nameko
services standing in for the data's owners (identity's ``share_subjects``, ``role_permissions``; messaging's
``share_messages``), and a local HTTP receiver that verifies every delivery with the ``standardwebhooks``
package (not the project's signing code)."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import amqp
import pytest
from kombu import Connection
from upgestao_kernel.broker_identity import broker_user
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.testing import service_amqp_uri
from upgestao_kernel.topology import events_exchange_name

CUSTOMER = str(uuid.uuid4())
PERSON = {"email": "ana.souza@example.com.br", "name": "Ana Souza", "phone": "+5511987654321"}
SHARES: list[tuple] = []  # every share the fake owners answered: (owner, ids, fields or include_body, recipient)
MESSAGE = str(uuid.uuid4())  # the one conversation message the fake messaging holds
BODY = "Meu pedido 4411 não chegou"


class FakeIdentity:
    """What the integrations service asks of identity: permissions by role, and the audited shares."""

    name = "identity"

    @rpc
    def role_permissions(self) -> dict:
        return {"roles": {"admin": ["integrations.manage"], "attendant": []}}

    @rpc
    def share_subjects(self, subject_ids: list, fields: list, recipient: str, purpose: str) -> dict:
        SHARES.append(("identity", tuple(subject_ids), tuple(fields), recipient))
        return {"subjects": {sid: ({f: PERSON[f] for f in fields} if sid == CUSTOMER else None)
                             for sid in subject_ids}}


class FakeMessaging:
    name = "messaging"

    @rpc
    def share_messages(self, message_ids: list, include_body: bool, recipient: str, purpose: str) -> dict:
        SHARES.append(("messaging", tuple(message_ids), include_body, recipient))
        known = {"message_id": MESSAGE, "conversation_id": "c-1", "customer_id": CUSTOMER, "direction": "incoming",
                 "created_at": "2026-12-02T12:00:00+00:00", "edited_at": None, "deleted": False,
                 "attachment_count": 0, **({"body": BODY} if include_body else {})}
        return {"messages": {mid: (known if mid == MESSAGE else None) for mid in message_ids}}


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each path with its scripted statuses in turn (then 200); keeps every request."""

    url: str = ""
    script: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)
    received: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.received if d.path == path]

    def answer(self, path: str) -> tuple[int, dict]:
        with self.lock:
            queue = self.script.get(path) or []
            return queue.pop(0) if queue else (200, {})


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                state.received.append(Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, headers = state.answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def publish_event(amqp_uri: str, sender: str, event_type: str, data: dict, stream_id: str) -> str:
    """An event of ``sender`` on its events exchange, as its broker user (RabbitMQ checks the user_id)."""
    event_id = str(uuid.uuid4())
    body = {"event_id": event_id, "stream_id": stream_id, "version": 1, "type": event_type,
            "occurred_at": datetime.now(UTC).isoformat(), "actor": {"id": None, "role": "system"},
            "correlation_id": event_id, "causation_id": None, "data": data}
    vhost = unquote(urlsplit(amqp_uri).path[1:]) or "/"
    with Connection(service_amqp_uri(amqp_uri, sender), connect_timeout=5) as conn:
        channel = conn.channel()
        channel.confirm_select()
        channel.basic_publish_confirm(
            amqp.Message(json.dumps(body), content_type="application/json", content_encoding="utf-8",
                         message_id=event_id, delivery_mode=2, user_id=broker_user(sender, vhost)),
            exchange=events_exchange_name(sender), routing_key=event_type)
    return event_id


@pytest.fixture
def integrations_env(monkeypatch, service_env):
    """Retries within a second, the loopback allowed (the receiver), a fresh secrets key."""
    env = {"INTEGRATIONS_RETRY_DELAYS_S": "0,0.3,0.3", "INTEGRATIONS_POLL_S": "0.05", "INTEGRATIONS_TIMEOUT_S": "3",
           "UPGESTAO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
           "INTEGRATIONS_SECRETS_KEY": base64.b64encode(os.urandom(32)).decode()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class Hub:
    CUSTOMER = CUSTOMER
    PERSON = PERSON
    SHARES = SHARES
    MESSAGE = MESSAGE
    BODY = BODY

    def __init__(self, run_service, amqp_uri: str, tmp_path) -> None:
        from nameko.standalone.rpc import ServiceRpcProxy
        from upgestao_integrations.service import IntegrationsService
        from upgestao_kernel.testing_tokens import acting_as

        SHARES.clear()
        self.amqp_uri = amqp_uri
        run_service(FakeIdentity, None, database_url=f"sqlite:///{tmp_path / 'identity.sqlite3'}")
        run_service(FakeMessaging, None, database_url=f"sqlite:///{tmp_path / 'messaging.sqlite3'}")
        self.service = run_service(IntegrationsService, "upgestao_integrations:migrations")
        self._ctx = ServiceRpcProxy("integrations", {"AMQP_URI": amqp_uri, "serializer": "json"},
                                    context_data=acting_as(str(uuid.uuid4()), "admin"), timeout=15)
        self.admin = self._ctx.start()
        self.database_url = os.environ["INTEGRATIONS_DATABASE_URL"]

    def customer_registered(self, customer_id: str = CUSTOMER) -> str:
        return publish_event(self.amqp_uri, "identity", "identity.customer_registered.v1",
                             {"customer_id": customer_id, "fields": ["email", "full_name"]}, f"customer-{customer_id}")

    def message_created(self, message_id: str, *, private: bool = False) -> str:
        return publish_event(self.amqp_uri, "messaging", "messaging.message_created.v1", {
            "message_id": message_id, "conversation_id": "c-1", "chat_id": None, "customer_id": CUSTOMER,
            "author_id": None, "direction": "incoming", "private": private, "attachment_count": 0},
            f"message-{message_id}")

    def erasure_requested(self, request_id: str, mode: str = "deletion", recipients: list | None = None) -> str:
        return publish_event(self.amqp_uri, "privacy", "privacy.erasure_requested.v1", {
            "request_id": request_id, "subject_id": CUSTOMER, "mode": mode,
            "participants": ["identity", "integrations", "messaging"], "recipients": recipients or []},
            f"erasure-{request_id}")

    def close(self) -> None:
        self._ctx.stop()


@pytest.fixture
def hub(run_service, amqp_uri, integrations_env, tmp_path):
    h = Hub(run_service, amqp_uri, tmp_path)
    yield h
    h.close()
