"""Identity's repositories on its own tables, through the unit of work's connection.

Every query of the service lives here; the use cases see records (:mod:`.ports`). A repository
asks the unit for its connection at each call, so it always works inside the unit's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from upgestao_kernel.schema import events
from upgestao_kernel.unit_of_work import UnitOfWork

from .ports import (
    ApiKeyRecord,
    Cursor,
    CustomerRecord,
    LoginCandidate,
    NoticeRecord,
    PasswordResetRecord,
    RoleRecord,
    SessionRecord,
    UserRecord,
)
from .tables import (
    api_key_usage,
    api_keys,
    credentials,
    customers,
    known_networks,
    login_budgets,
    notices,
    password_resets,
    photos,
    roles,
    sessions,
    users,
)

# Role definitions are read for every authorisation through a per-process cache of ROLE_CACHE_S
# seconds, emptied when this process changes a role: the gateway applies a change on the next
# request (it learns it from the event), identity at most that long after.
ROLE_CACHE_S = 1.0
# the users a staff list shows: not the blocked (nobody may read them) nor the anonymised (nobody to show)
LISTED_USERS = ("active", "deactivated")
_role_cache: dict[tuple[str, str], tuple[float, RoleRecord | None]] = {}


class _OnConnection:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def conn(self) -> Connection:
        return self._uow.conn


def _keyset(conn: Connection, query: sa.Select, table: sa.Table, limit: int, after: Cursor | None) -> list:
    """A page of ``query`` ordered by ``(created_at, id)``: stable under inserts."""
    query = query.order_by(table.c.created_at, table.c.id).limit(limit)
    if after is not None:
        created_at, last_id = after
        query = query.where(sa.or_(table.c.created_at > created_at,
                                   sa.and_(table.c.created_at == created_at, table.c.id > last_id)))
    return conn.execute(query).all()


_USER_ROW = sa.select(users).where(users.c.id == sa.bindparam("user_id"))


class SqlUsers(_OnConnection):
    def get(self, user_id: str) -> UserRecord | None:
        row = self.conn.execute(_USER_ROW, {"user_id": user_id}).first()
        return UserRecord(**row._mapping) if row else None

    def by_email_index(self, email_index: str) -> UserRecord | None:
        row = self.conn.execute(sa.select(users).where(users.c.email_index == email_index)).first()
        return UserRecord(**row._mapping) if row else None

    def email_taken(self, email_index: str, except_id: str | None = None) -> bool:
        q = sa.select(users.c.id).where(users.c.email_index == email_index)
        if except_id:
            q = q.where(users.c.id != except_id)
        return self.conn.execute(q).first() is not None

    def page(self, limit: int, after: Cursor | None) -> list[UserRecord]:
        listed = sa.select(users).where(users.c.status.in_(LISTED_USERS))
        return [UserRecord(**r._mapping) for r in _keyset(self.conn, listed, users, limit, after)]

    def ids_page(self, limit: int, after: Cursor | None) -> list[tuple[datetime, str]]:
        query = sa.select(users.c.created_at, users.c.id).where(users.c.status == "active")
        return [(r.created_at, r.id) for r in _keyset(self.conn, query, users, limit, after)]

    def active_admin_exists(self) -> bool:
        return self.conn.execute(
            sa.select(users.c.id).where(users.c.role == "admin", users.c.status == "active").limit(1)
        ).first() is not None

    def active_ids_with_roles(self, roles: Iterable[str]) -> list[str]:
        wanted = list(roles)
        if not wanted:
            return []
        query = (sa.select(users.c.id).where(users.c.role.in_(wanted), users.c.status == "active")
                 .order_by(users.c.created_at, users.c.id))
        return list(self.conn.execute(query).scalars())


class SqlCustomers(_OnConnection):
    def get(self, customer_id: str) -> CustomerRecord | None:
        row = self.conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()
        return CustomerRecord(**row._mapping) if row else None

    def id_with(self, index: str, value: str, except_id: str | None = None) -> str | None:
        q = sa.select(customers.c.id).where(customers.c[index] == value)
        if except_id:
            q = q.where(customers.c.id != except_id)
        return self.conn.execute(q).scalar()

    def page(self, limit: int, after: Cursor | None, *, email_index: str | None = None,
             phone_index: str | None = None) -> list[CustomerRecord]:
        q = sa.select(customers).where(customers.c.status == "active")
        if email_index is not None:
            q = q.where(customers.c.email_index == email_index)
        if phone_index is not None:
            q = q.where(customers.c.phone_index == phone_index)
        return [CustomerRecord(**r._mapping) for r in _keyset(self.conn, q, customers, limit, after)]

    def ids_page(self, limit: int, after: Cursor | None) -> list[tuple[datetime, str]]:
        query = sa.select(customers.c.created_at, customers.c.id).where(customers.c.status == "active")
        return [(r.created_at, r.id) for r in _keyset(self.conn, query, customers, limit, after)]

    def get_many(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        wanted = list(customer_ids)
        if not wanted:
            return {}
        rows = self.conn.execute(sa.select(customers).where(customers.c.id.in_(wanted))).all()
        return {row.id: CustomerRecord(**row._mapping) for row in rows}


class SqlRoles(_OnConnection):
    def get(self, name: str) -> RoleRecord | None:
        row = self.conn.execute(sa.select(roles).where(roles.c.name == name)).first()
        return RoleRecord(**row._mapping) if row else None

    def cached(self, name: str | None) -> RoleRecord | None:
        if not name:
            return None
        key = (str(self.conn.engine.url), name)
        hit = _role_cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        record = self.get(name)
        _role_cache[key] = (now + ROLE_CACHE_S, record)
        return record

    def forget_cached(self) -> None:
        _role_cache.clear()

    def all(self) -> list[RoleRecord]:
        return [RoleRecord(**r._mapping) for r in self.conn.execute(sa.select(roles).order_by(roles.c.name))]


class SqlSessions(_OnConnection):
    def active_ids_of(self, user_id: str) -> list[str]:
        return list(self.conn.execute(
            sa.select(sessions.c.id).where(sessions.c.user_id == user_id, sessions.c.status == "active")
        ).scalars())

    def usable_of(self, user_id: str, now: datetime) -> list[SessionRecord]:
        rows = self.conn.execute(
            sa.select(sessions).where(sessions.c.user_id == user_id, sessions.c.status == "active",
                                      sessions.c.expires_at > now)
            .order_by(sessions.c.created_at.desc())
        )
        return [SessionRecord(**r._mapping) for r in rows]

    def owner_of(self, session_id: str) -> str | None:
        return self.conn.execute(sa.select(sessions.c.user_id).where(sessions.c.id == session_id)).scalar()

    def of_user(self, user_id: str) -> list[SessionRecord]:
        rows = self.conn.execute(sa.select(sessions).where(sessions.c.user_id == user_id)
                                 .order_by(sessions.c.created_at, sessions.c.id))
        return [SessionRecord(**r._mapping) for r in rows]


class SqlApiKeys(_OnConnection):
    def get(self, key_id: str) -> ApiKeyRecord | None:
        row = self.conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        return ApiKeyRecord(**row._mapping) if row else None

    def page(self, limit: int, after: Cursor | None) -> list[ApiKeyRecord]:
        return [ApiKeyRecord(**r._mapping) for r in _keyset(self.conn, sa.select(api_keys), api_keys, limit, after)]

    def usable(self, now: datetime) -> list[ApiKeyRecord]:
        rows = self.conn.execute(sa.select(api_keys).where(
            api_keys.c.status == "active", sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        ).order_by(api_keys.c.id))
        return [ApiKeyRecord(**r._mapping) for r in rows]

    def last_used(self, key_ids: list[str]) -> dict[str, datetime]:
        if not key_ids:
            return {}
        rows = self.conn.execute(sa.select(api_key_usage).where(api_key_usage.c.key_id.in_(key_ids)))
        return {r.key_id: r.last_used_at for r in rows}

    def touch(self, key_id: str, at: datetime, min_interval_s: float) -> bool:
        stale = at - timedelta(seconds=min_interval_s)
        insert = (postgresql.insert if self.conn.dialect.name == "postgresql" else sqlite.insert)(api_key_usage)
        statement = insert.values(key_id=key_id, last_used_at=at).on_conflict_do_update(
            index_elements=["key_id"], set_={"last_used_at": at}, where=api_key_usage.c.last_used_at <= stale)
        return bool(self.conn.execute(statement).rowcount)


class SqlPasswordResets(_OnConnection):
    def get(self, token_hash: str) -> PasswordResetRecord | None:
        row = self.conn.execute(sa.select(password_resets).where(password_resets.c.token_hash == token_hash)).first()
        return PasswordResetRecord(**row._mapping) if row else None


class SqlCredentials(_OnConnection):
    def add(self, user_id: str, password_hash: str, at: datetime) -> None:
        self.conn.execute(credentials.insert().values(user_id=user_id, password_hash=password_hash, updated_at=at))

    def hash_of(self, user_id: str) -> str | None:
        return self.conn.execute(sa.select(credentials.c.password_hash).where(credentials.c.user_id == user_id)
                                 ).scalar()

    def set(self, user_id: str, password_hash: str, at: datetime) -> None:
        self.conn.execute(credentials.update().where(credentials.c.user_id == user_id)
                          .values(password_hash=password_hash, updated_at=at))

    def replace(self, user_id: str, old_hash: str, new_hash: str, at: datetime) -> None:
        self.conn.execute(credentials.update().where(credentials.c.user_id == user_id,
                                                     credentials.c.password_hash == old_hash)
                          .values(password_hash=new_hash, updated_at=at))

    def login_candidate(self, email_index: str) -> LoginCandidate | None:
        row = self.conn.execute(
            sa.select(users.c.id, users.c.role, users.c.status, credentials.c.password_hash, users.c.email)
            .join(credentials, credentials.c.user_id == users.c.id)
            .where(users.c.email_index == email_index)
        ).first()
        return LoginCandidate(**row._mapping) if row else None

    def delete(self, user_id: str) -> None:
        self.conn.execute(credentials.delete().where(credentials.c.user_id == user_id))


class SqlPhotos(_OnConnection):
    def add(self, photo_id: str, subject_id: str, content: str, at: datetime) -> None:
        self.conn.execute(photos.insert().values(id=photo_id, subject_id=subject_id, content=content, created_at=at))

    def delete_others(self, subject_id: str, keep: str) -> None:
        self.conn.execute(photos.delete().where(photos.c.subject_id == subject_id, photos.c.id != keep))

    def content(self, photo_id: str) -> str | None:
        return self.conn.execute(sa.select(photos.c.content).where(photos.c.id == photo_id)).scalar()

    def delete_of(self, subject_id: str) -> None:
        self.conn.execute(photos.delete().where(photos.c.subject_id == subject_id))


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class SqlLoginBudgets(_OnConnection):
    """One row per key; :meth:`charge` is a single conditional ``UPDATE ... RETURNING``.

    On PostgreSQL a second request charging the same key waits on the first one's row lock, then
    re-checks the ``WHERE`` against the row the first one committed (READ COMMITTED): it is counted
    after it, or refused when the first one blocked the key. On SQLite every write transaction holds
    the database's write lock from its start (``BEGIN IMMEDIATE``), so charges are serial anyway.
    """

    def _ensure(self, key: str) -> None:
        insert = (postgresql.insert if self.conn.dialect.name == "postgresql" else sqlite.insert)(login_budgets)
        self.conn.execute(insert.values(key=key, attempts=0, last_at=_NEVER, blocked_until=_NEVER)
                          .on_conflict_do_nothing(index_elements=["key"]))

    def charge(self, key: str, now: datetime, quiet_since: datetime) -> int | None:
        c = login_budgets.c
        restart = c.last_at <= quiet_since
        for _ in range(2):
            self._ensure(key)
            row = self.conn.execute(
                login_budgets.update().where(c.key == key, c.blocked_until <= now)
                .values(attempts=sa.case((restart, 1), else_=c.attempts + 1), last_at=now)
                .returning(c.attempts)
            ).first()
            if row is not None:
                return int(row[0])
            # Nothing updated: the key is blocked -- or a successful login of the same account cleared its
            # row while this one waited on it (the row is gone, not blocked): charge a row made afresh.
            if self.blocked_until(key) is not None:
                return None
        return None

    def block(self, key: str, until: datetime) -> None:
        self.conn.execute(login_budgets.update().where(login_budgets.c.key == key).values(blocked_until=until))

    def blocked_until(self, key: str) -> datetime | None:
        return self.conn.execute(sa.select(login_budgets.c.blocked_until).where(login_budgets.c.key == key)).scalar()

    def refund(self, key: str) -> None:
        c = login_budgets.c
        self.conn.execute(login_budgets.update().where(c.key == key, c.attempts > 0).values(attempts=c.attempts - 1))

    def clear(self, key: str) -> None:
        self.conn.execute(login_budgets.delete().where(login_budgets.c.key == key))

    def forget_idle(self, idle_since: datetime, now: datetime) -> None:
        c = login_budgets.c
        self.conn.execute(login_budgets.delete().where(c.last_at <= idle_since, c.blocked_until <= now))


class SqlNotices(_OnConnection):
    def add(self, notice: NoticeRecord) -> None:
        self.conn.execute(notices.insert().values(**notice.__dict__))

    def get(self, notice_id: str) -> NoticeRecord | None:
        row = self.conn.execute(sa.select(notices).where(notices.c.id == notice_id)).first()
        return NoticeRecord(**row._mapping) if row else None

    def mark_fetched(self, notice_id: str, at: datetime) -> None:
        self.conn.execute(notices.update().where(notices.c.id == notice_id).values(fetched_at=at))

    def forget_expired(self, now: datetime) -> None:
        self.conn.execute(notices.delete().where(notices.c.expires_at <= now))

    def drop_of(self, user_id: str, kind: str) -> None:
        self.conn.execute(notices.delete().where(notices.c.user_id == user_id, notices.c.kind == kind))

    def drop_all_of(self, user_id: str) -> None:
        self.conn.execute(notices.delete().where(notices.c.user_id == user_id))


class SqlKnownNetworks(_OnConnection):
    def seen(self, user_id: str, network_index: str, now: datetime) -> datetime | None:
        # one upsert: a second login from the same network at the same time waits on the first one's row
        # and reads the time it wrote (PostgreSQL's ON CONFLICT DO UPDATE sees the latest committed row)
        insert = (postgresql.insert if self.conn.dialect.name == "postgresql" else sqlite.insert)(known_networks)
        c = known_networks.c
        statement = (insert.values(user_id=user_id, network_index=network_index, first_seen=now, last_seen=now,
                                   previous_seen=None)
                     .on_conflict_do_update(index_elements=["user_id", "network_index"],
                                            set_={"previous_seen": c.last_seen, "last_seen": now})
                     .returning(c.previous_seen))
        return self.conn.execute(statement).scalar()

    def forget_before(self, user_id: str, before: datetime) -> None:
        c = known_networks.c
        self.conn.execute(known_networks.delete().where(c.user_id == user_id, c.last_seen < before))

    def forget_all(self, user_id: str) -> None:
        self.conn.execute(known_networks.delete().where(known_networks.c.user_id == user_id))


class SqlEventLog(_OnConnection):
    def rewrite(self, stream_id: str, change: Callable[[str, Mapping[str, Any]], dict[str, Any] | None]) -> int:
        rows = self.conn.execute(sa.select(events.c.event_id, events.c.type, events.c.data)
                                 .where(events.c.stream_id == stream_id)).all()
        rewritten = 0
        for row in rows:
            data = change(row.type, row.data)
            if data is not None:
                self.conn.execute(events.update().where(events.c.event_id == row.event_id).values(data=data))
                rewritten += 1
        return rewritten


class SqlRepositories:
    """Identity's repositories for one unit of work (the factory given to ``with_repositories``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.users = SqlUsers(uow)
        self.customers = SqlCustomers(uow)
        self.roles = SqlRoles(uow)
        self.sessions = SqlSessions(uow)
        self.api_keys = SqlApiKeys(uow)
        self.password_resets = SqlPasswordResets(uow)
        self.credentials = SqlCredentials(uow)
        self.photos = SqlPhotos(uow)
        self.login_budgets = SqlLoginBudgets(uow)
        self.notices = SqlNotices(uow)
        self.known_networks = SqlKnownNetworks(uow)
        self.event_log = SqlEventLog(uow)


def with_sql_repositories(uow: UnitOfWork) -> UnitOfWork:
    """``uow`` (a kernel unit of work on identity's database) with identity's repositories."""
    return uow.with_repositories(SqlRepositories)
