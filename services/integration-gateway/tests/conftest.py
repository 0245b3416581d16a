"""Gateway test platform: the gateway (with test-only routes), the four services
and a probe service, started once per module on the real RabbitMQ and
PostgreSQL, driven over HTTP with ``requests``."""

from __future__ import annotations

import base64
import importlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import eventlet
import jwt
import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eventlet.event import Event
from marshmallow import Schema, fields, validate
from nameko.containers import ServiceContainer
from nameko.extensions import DependencyProvider
from upgestao_gateway.access.authentication import bearer_token
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.http.bodies import BinaryResponse, RawBody, StreamResponse
from upgestao_gateway.entrypoints.http.problems import PROBLEM_BASE, Problem
from upgestao_gateway.entrypoints.http.responses import Reply
from upgestao_gateway.entrypoints.http.routing import route
from upgestao_gateway.entrypoints.http.streaming import Stream
from upgestao_gateway.service import GatewayService
from upgestao_kernel.config import env_prefix
from upgestao_kernel.listen_ports import free_port
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.schema import outbox
from upgestao_kernel.service_registry import service_definitions
from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database, wait_for
from werkzeug.wrappers import Response

# the services behind the gateway: name -> (service class, migrations), from their entry points
SERVICES = {name: (definition.service_class, definition.migrations)
            for name, definition in service_definitions().items() if name != "gateway"}


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
        "admin-token": Principal(actor_id="user-admin", role="admin", session_id="sess-1",
                                 permissions=frozenset({"private.read", "admin.read"})),
        "member-token": Principal(actor_id="user-member", role="member", session_id="sess-2",
                                  permissions=frozenset({"private.read"})),
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


class StreamQuery(Schema):
    lines = fields.Integer(load_default=3, validate=validate.Range(min=0))
    endless = fields.Boolean(load_default=False)
    fail_at = fields.Integer(load_default=-1)
    per_chunk = fields.Integer(load_default=1, validate=validate.Range(min=1))


class StreamEvents:
    """What the /test/stream generators went through (shared with the tests)."""

    closed = Event()


class ItemSchema(Schema):
    item_id = fields.Integer(required=True)


ANY_OBJECT = {"type": "object"}
IMAGES = ("image/jpeg", "image/png", "image/webp")
PHOTO_LIMIT = 2 * 1024 * 1024


class GatewayUnderTest(GatewayService):
    authenticator = TokenTable()
    readiness_timeout_s = 0.5
    stream_events = StreamEvents

    @route("POST", "/test/echo", personal_data=False, body=EchoSchema, query=EchoQuery, response=EchoReply, status=201)
    def echo(self, request, body, query):
        return {**body, **query, "unexpected": "dropped by the response schema"}

    @route("GET", "/test/boom", personal_data=False, response=ANY_OBJECT)
    def boom(self, request):
        raise RuntimeError("secret-internal-detail")

    @route("GET", "/test/items/<int:item_id>", personal_data=False, response=ItemSchema, errors=(404,))
    def item(self, request, item_id):
        if item_id == 0:
            raise Problem("not-found", "No item 0.")
        if item_id == 1:
            return Reply({"item_id": 1}, status=202, headers={"Location": "/test/items/1"})
        return {"item_id": item_id}

    @route("GET", "/test/context", personal_data=False, response=ANY_OBJECT)
    def context(self, request):
        return self.rpc.probe.context()

    @route("GET", "/test/private", personal_data=False, auth="required", permission="private.read", response=ANY_OBJECT)
    def private(self, request):
        return {"actor_id": request.principal.actor_id, "downstream": self.rpc.probe.context()}

    @route("GET", "/test/admin", personal_data=False, auth="required", permission="admin.read", response=ANY_OBJECT)
    def admin(self, request):
        return {"ok": True}

    @route("PUT", "/test/photo", personal_data=False, body=RawBody(IMAGES, max_bytes=PHOTO_LIMIT), response=ANY_OBJECT)
    def put_photo(self, request, body):
        return {"bytes": len(body), "type": request.mimetype, "head": body[:4].hex()}

    @route("GET", "/test/photo", personal_data=False, response=BinaryResponse(IMAGES, "The photo"))
    def get_photo(self, request):
        return Response(b"\x89PNG\r\n\x1a\n", content_type="image/png")

    @route("GET", "/test/stream", personal_data=False, query=StreamQuery,
           response=StreamResponse("application/x-ndjson", "Numbered lines"))
    def stream(self, request, query):
        def lines():
            n = 0
            try:
                while query["endless"] or n < query["lines"]:
                    if n == query["fail_at"]:
                        raise RuntimeError("broken mid-stream")
                    # an RPC per chunk: the worker's dependencies (and context) serve the whole stream
                    context = self.rpc.probe.context()
                    chunk = "".join(json.dumps({"n": n + i, "request_id": context.get("request_id")}) + "\n"
                                    for i in range(query["per_chunk"]))
                    n += query["per_chunk"]
                    yield chunk
            finally:
                if query["endless"]:
                    StreamEvents.closed.send(n)

        return Stream(lines(), headers={"X-Stream": "yes"})

    @route("GET", "/test/not-a-stream", personal_data=False, response=ANY_OBJECT)
    def not_a_stream(self, request):
        return Stream(iter(["a\n"]))

    @route("GET", "/test/slow", personal_data=False, response=ANY_OBJECT, errors=(503,))
    def slow(self, request):
        return {"answer": self.rpc.call("probe", "sleep", 1.0, timeout=0.2)}

    @route("GET", "/test/nowhere", personal_data=False, response=ANY_OBJECT, errors=(503,))
    def nowhere(self, request):
        return {"answer": self.rpc.call("no-such-service", "health")}


# -- access tokens ---------------------------------------------------------------------


class Issuer:
    """Signs access tokens the way the identity service does, with keys made by the test."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}

    def new_key(self, kid: str | None = None) -> str:
        kid = kid or f"k-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = Ed25519PrivateKey.generate()
        return kid

    def jwk(self, kid: str) -> dict:
        raw = self.keys[kid].public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}

    def jwks(self, *kids: str) -> dict:
        return {"keys": [self.jwk(kid) for kid in kids]}

    def claims(self, *, sub: str = "user-1", sid: str | None = None, role: str = "attendant",
               iat: int | None = None, ttl: int = 900) -> dict:
        iat = int(time.time()) if iat is None else iat
        return {"iss": "upgestao-identity", "aud": "upgestao", "sub": sub, "sid": sid or f"sess-{uuid.uuid4().hex}",
                "role": role, "iat": iat, "exp": iat + ttl, "jti": uuid.uuid4().hex}

    def token(self, kid: str, claims: dict | None = None, *, signing_key: Ed25519PrivateKey | None = None,
              **claim_overrides) -> str:
        payload = {**(claims or self.claims()), **claim_overrides}
        payload = {key: value for key, value in payload.items() if value is not None}
        return jwt.encode(payload, signing_key or self.keys[kid], algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture(scope="session")
def issuer() -> Issuer:
    return Issuer()


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

    def close(self) -> None:
        self.session.close()



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
        # identity puts its built-in roles and first admin in place after it starts (and reports not ready
        # until then): tests begin on a platform that is ready, not on one still setting itself up
        wait_for(lambda: platform.client.get("/readyz").status_code == 200, timeout=30, interval=0.2)
        yield platform
    finally:
        platform.client.session.close()
        # stopped together (each waits up to the kernel's 0.1 s consumer poll: nameko_ext.reconnect)
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


# -- a gateway before one fake service (the route tests) -------------------------------------------


class RoutesGateway:
    """A running gateway, driven over HTTP, whose own database holds the audit records of its refusals."""

    def __init__(self, base_url: str, engine: sa.Engine) -> None:
        self.base_url = base_url
        self.engine = engine
        self.session = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        return self.request("GET", path, token, **kwargs)

    def denials(self, request_id: str) -> list[dict]:
        """The audit records the gateway wrote (to its outbox) for one request."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.body).where(outbox.c.exchange == "audit")).scalars().all()
        return [body for body in rows if body.get("request_id") == request_id]

    @staticmethod
    def problem(response: requests.Response, status: int, slug: str) -> dict:
        """The problem document of ``response``, asserted to be ``status`` and of type ``slug``."""
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        body = response.json()
        assert body["type"] == PROBLEM_BASE + slug
        return body


class TokenTable:
    """Authenticates from a fixed table (bearer token -> principal): who holds which permission, no keys."""

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self.principals = dict(principals)

    def authenticate(self, request) -> Principal | None:
        token = bearer_token(request)
        return None if token is None else self.principals.get(token)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def routes_gateway(tmp_path_factory) -> Iterator[Callable[[type, Mapping[str, Principal]], RoutesGateway]]:
    """``start(fake_service, principals)``: the fake service (the real one's RPC methods as its contract
    names them) and a gateway before it that knows the callers from ``principals`` (token -> principal), on
    their own vhost of the real broker, the gateway on its own migrated database; both stopped, and the vhost
    and database dropped, when the module ends."""
    mp = pytest.MonkeyPatch()
    suffix = uuid.uuid4().hex[:10]
    vhost, database = f"upgestao-routes-{suffix}", f"t_gateway_routes_{suffix}"
    amqp_uri = create_vhost(vhost)
    database_url = create_database(database)
    containers: list[ServiceContainer] = []
    engine = sa.create_engine(database_url)
    started: list[RoutesGateway] = []

    def start(fake_service: type, principals: Mapping[str, Principal]) -> RoutesGateway:
        assert not started, "one gateway a module"
        gateway_service = type("RoutesGatewayService", (GatewayService,), {"authenticator": TokenTable(principals)})
        mp.setenv("UPGESTAO_ENV", "test")
        mp.setenv("UPGESTAO_DATA_DIR", str(tmp_path_factory.mktemp("var")))
        mp.setenv("AMQP_URI", amqp_uri)
        mp.setenv(f"{env_prefix('gateway')}_DATABASE_URL", database_url)
        upgrade("upgestao_gateway:migrations", database_url)
        port = free_port()
        for service_cls, extra in ((fake_service, {}), (gateway_service, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"})):
            container = ServiceContainer(service_cls, {"AMQP_URI": amqp_uri, "serializer": "json", **extra})
            container.start()
            containers.append(container)
        wait_for(lambda: listening(port), timeout=10, interval=0.02)
        started.append(RoutesGateway(f"http://127.0.0.1:{port}", engine))
        return started[0]

    try:
        yield start
    finally:
        for running in started:
            running.session.close()
        for container in reversed(containers):
            container.kill()
        engine.dispose()
        drop_database(database)
        delete_vhost(vhost)
        mp.undo()
