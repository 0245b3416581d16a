"""Access control end to end: identity's tokens verified by a running gateway,
revocations and permission changes learned from the access-events stream,
refusals audited. A fake identity service (RPC ``public_keys``,
``role_permissions``) stands in for the real one; tokens are signed here."""

from __future__ import annotations

import socket
import time
import uuid
from collections import Counter
from urllib.parse import quote

import jwt
import pytest
import requests
import sqlalchemy as sa
from kombu import Connection, Producer
from marshmallow import Schema, fields
from nameko.containers import ServiceContainer
from nameko.extensions import DependencyProvider
from upgestao_gateway.access.stream import QUEUE, declare_access_events
from upgestao_gateway.entrypoints.dependencies import AccessControl, JwtAuthentication
from upgestao_gateway.entrypoints.http.guards import deny
from upgestao_gateway.entrypoints.http.problems import PROBLEM_BASE
from upgestao_gateway.entrypoints.http.routing import route
from upgestao_gateway.service import GatewayService
from upgestao_gateway.settings import load_access_settings
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import SYSTEM_ACTOR, EventEnvelope, new_id, utcnow
from upgestao_kernel.listen_ports import free_port
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.schema import outbox
from upgestao_kernel.testing import (
    _api,
    create_vhost,
    delete_vhost,
    isolated_service,
    service_amqp_uri,
    wait_for,
)

ANY_OBJECT = {"type": "object"}
ROLES = {
    "admin": ["users.read", "users.create", "profile.read"],
    "attendant": ["profile.read"],
}


class IdentityState:
    """What the fake identity answers; tests add keys and roles (never remove shared ones)."""

    def __init__(self) -> None:
        self.jwks: list[dict] = []
        self.roles: dict[str, list[str]] = {role: list(p) for role, p in ROLES.items()}
        self.calls: Counter = Counter()


IDENTITY = IdentityState()


class WorkerData(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx.data


class FakeIdentity:
    name = "identity"
    data = WorkerData()

    @rpc
    def public_keys(self) -> dict:
        IDENTITY.calls["public_keys"] += 1
        return {"keys": list(IDENTITY.jwks)}

    @rpc
    def role_permissions(self) -> dict:
        IDENTITY.calls["role_permissions"] += 1
        return {"roles": {role: list(permissions) for role, permissions in IDENTITY.roles.items()}}

    @rpc
    def health(self) -> dict:
        return {"service": "identity", "status": "ok"}

    @rpc
    def ping(self) -> dict:
        return {"service": "identity"}

    @rpc
    def context(self) -> dict:
        return dict(self.data)

    @rpc
    def throttled(self) -> dict:
        raise ServiceError("too-many-requests", "Too many attempts; wait a little.", 429, {"retry_after": 30})


class NewUser(Schema):
    email = fields.Email(required=True)


class JwtGateway(GatewayService):
    authenticator = JwtAuthentication(key_refetch_interval_s=0.3)
    downstream_services = ("identity",)
    readiness_timeout_s = 1.0

    @route("GET", "/test/me", personal_data=False, auth="required", permission="profile.read", response=ANY_OBJECT)
    def me(self, request):
        principal = request.principal
        return {"actor_id": principal.actor_id, "role": principal.role, "session_id": principal.session_id,
                "permissions": sorted(principal.permissions), "expires_at": principal.expires_at.isoformat(),
                "downstream": self.rpc.identity.context()}

    @route("GET", "/test/users/<user_id>", personal_data=True, auth="required", permission="users.read",
           response=ANY_OBJECT)
    def user(self, request, user_id):
        return {"user_id": user_id}

    @route("POST", "/test/users", personal_data=True, auth="required", permission="users.create", body=NewUser,
           response=ANY_OBJECT, status=201)
    def create_user(self, request, body):
        return {"created": True}

    @route("GET", "/test/secret", personal_data=False, auth="required", permission="profile.read", response=ANY_OBJECT)
    def secret(self, request):
        if not request.principal.can("profile.secret"):
            raise deny(self, request, "profile.secret")
        return {"secret": True}

    @route("GET", "/test/throttled", personal_data=False, response=ANY_OBJECT, errors=(429,))
    def throttled(self, request):
        return self.rpc.identity.throttled()


# -- the platform: one broker vhost, the fake identity and a gateway, per module ----------



class Gateway:
    """A running gateway container and an HTTP session to it."""

    def __init__(self, container: ServiceContainer, port: int) -> None:
        self.container = container
        self.base_url = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        wait_for(self._listening, timeout=10, interval=0.02)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", int(self.base_url.rsplit(":", 1)[1])), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def access(self) -> AccessControl:
        return self.container.shared_extensions[AccessControl]

    def get(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.get(self.base_url + path, headers=headers, timeout=10, **kwargs)

    def post(self, path: str, token: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return self.session.post(self.base_url + path, headers=headers, timeout=10, **kwargs)


class AccessPlatform:
    def __init__(self, vhost: str, amqp_uri: str, database_url: str, issuer) -> None:
        self.vhost = vhost
        self.amqp_uri = amqp_uri
        self.engine = sa.create_engine(database_url)
        self.issuer = issuer
        self.kid = issuer.new_key()
        IDENTITY.jwks.append(issuer.jwk(self.kid))
        self.containers: list[ServiceContainer] = []
        self.gateway: Gateway | None = None

    def start(self, service_cls: type, amqp_uri: str | None = None, **config) -> ServiceContainer:
        container = ServiceContainer(service_cls, {"AMQP_URI": amqp_uri or self.amqp_uri, "serializer": "json",
                                                   **config})
        container.start()
        self.containers.append(container)
        return container

    def start_gateway(self, amqp_uri: str | None = None) -> Gateway:
        port = free_port()
        container = self.start(JwtGateway, amqp_uri, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
        return Gateway(container, port)

    def stop(self, gateway: Gateway, kill: bool = False) -> None:
        gateway.session.close()
        self.containers.remove(gateway.container)
        gateway.container.kill() if kill else gateway.container.stop()

    def token(self, role: str = "attendant", **claims) -> tuple[str, dict]:
        payload = self.issuer.claims(role=role, **claims)
        return self.issuer.token(self.kid, payload), payload

    def publish(self, event_type: str, data: dict, as_service: str | None = "identity") -> None:
        """Publish as identity's relay does (as identity's broker user; ``as_service=None``: as the
        administrator, whom nobody's service is); returns once the broker has confirmed it."""
        uri = service_amqp_uri(self.amqp_uri, as_service) if as_service else self.amqp_uri
        envelope = EventEnvelope(
            event_id=new_id(), stream_id=f"test-{uuid.uuid4().hex[:8]}", version=1, type=event_type,
            occurred_at=utcnow(), actor=SYSTEM_ACTOR, correlation_id=None, causation_id=None, data=data,
        )
        with Connection(uri, transport_options={"confirm_publish": True}) as connection:
            producer = Producer(connection.default_channel, serializer="json")
            producer.publish(envelope.to_message(), exchange="identity.events", routing_key=event_type,
                             delivery_mode=2, mandatory=True, retry=False)

    def revoke(self, session_id: str, user_id: str = "user-1") -> None:
        self.publish("identity.session_revoked.v1", {"session_id": session_id, "user_id": user_id,
                                                     "reason": "logout"})

    def audit_rows(self, request_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox).where(outbox.c.exchange == "audit")).all()
        return [dict(row._mapping) for row in rows if row.body.get("request_id") == request_id]


@pytest.fixture(scope="module")
def platform(issuer, tmp_path_factory):
    with isolated_service("gateway", "upgestao_gateway:migrations", tmp_path_factory.mktemp("var"),
                          "access-test") as isolated:
        platform = AccessPlatform(isolated.vhost, isolated.amqp_uri, isolated.database_url, issuer)
        try:
            platform.start(FakeIdentity)
            platform.gateway = platform.start_gateway()
            # The stream exists and is bound once the gateway has read it up to date:
            # only then are identity's events kept for gateways started later.
            assert platform.gateway.access.wait_current(10)
            yield platform
        finally:
            if platform.gateway is not None:
                platform.gateway.session.close()
            for container in reversed(platform.containers):
                container.kill()
            platform.engine.dispose()


@pytest.fixture
def gateway(platform) -> Gateway:
    return platform.gateway


@pytest.fixture
def fast_teardown():
    """Overrides nameko's autouse fixture: the module's containers outlive each test."""
    yield


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    return body


def assert_invalid_token(response, detail: str) -> None:
    body = assert_problem(response, 401, "unauthenticated")
    assert body["detail"] == detail
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="upgestao", error="invalid_token"'


# -- valid and invalid tokens ------------------------------------------------------------


def test_a_valid_token_authenticates_the_principal(platform, gateway):
    token, claims = platform.token("attendant", sub="user-42", sid="sess-42")
    response = gateway.get("/test/me", token, headers={"X-Request-ID": "access-me-0001"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["actor_id"], body["role"], body["session_id"]) == ("user-42", "attendant", "sess-42")
    assert body["permissions"] == ["profile.read"]
    assert body["expires_at"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(claims["exp"])))
    # the token itself travels on: each service verifies who asks from identity's signature
    assert body["downstream"] == {"request_id": "access-me-0001", "source_ip": "127.0.0.1",
                                  "actor_id": "user-42", "actor_role": "attendant", "access_token": token}


def test_no_token_is_401_with_a_bearer_challenge(gateway):
    response = gateway.get("/test/me")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="upgestao"'


def test_an_expired_token_is_401_expired(platform, gateway):
    token, _ = platform.token(iat=int(time.time()) - 1000)
    assert_invalid_token(gateway.get("/test/me", token), "The access token has expired.")


@pytest.mark.parametrize("forgery", ["garbage", "wrong-alg", "wrong-key", "unknown-kid", "no-sid", "wrong-audience"])
def test_tokens_identity_did_not_issue_are_401_invalid(platform, gateway, forgery):
    issuer, claims = platform.issuer, platform.issuer.claims()
    token = {
        "garbage": lambda: "garbage.token.value",
        "wrong-alg": lambda: jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256",
                                        headers={"kid": platform.kid}),
        "wrong-key": lambda: issuer.token(platform.kid, claims, signing_key=issuer.keys[issuer.new_key()]),
        "unknown-kid": lambda: issuer.token(issuer.new_key(), claims),
        "no-sid": lambda: issuer.token(platform.kid, claims, sid=None),
        "wrong-audience": lambda: issuer.token(platform.kid, claims, aud="another-platform"),
    }[forgery]()
    assert_invalid_token(gateway.get("/test/me", token), "The access token is invalid.")


def test_public_routes_ignore_tokens(gateway):
    assert gateway.get("/healthz", "garbage").status_code == 200


# -- keys ----------------------------------------------------------------------------------


def test_an_unknown_kid_refetches_the_keys_at_most_once_per_interval(platform, gateway):
    token, _ = platform.token()
    assert gateway.get("/test/me", token).status_code == 200  # keys loaded
    rotated = platform.issuer.new_key()
    IDENTITY.jwks.append(platform.issuer.jwk(rotated))
    before = IDENTITY.calls["public_keys"]
    new_token = platform.issuer.token(rotated, platform.issuer.claims())
    wait_for(lambda: gateway.get("/test/me", new_token).status_code == 200, timeout=5, interval=0.05)
    assert IDENTITY.calls["public_keys"] > before

    before = IDENTITY.calls["public_keys"]
    made_up = platform.issuer.token("made-up", platform.issuer.claims(), signing_key=platform.issuer.keys[rotated])
    for _ in range(10):
        assert gateway.get("/test/me", made_up).status_code == 401
    assert IDENTITY.calls["public_keys"] - before <= 2  # 0.3 s apart at most (the test's interval)


def test_without_identity_and_without_cached_keys_the_answer_is_503(platform, issuer):
    lonely_vhost = f"upgestao-access-lonely-{uuid.uuid4().hex[:8]}"
    lonely = platform.start_gateway(create_vhost(lonely_vhost))
    try:
        token, _ = platform.token()
        response = lonely.get("/test/me", token)
        assert_problem(response, 503, "service-unavailable")
        assert response.headers["Retry-After"]
        assert lonely.get("/healthz").status_code == 200
    finally:
        platform.stop(lonely, kill=True)
        delete_vhost(lonely_vhost)


# -- permissions ------------------------------------------------------------------------------


def test_a_missing_permission_is_403_and_the_refusal_is_audited(platform, gateway):
    token, claims = platform.token("attendant", sub="user-7")
    response = gateway.get("/test/users/user-99", token, headers={"X-Request-ID": "access-denied-0001"})
    body = assert_problem(response, 403, "forbidden")
    assert body["permission"] == "users.read"

    (row,) = platform.audit_rows("access-denied-0001")
    assert row["routing_key"] == "audit.gateway.read"
    record = row["body"]
    assert {key: record[key] for key in ("service", "actor_id", "actor_role", "action", "resource_type",
                                          "resource_id", "subject_id", "fields", "purpose", "outcome")} == {
        "service": "gateway", "actor_id": "user-7", "actor_role": "attendant", "action": "read",
        "resource_type": "user", "resource_id": None, "subject_id": "user-99", "fields": [],
        "purpose": "authorization", "outcome": "denied",
    }
    assert set(record) == {"audit_id", "occurred_at", "service", "actor_id", "actor_role", "action", "resource_type",
                           "resource_id", "subject_id", "fields", "purpose", "request_id", "source_ip", "outcome",
                           "recipient"}
    assert record["recipient"] is None


def test_a_refused_request_is_not_read_further(platform, gateway):
    token, _ = platform.token("attendant")
    response = gateway.post("/test/users", token, json={"email": "not an e-mail"},
                            headers={"X-Request-ID": "access-denied-0002"})
    assert assert_problem(response, 403, "forbidden")["permission"] == "users.create"
    assert response.headers["Connection"] == "close"  # its body was never read
    assert platform.audit_rows("access-denied-0002")[0]["body"]["action"] == "create"
    admin, _ = platform.token("admin")
    assert_problem(gateway.post("/test/users", admin, json={"email": "not an e-mail"}), 422, "validation-error")


def test_a_handlers_finer_check_is_audited_too(platform, gateway):
    token, _ = platform.token("attendant")
    response = gateway.get("/test/secret", token, headers={"X-Request-ID": "access-denied-0003"})
    assert assert_problem(response, 403, "forbidden")["permission"] == "profile.secret"
    assert platform.audit_rows("access-denied-0003")[0]["body"]["resource_type"] == "profile"


def test_a_role_permissions_change_is_applied(platform, gateway):
    role = f"tester-{uuid.uuid4().hex[:6]}"
    token, _ = platform.token(role)
    assert_problem(gateway.get("/test/me", token), 403, "forbidden")  # unknown role: no permissions
    IDENTITY.roles[role] = ["profile.read"]
    platform.publish("identity.role_permissions_changed.v1", {"role": role})
    wait_for(lambda: gateway.get("/test/me", token).status_code == 200, timeout=5)
    IDENTITY.roles[role] = []
    platform.publish("identity.role_permissions_changed.v1", {"role": role})
    wait_for(lambda: gateway.get("/test/me", token).status_code == 403, timeout=5)


def test_an_access_event_not_sent_by_identity_is_ignored(platform, gateway):
    """Only identity's broker user writes identity.events; a permission change or a revocation reaching
    the stream from anyone else (here the administrator's user, whom nobody's service is) changes nothing."""
    role = f"forged-{uuid.uuid4().hex[:6]}"
    forged_role, _ = platform.token(role)
    token, claims = platform.token()
    marker, marker_claims = platform.token()
    assert_problem(gateway.get("/test/me", forged_role), 403, "forbidden")  # no permissions, now cached
    assert gateway.get("/test/me", token).status_code == 200
    IDENTITY.roles[role] = ["profile.read"]
    platform.publish("identity.role_permissions_changed.v1", {"role": role}, as_service=None)
    platform.publish("identity.session_revoked.v1", {"session_id": claims["sid"], "user_id": "user-1",
                                                     "reason": "logout"}, as_service=None)
    # identity's own revocation after the forged events: once it is applied, they were read (and ignored)
    platform.revoke(marker_claims["sid"])
    wait_for(lambda: gateway.get("/test/me", marker).status_code == 401, timeout=5)
    assert gateway.get("/test/me", token).status_code == 200  # the forged revocation changed nothing
    assert_problem(gateway.get("/test/me", forged_role), 403, "forbidden")  # nor the forged permission change


# -- revocations ---------------------------------------------------------------------------------


def test_a_revoked_session_is_refused_from_the_next_request(platform, gateway):
    token, claims = platform.token()
    other, _ = platform.token()
    assert gateway.get("/test/me", token).status_code == 200
    platform.revoke(claims["sid"])
    # (a pair: a 4xx requests.Response is falsy)
    _, response = wait_for(lambda: (r := gateway.get("/test/me", token)).status_code == 401 and (True, r),
                           timeout=5, interval=0.01)
    assert_invalid_token(response, "The access token has been revoked.")
    assert gateway.get("/test/me", other).status_code == 200


def test_a_gateway_started_after_a_revocation_still_refuses_the_token(platform, gateway):
    token, claims = platform.token()
    platform.revoke(claims["sid"])  # the stream exists: the module's gateway declared it
    late = platform.start_gateway()
    try:
        # No waiting: the late gateway reads the stream up to date before it answers.
        assert_invalid_token(late.get("/test/me", token), "The access token has been revoked.")
        fresh, _ = platform.token()
        assert late.get("/test/me", fresh).status_code == 200
        readiness = late.get("/readyz")
        assert readiness.status_code == 200, readiness.text
        assert readiness.json()["checks"] == {"broker": "ok", "database": "ok", "revocations": "ok", "identity": "ok"}
    finally:
        platform.stop(late)
    stream = late.access.stream  # stopped cleanly: no thread, no connection, no longer current
    assert (stream._thread, stream._connection, stream.current) == (None, None, False)


def test_the_stream_is_declared_as_specified(platform, gateway):
    info = _api("GET", f"/api/queues/{quote(platform.vhost, safe='')}/{quote(QUEUE, safe='')}").json()
    assert info["durable"] is True
    assert info["arguments"]["x-queue-type"] == "stream"
    assert info["arguments"]["x-max-age"] == "2h"  # the longest token lifetime + 60 s fits
    assert info["arguments"]["x-max-length-bytes"] == 100_000_000
    bindings = _api("GET", f"/api/queues/{quote(platform.vhost, safe='')}/{quote(QUEUE, safe='')}/bindings").json()
    assert {(b["source"], b["routing_key"]) for b in bindings if b["source"]} == {
        ("identity.events", "identity.session_revoked.v1"),
        ("identity.events", "identity.role_permissions_changed.v1"),
    }
    with Connection(platform.amqp_uri) as connection:  # declaring again (another replica) is harmless
        declare_access_events(connection, load_access_settings({}))


def test_the_stream_reconnects_after_a_lost_connection_and_resumes(platform, gateway):
    stream = gateway.access.stream
    attaches = stream.attaches

    def stream_connections():
        connections = _api("GET", f"/api/vhosts/{quote(platform.vhost, safe='')}/connections").json()
        return [c["name"] for c in connections
                if (c.get("client_properties") or {}).get("connection_name") == f"gateway {QUEUE}"]

    (name,) = wait_for(stream_connections, timeout=10)
    _api("DELETE", f"/api/connections/{quote(name, safe='')}")
    wait_for(lambda: stream.attaches > attaches and stream.current, timeout=10)

    token, claims = platform.token()
    assert gateway.get("/test/me", token).status_code == 200
    platform.revoke(claims["sid"])
    wait_for(lambda: gateway.get("/test/me", token).status_code == 401, timeout=5, interval=0.01)


# -- errors answered by services -------------------------------------------------------------------


def test_a_service_error_becomes_its_problem_with_retry_after(gateway):
    response = gateway.get("/test/throttled")
    body = assert_problem(response, 429, "too-many-requests")
    assert body["detail"] == "Too many attempts; wait a little."
    assert body["retry_after"] == 30
    assert response.headers["Retry-After"] == "30"
