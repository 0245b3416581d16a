"""Identity's use cases on the in-memory unit of work: no broker, no database, bcrypt at cost 4.

``fake`` is an identity with its built-in roles defined and an admin; every use case runs in a
fake unit of work acting as a given user, and the test reads what it recorded from ``fake.store``:
events, published bodies, audit records, rows of the read models and of the operational stores.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from upgestao_identity.adapters.hashing import PasswordHasher
from upgestao_identity.adapters.memory_repositories import memory_units
from upgestao_identity.adapters.projections import projections
from upgestao_identity.adapters.sql_repositories import with_sql_repositories
from upgestao_identity.adapters.tables import metadata
from upgestao_identity.adapters.tokens import SigningKey, TokenIssuer
from upgestao_identity.service_layer import bootstrap, roles, users
from upgestao_identity.service_layer.auth import Auth
from upgestao_identity.settings import IdentitySettings
from upgestao_kernel.context import RequestContext, system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import utcnow
from upgestao_kernel.fakes import FakeUnitOfWork
from upgestao_kernel.schema import events, kernel_metadata, outbox
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long passphrase"
TODAY = date(2026, 3, 2)
ADDRESS = {"street": "Rua das Flores", "number": "100", "district": "Centro", "city": "São Paulo",
           "state": "SP", "postal_code": "01001-000", "country": "BR"}
_HASHER = PasswordHasher(4, allow_low_cost=True)
_PASSWORD_HASH = _HASHER.hash(PASSWORD)  # once: every user made here has it


def user_data(n: int = 1, role: str = "attendant", **over: Any) -> dict:
    data = {"full_name": f"Ana Souza {n}", "email": f"ana{n}@example.com.br", "phone": "+55 11 91234-5678",
            "birth_date": "1990-05-17", "job_title": "Atendente", "gender": None, "role": role,
            "address": dict(ADDRESS)}
    data.update(over)
    return data


def answer_of(exc: BaseException) -> ServiceError:
    """What the caller is answered for ``exc``: a ServiceError as it is, a domain refusal through the
    service's edge table (where the domain raises its own errors)."""
    if isinstance(exc, ServiceError):
        return exc
    from upgestao_identity.entrypoints.errors import PROBLEMS

    row = next(PROBLEMS[cls] for cls in type(exc).__mro__ if cls in PROBLEMS)
    return row(exc)


def refused(call: Callable[[], Any]) -> ServiceError:
    """The answer ``call`` is refused with (it must be refused)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the answer is what the test checks
        return answer_of(exc)
    raise AssertionError("expected a refusal")


class FakeIdentity:
    """Identity's use cases wired to the fakes, acting as whoever the test says."""

    admin_id: str
    password, new_password, today = PASSWORD, NEW_PASSWORD, TODAY
    user_data = staticmethod(user_data)
    refused = staticmethod(refused)

    def __init__(self, settings: IdentitySettings | None = None) -> None:
        self.store, self._make = memory_units()
        self.settings = settings or IdentitySettings(bcrypt_cost=4)
        self.hasher = _HASHER
        self.issuer = TokenIssuer([SigningKey.from_seed(bytes(range(32)))], self.settings.access_ttl_s)
        self.clock = utcnow()  # events are stamped by the real clock: the use cases' clock starts there

    # -- acting ---------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock

    def advance(self, seconds: float) -> None:
        self.clock += timedelta(seconds=seconds)

    def context(self, actor_id: str | None = None, role: str | None = None,
                source_ip: str = "203.0.113.7") -> RequestContext:
        return RequestContext(request_id="req-1", actor_id=actor_id, actor_role=role if actor_id else None,
                              source_ip=source_ip, correlation_id="req-1")

    def notifier_context(self) -> RequestContext:
        """A call from the notifier's broker user (what ``caller_service`` is, once RabbitMQ checked it)."""
        return RequestContext(request_id="req-n", correlation_id="req-n", caller_service="notifier")

    def service_context(self, service: str, actor_id: str | None = None, role: str | None = None) -> RequestContext:
        """A call from ``service``'s broker user, as ``actor_id`` (a token riding along) or as nobody."""
        return RequestContext(request_id="req-s", correlation_id="req-s", caller_service=service,
                              actor_id=actor_id, actor_role=role if actor_id else None)

    def as_service(self, service: str, case: Callable[..., Any], *args: Any, actor: str | None = None,
                   role: str | None = None, **kwargs: Any) -> Any:
        """``case(uow, *args, **kwargs)`` called by ``service`` (privacy: the data subjects' RPCs)."""
        with self.uow(context=self.service_context(service, actor, role)) as uow:
            return case(uow, *args, **kwargs)

    def uow(self, actor_id: str | None = None, role: str | None = None, source_ip: str = "203.0.113.7",
            context: RequestContext | None = None) -> FakeUnitOfWork:
        return self._make(context or self.context(actor_id, role, source_ip))

    def system(self) -> FakeUnitOfWork:
        return self._make(system_context("req-system"))

    def run(self, case: Callable[..., Any], *args: Any, actor: str | None = None, role: str | None = None,
            **kwargs: Any) -> Any:
        """``case(uow, *args, **kwargs)`` in one unit of work acting as ``actor`` (the admin by default)."""
        if actor is None:
            actor, role = self.admin_id, "admin"
        with self.uow(actor, role) as uow:
            return case(uow, *args, **kwargs)

    def auth(self, actor_id: str | None = None, role: str | None = None, source_ip: str = "203.0.113.7") -> Auth:
        return Auth(lambda: self.uow(actor_id, role, source_ip), self.hasher, self.issuer, self.settings, self.now)

    # -- arranging ------------------------------------------------------------
    def start(self, admin: bool = True) -> FakeIdentity:
        """The start-up tasks: the built-in roles, and (``admin``) the first admin."""
        roles.ensure_built_in(self.system)
        if not admin:
            return self
        self.admin_id = bootstrap.create_admin(
            self.system, self.hasher, email="admin@example.com", password=PASSWORD, full_name="Ada Admin",
            birth_date="1980-01-01", today=TODAY, minimum_age=18, only_if_none=True)
        return self

    def add_user(self, n: int = 1, role: str = "attendant", **over: Any) -> str:
        """A user created by the admin (its id); its password is PASSWORD."""
        return self.run(users.register, user_data(n, role, **over), password_hash=_PASSWORD_HASH, today=TODAY,
                        minimum_age=18)["id"]

    def login(self, email: str, password: str = PASSWORD) -> dict:
        return self.auth().login(email, password)

    # -- observing ------------------------------------------------------------
    def mark(self) -> int:
        """A point in the store's history: what a use case did after it is ``since(mark)``."""
        return len(self.store.events), len(self.store.outbox)

    def events_since(self, mark: tuple[int, int]) -> list[str]:
        return [e.type for e in self.store.events[mark[0]:]]

    def audit_since(self, mark: tuple[int, int], **match: Any) -> list[dict]:
        return [m["body"] for m in self.store.outbox[mark[1]:] if m["exchange"] == "audit"
                and all(m["body"].get(k) == v for k, v in match.items())]

    def published_since(self, mark: tuple[int, int], event_type: str) -> list[dict]:
        return [m["body"] for m in self.store.outbox[mark[1]:]
                if m["exchange"] == "identity.events" and m["routing_key"] == event_type]

    def row(self, table: str, key: str) -> dict | None:
        return self.store.tables.get(table, {}).get(key)

    def notice(self, notice_id: str, recipient_id: str | None = None) -> dict:
        """What the notifier gets for ``notice_id`` (asked as the notifier), in the notice protocol."""
        from upgestao_identity.service_layer import notices

        with self.uow(context=self.notifier_context()) as uow:
            return notices.fetch(uow, notice_id, self.now(), recipient_id)

    @staticmethod
    def reset_token_of(notice: dict) -> str:
        """The reset token a password-reset notice gives its (only) recipient."""
        (recipient,) = notice["recipients"]
        return recipient["vars"]["reset_token"]


class SqliteIdentity(FakeIdentity):
    """The same harness on the real unit of work and the SQL repositories, on a SQLite file: what a
    scenario observes here and on the fake must be the same."""

    def __init__(self, path, settings: IdentitySettings | None = None) -> None:
        super().__init__(settings)
        self.engine = create_engine(f"sqlite:///{path}")
        kernel_metadata.create_all(self.engine)
        metadata.create_all(self.engine)
        vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
        self._make = lambda context: with_sql_repositories(
            UnitOfWork(self.engine, "identity", context, projections(), vault=vault))

    def observed(self) -> dict:
        with self.engine.connect() as conn:
            types = list(conn.execute(sa.select(events.c.type).order_by(events.c.position)).scalars())
            messages = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
        return _observation(types, [(m.exchange, m.routing_key, m.body) for m in messages])


def _observation(types: list[str], messages: list[tuple]) -> dict:
    """What a scenario did, without what differs on every run (ids, clocks)."""
    audit = [(b["action"], b["resource_type"], b["fields"], b["purpose"], b["outcome"], b["actor_role"])
             for exchange, _, b in messages if exchange == "audit"]
    published = [(key, sorted(b["data"])) for exchange, key, b in messages if exchange != "audit"]
    return {"events": types, "audit": audit, "published": published}


def observed(identity: FakeIdentity) -> dict:
    if isinstance(identity, SqliteIdentity):
        return identity.observed()
    return _observation(identity.store.event_types(),
                        [(m["exchange"], m["routing_key"], m["body"]) for m in identity.store.outbox])


@pytest.fixture
def fake() -> FakeIdentity:
    return FakeIdentity().start()


@pytest.fixture
def make_fake() -> Callable[..., FakeIdentity]:
    """``make_fake(settings, admin=True)``: a started identity with other settings (or no admin yet)."""
    return lambda settings, admin=True: FakeIdentity(settings).start(admin)


@pytest.fixture
def sqlite_identity(tmp_path) -> SqliteIdentity:
    identity = SqliteIdentity(tmp_path / "identity.sqlite3").start()
    yield identity
    identity.engine.dispose()


@pytest.fixture
def observe() -> Callable[[FakeIdentity], dict]:
    """``observe(identity)``: the events, audit records and published views it holds, comparable across runs."""
    return observed
