"""Fixtures of the identity service tests: the service on real RabbitMQ and PostgreSQL,
and RPC callers acting as a given user (context data as the gateway sends it).

Identity re-reads the actor of every call (their role and status now, not as the token says), so
the harness's admin is a real user: the first admin of the environment, created by the service's
own start-up task from the ``UPGESTAO_ADMIN_*`` settings, as in any deployment."""

from __future__ import annotations

from datetime import date

import eventlet
import jwt
import pytest
import sqlalchemy as sa
from upgestao_kernel.testing import wait_for
from upgestao_kernel.testing_tokens import acting_as

PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "first.admin@example.com.br"


def adult_birth_date(years: int = 30) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


def user_data(n: int = 1, role: str = "attendant", **over) -> dict:
    """A valid ``create_user`` body for user number ``n``."""
    data = {
        "full_name": f"Ana Souza {n}", "email": f"ana{n}@example.com.br", "phone": "+55 11 91234-5678",
        "birth_date": adult_birth_date(), "job_title": "Atendente", "gender": None, "role": role,
        "address": {"street": "Rua das Flores", "number": "100", "district": "Centro", "city": "São Paulo",
                    "state": "SP", "postal_code": "01001-000", "country": "BR"},
        "password": PASSWORD,
    }
    data.update(over)
    return data


def harness_admin_env() -> dict[str, str]:
    """The first admin every harness starts with (a test that sets any ``UPGESTAO_ADMIN_*`` has its own)."""
    return {"UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL, "UPGESTAO_ADMIN_PASSWORD": PASSWORD,
            "UPGESTAO_ADMIN_BIRTH_DATE": adult_birth_date(40), "UPGESTAO_ADMIN_NAME": "Ada Admin"}


class IdentityHarness:
    # the actor of ``admin()``: the first admin of the database (known once the start-up tasks ended)
    admin_id: str | None = None
    admin_email = ADMIN_EMAIL
    password = PASSWORD  # every user made by ``user_data``/``add_user`` has it unless told otherwise
    user_data = staticmethod(user_data)
    adult_birth_date = staticmethod(adult_birth_date)

    def __init__(self, config: dict, database_url: str, container=None) -> None:
        self.config = config
        self.database_url = database_url
        self.container = container
        self.engine = sa.create_engine(database_url)
        self._proxies: list = []

    def caller(self, actor_id: str | None = None, role: str | None = None, source_ip: str = "203.0.113.7",
               request_id: str | None = None, access_token: str | None = None):
        """An RPC client acting as ``actor_id`` with ``role`` (a token signed with the tests' key), or
        presenting ``access_token`` (one identity issued at a login), or anonymous."""
        from nameko.standalone.rpc import ServiceRpcProxy

        context = {"source_ip": source_ip}
        if access_token:  # as the gateway calls with a user's own token: actor and role ride along
            claims = jwt.decode(access_token, options={"verify_signature": False})
            context.update(access_token=access_token, actor_id=claims["sub"], actor_role=claims["role"])
        elif actor_id:  # as the gateway calls: the access token is the proof of who asks
            context.update(acting_as(actor_id, role))
        if request_id:
            context["request_id"] = request_id
        ctx = ServiceRpcProxy("identity", self.config, context_data=context, timeout=15)
        self._proxies.append(ctx)
        return ctx.start()

    def admin(self, request_id: str | None = None):
        assert self.admin_id, "no admin yet: start the harness with ready=True and an admin"
        return self.caller(self.admin_id, "admin", request_id=request_id)

    def add_user(self, n: int = 1, role: str = "attendant", **over) -> dict:
        """A user created by the admin (the representation ``create_user`` returns)."""
        return self.admin().create_user(user_data(n, role, **over))

    def assign_role(self, user_id: str, role: str) -> dict:
        """Give ``user_id`` the ``role`` as the system: what identity's ``assign-role`` command does (the only
        way to a first dpo: an admin cannot give a compliance role)."""
        import os

        from upgestao_identity.adapters.sql_repositories import with_sql_repositories
        from upgestao_identity.definition import DEFINITION
        from upgestao_identity.service_layer import users
        from upgestao_kernel.cli import LazyKeys, system_units_of_work
        from upgestao_kernel.config import load_settings

        settings = load_settings("identity", {**os.environ, "IDENTITY_DATABASE_URL": self.database_url})
        make_uow, engine = system_units_of_work(DEFINITION, settings, LazyKeys(settings))
        try:
            with with_sql_repositories(make_uow()) as uow:
                return users.assign_role(uow, user_id, role)
        finally:
            engine.dispose()

    # -- direct reads of the service's database ------------------------------------

    def rows(self, query: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(query), params).all()

    def outbox(self, exchange: str | None = None, routing_key: str | None = None) -> list:
        """Outbox rows (id, message_id, exchange, routing_key, headers, body, sent_at), in order."""
        from upgestao_kernel.schema import outbox

        q = sa.select(outbox).order_by(outbox.c.id)
        if exchange is not None:
            q = q.where(outbox.c.exchange == exchange)
        if routing_key is not None:
            q = q.where(outbox.c.routing_key == routing_key)
        with self.engine.connect() as conn:
            return conn.execute(q).all()

    def audit(self, **match) -> list[dict]:
        """Audit records (bodies of the outbox rows to the ``audit`` exchange) whose keys equal ``match``."""
        return [r.body for r in self.outbox(exchange="audit")
                if all(r.body.get(k) == v for k, v in match.items())]

    def published(self, event_type: str) -> list[dict]:
        """Bodies of the outbox rows publishing ``event_type`` on ``identity.events``."""
        return [r.body for r in self.outbox(exchange="identity.events", routing_key=event_type)]

    def as_service(self, service: str, actor_id: str | None = None, role: str | None = None):
        """An RPC client connected as ``service``'s own broker user (RabbitMQ stamps and checks its user_id),
        calling for ``actor_id`` with ``role`` (their token riding along, as privacy calls for the DPO)."""
        from nameko.standalone.rpc import ServiceRpcProxy
        from upgestao_kernel.testing import service_amqp_uri

        config = {**self.config, "AMQP_URI": service_amqp_uri(self.config["AMQP_URI"], service)}
        context = acting_as(actor_id, role) if actor_id else None
        proxy = ServiceRpcProxy("identity", config, context_data=context, timeout=15)
        self._proxies.append(proxy)
        return proxy.start()

    def reset_token(self, user_id: str) -> str:
        """What the notifier does: the latest reset event of ``user_id`` names a notice (the event's id),
        fetched from identity as the notifier (the token itself never travels in an event)."""
        bodies = [b for b in self.published("identity.password_reset_requested.v1")
                  if b["data"]["user_id"] == user_id]
        return self.reset_token_of(self.as_service("notifier").notice(bodies[-1]["event_id"]))

    @staticmethod
    def reset_token_of(notice: dict) -> str:
        """The reset token a password-reset notice (the notice protocol) gives its only recipient."""
        (recipient,) = notice["recipients"]
        return recipient["vars"]["reset_token"]

    def wait_bootstrap(self, timeout: float = 15.0) -> None:
        """Wait until this container's start-up tasks (built-in roles, first admin) have finished;
        ``admin_id`` is then the first admin of the database (``None`` if there is none)."""
        from upgestao_identity.entrypoints.dependencies import Identity

        provider = next(d for d in self.container.dependencies if isinstance(d, Identity))
        wait_for(lambda: provider._bootstrap is not None, timeout)
        with eventlet.Timeout(timeout):
            provider._bootstrap.wait()
        first = self.rows("SELECT id FROM users WHERE role = 'admin' AND status = 'active' "
                          "ORDER BY created_at, id LIMIT 1")
        self.admin_id = first[0].id if first else None

    def close(self) -> None:
        for ctx in self._proxies:
            ctx.stop()
        self.engine.dispose()


@pytest.fixture
def start_identity(database_factory, service_env, monkeypatch):
    """``start(env=None, database_url=None, ready=True) -> IdentityHarness``: an identity container
    (bcrypt cost 4) started after ``env`` is set, on a fresh migrated database unless ``database_url``
    names one; the first admin is the harness's (``harness_admin_env``) unless ``env`` names another.
    With ``ready``, returns once the start-up tasks ended (built-in roles and first admin in place)."""
    from nameko.containers import ServiceContainer
    from upgestao_identity.service import IdentityService

    # (a container stops within 0.1 s: the kernel's ``prompt_container_stop``)
    started: list[tuple] = []

    def start(env: dict[str, str] | None = None, database_url: str | None = None,
              ready: bool = True) -> IdentityHarness:
        monkeypatch.setenv("IDENTITY_BCRYPT_COST", "4")
        env = dict(env or {})
        if not any(key.startswith("UPGESTAO_ADMIN_") for key in env):
            env.update(harness_admin_env())
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        url = database_url
        if url is None:  # a copy of the session's migrated template
            url = database_factory("identity", "upgestao_identity:migrations")
        monkeypatch.setenv("IDENTITY_DATABASE_URL", url)
        config = {"AMQP_URI": service_env["AMQP_URI"], "serializer": "json"}
        container = ServiceContainer(IdentityService, config)
        container.start()
        harness = IdentityHarness(config, url, container)
        started.append((container, harness))
        if ready:
            harness.wait_bootstrap()
            assert len(harness.rows("SELECT name FROM roles")) == 4
        return harness

    yield start
    pool = eventlet.GreenPool()
    for container, harness in reversed(started):
        harness.close()
        pool.spawn(container.stop)
    pool.waitall()


@pytest.fixture
def identity(start_identity):
    """The identity service (bcrypt cost 4 for speed) with the built-in roles defined."""
    return start_identity()
