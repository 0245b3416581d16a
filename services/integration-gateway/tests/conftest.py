"""Gateway test platform: the gateway (with test-only routes), the four services
and a probe service, started once per module on the real RabbitMQ and
PostgreSQL, driven over HTTP with ``requests``."""

from __future__ import annotations

import importlib
import socket
import time
import uuid
from dataclasses import dataclass, field

import eventlet
import pytest
import requests
from marshmallow import Schema, fields, validate
from nameko.containers import ServiceContainer
from nameko.extensions import DependencyProvider
from upgestao_gateway.auth import Principal, bearer_token
from upgestao_gateway.problems import Problem
from upgestao_gateway.service import GatewayService
from upgestao_gateway.web import Reply, route
from upgestao_kernel.config import env_prefix
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database

SERVICES = {
    "identity": ("upgestao_identity.service:IdentityService", "upgestao_identity:migrations"),
    "messaging": ("upgestao_messaging.service:MessagingService", "upgestao_messaging:migrations"),
    "privacy": ("upgestao_privacy.service:PrivacyService", "upgestao_privacy:migrations"),
    "notifier": ("upgestao_notifier.service:NotifierService", "upgestao_notifier:migrations"),
}


# -- test-only services -----------------------------------------------------------


class WorkerData(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx.data


class ProbeService:
    """Says what context data reached it, or answers late."""

    name = "probe"
    data = WorkerData()

    @rpc
    def context(self) -> dict:
        return dict(self.data)

    @rpc
    def sleep(self, seconds: float) -> str:
        eventlet.sleep(seconds)
        return "late"


class TokenTable:
    """Test-only authenticator: a fixed table of tokens."""

    principals = {
        "admin-token": Principal(actor_id="user-admin", role="admin", session_id="sess-1"),
        "member-token": Principal(actor_id="user-member", role="member", session_id="sess-2"),
    }

    def authenticate(self, request):
        token = bearer_token(request)
        return None if token is None else self.principals.get(token)


class LineSchema(Schema):
    sku = fields.String(required=True, validate=validate.Length(min=1))
    quantity = fields.Integer(required=True, validate=validate.Range(min=1))


class EchoSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=40))
    lines = fields.List(fields.Nested(LineSchema), required=True)


class EchoQuery(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    tag = fields.List(fields.String(), load_default=list)


class EchoReply(Schema):
    title = fields.String()
    lines = fields.List(fields.Nested(LineSchema))
    limit = fields.Integer()
    tag = fields.List(fields.String())


class ItemSchema(Schema):
    item_id = fields.Integer(required=True)


ANY_OBJECT = {"type": "object"}


class GatewayUnderTest(GatewayService):
    authenticator = TokenTable()
    readiness_timeout_s = 0.5

    @route("POST", "/test/echo", body=EchoSchema, query=EchoQuery, response=EchoReply, status=201)
    def echo(self, request, body, query):
        return {**body, **query, "unexpected": "dropped by the response schema"}

    @route("GET", "/test/boom", response=ANY_OBJECT)
    def boom(self, request):
        raise RuntimeError("secret-internal-detail")

    @route("GET", "/test/items/<int:item_id>", response=ItemSchema, errors=(404,))
    def item(self, request, item_id):
        if item_id == 0:
            raise Problem("not-found", "No item 0.")
        if item_id == 1:
            return Reply({"item_id": 1}, status=202, headers={"Location": "/test/items/1"})
        return {"item_id": item_id}

    @route("GET", "/test/context", response=ANY_OBJECT)
    def context(self, request):
        return self.rpc.probe.context()

    @route("GET", "/test/private", auth="required", response=ANY_OBJECT)
    def private(self, request):
        return {"actor_id": request.principal.actor_id, "downstream": self.rpc.probe.context()}

    @route("GET", "/test/admin", auth="required", roles=("admin",), response=ANY_OBJECT)
    def admin(self, request):
        return {"ok": True}

    @route("GET", "/test/slow", response=ANY_OBJECT, errors=(503,))
    def slow(self, request):
        return {"answer": self.rpc.call("probe", "sleep", 1.0, timeout=0.2)}

    @route("GET", "/test/nowhere", response=ANY_OBJECT, errors=(503,))
    def nowhere(self, request):
        return {"answer": self.rpc.call("no-such-service", "health")}


# -- HTTP client ---------------------------------------------------------------------


class Client:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass
class Platform:
    config: dict
    client: Client
    host: str
    port: int
    containers: dict[str, ServiceContainer] = field(default_factory=dict)

    def start(self, name: str, service_cls: type, extra_config: dict | None = None) -> None:
        container = ServiceContainer(service_cls, {**self.config, **(extra_config or {})})
        container.start()
        self.containers[name] = container

    def stop(self, name: str) -> None:
        self.containers.pop(name).stop()


def _load(dotted: str) -> type:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    databases: list[str] = []
    vhost = f"upgestao-gateway-test-{uuid.uuid4().hex[:10]}"
    amqp_uri = create_vhost(vhost)
    port = free_port()
    platform = Platform(
        config={"AMQP_URI": amqp_uri, "serializer": "json"},
        client=Client(f"http://127.0.0.1:{port}"),
        host="127.0.0.1",
        port=port,
    )
    try:
        mp.setenv("UPGESTAO_ENV", "test")
        mp.setenv("UPGESTAO_DATA_DIR", str(tmp_path_factory.mktemp("var")))
        mp.setenv("AMQP_URI", amqp_uri)
        migrations = {name: mig for name, (_, mig) in SERVICES.items()}
        migrations["gateway"] = "upgestao_gateway:migrations"
        for name, script in migrations.items():
            db = f"t_{name}_{uuid.uuid4().hex[:10]}"
            url = create_database(db)
            databases.append(db)
            mp.setenv(f"{env_prefix(name)}_DATABASE_URL", url)
            upgrade(script, url)
        for name, (dotted, _) in SERVICES.items():
            platform.start(name, _load(dotted))
        platform.start("probe", ProbeService)
        platform.start("gateway", GatewayUnderTest, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"})
        wait_until_listening("127.0.0.1", port)
        yield platform
    finally:
        platform.client.session.close()
        # Each container takes ~2 s to stop its consumers: stop them together.
        list(eventlet.GreenPool().imap(platform.stop, list(platform.containers)))
        for db in databases:
            drop_database(db)
        delete_vhost(vhost)
        mp.undo()


@pytest.fixture
def client(platform) -> Client:
    return platform.client


@pytest.fixture
def fast_teardown():
    """Overrides nameko's autouse fixture of that name, which stops the consumers
    of every container started during a test when that test ends: the platform's
    containers live for the whole module (one is restarted by a test)."""
    yield
