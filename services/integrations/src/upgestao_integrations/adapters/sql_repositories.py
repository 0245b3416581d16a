"""The integrations service's repositories on its SQL database (the unit of work's connection).

Rows come back as plain mappings (dicts) with the columns of :mod:`.tables`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from upgestao_kernel.unit_of_work import UnitOfWork

from ..domain.messages import DELIVERING, FAILED, PENDING
from .tables import (
    WAITING,
    endpoint_health,
    integration_secrets,
    integrations,
    recoveries,
    shared_subjects,
    webhook_attempts,
    webhook_messages,
)

i, m, a = integrations.c, webhook_messages.c, webhook_attempts.c
sec, h, s, r = integration_secrets.c, endpoint_health.c, shared_subjects.c, recoveries.c
Row = dict[str, Any]
Cursor = tuple[datetime, str]


class _Repo:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def _conn(self):
        return self._uow.conn

    def _rows(self, query) -> list[Row]:
        return [dict(row._mapping) for row in self._conn.execute(query)]

    def _row(self, query) -> Row | None:
        row = self._conn.execute(query).first()
        return dict(row._mapping) if row is not None else None


class SqlIntegrations(_Repo):
    def get(self, integration_id: str) -> Row | None:
        return self._row(integrations.select().where(i.id == integration_id))

    def get_many(self, ids: list[str]) -> dict[str, Row]:
        if not ids:
            return {}
        return {row["id"]: row for row in self._rows(integrations.select().where(i.id.in_(sorted(set(ids)))))}

    def enabled(self) -> list[Row]:
        return self._rows(integrations.select().where(i.status == "enabled").order_by(i.created_at, i.id))

    def page(self, limit: int, after: Cursor | None) -> list[Row]:
        query = integrations.select()
        if after is not None:
            query = query.where(sa.tuple_(i.created_at, i.id) < sa.tuple_(*after))
        return self._rows(query.order_by(i.created_at.desc(), i.id.desc()).limit(limit))


class SqlSecrets(_Repo):
    def add(self, integration_id: str, secret_id: str, sealed: str, now: datetime) -> None:
        self._conn.execute(integration_secrets.insert().values(id=secret_id, integration_id=integration_id,
                                                               sealed=sealed, created_at=now, valid_until=None))

    def retire_current(self, integration_id: str, valid_until: datetime) -> str | None:
        """The current secret signs until ``valid_until``; older ones stop now. Its id (None: none)."""
        current = self._row(sa.select(sec.id).where(sec.integration_id == integration_id, sec.valid_until.is_(None)))
        self._conn.execute(integration_secrets.delete().where(sec.integration_id == integration_id,
                                                              sec.valid_until.is_not(None)))
        if current is None:
            return None
        self._conn.execute(integration_secrets.update().where(sec.id == current["id"]).values(valid_until=valid_until))
        return current["id"]

    def valid(self, integration_ids: list[str], now: datetime) -> dict[str, list[Row]]:
        """Each integration's secrets that still sign: the current first, then a previous one in its overlap."""
        if not integration_ids:
            return {}
        rows = self._rows(integration_secrets.select().where(
            sec.integration_id.in_(sorted(set(integration_ids))),
            sa.or_(sec.valid_until.is_(None), sec.valid_until > now)).order_by(sec.created_at.desc()))
        out: dict[str, list[Row]] = {}
        for row in rows:
            out.setdefault(row["integration_id"], []).append(row)
        for secrets in out.values():
            secrets.sort(key=lambda row: row["valid_until"] is not None)
        return out


class SqlMessages(_Repo):
    def get(self, message_id: str) -> Row | None:
        return self._row(webhook_messages.select().where(m.id == message_id))

    def get_many(self, ids: list[str]) -> dict[str, Row]:
        if not ids:
            return {}
        return {row["id"]: row for row in self._rows(webhook_messages.select().where(m.id.in_(sorted(set(ids)))))}

    def attempts(self, message_ids: list[str]) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {mid: [] for mid in message_ids}
        if not message_ids:
            return out
        for row in self._rows(webhook_attempts.select().where(a.message_id.in_(message_ids))
                              .order_by(a.message_id, a.number)):
            out[row["message_id"]].append(row)
        return out

    def page(self, integration_id: str, status: str | None, limit: int, after: Cursor | None) -> list[Row]:
        query = webhook_messages.select().where(m.integration_id == integration_id)
        if status is not None:
            query = query.where(m.status == status)
        if after is not None:
            query = query.where(sa.tuple_(m.created_at, m.id) < sa.tuple_(*after))
        return self._rows(query.order_by(m.created_at.desc(), m.id.desc()).limit(limit))

    def due(self, now: datetime, limit: int, excluded: Collection[str] = ()) -> list[Row]:
        """Messages whose attempt is due, of enabled integrations, oldest first (the messages a batch of events
        queued are due at one time: then in their source events' order); on PostgreSQL the rows are locked for
        this transaction and rows another dispatcher holds are skipped (``SKIP LOCKED``). ``excluded``: endpoints
        that may not be claimed now (throttled, or at their claims' cap): their backlog, however old, neither
        fills the page nor hides the others' due messages behind it."""
        query = (webhook_messages.select()  # WAITING: the partial index's own condition, so that it is used
                 .where(WAITING, m.next_attempt_at <= now,
                        m.integration_id.in_(sa.select(i.id).where(i.status == "enabled")))
                 .order_by(m.next_attempt_at, m.occurred_at, m.id).limit(limit))
        if excluded:
            query = query.where(m.integration_id.not_in(sorted(excluded)))
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=webhook_messages)
        return self._rows(query)

    def lease(self, ids: Collection[str], now: datetime) -> dict[str, Row]:
        """Claim these messages for their next attempt (the claim's lease: ``delivering``, ``claimed_at``, one
        more attempt), each only if it is still ``pending`` or ``failed`` with an attempt due, in one statement;
        the rows leased (id, version, attempts), fresh. On PostgreSQL the due query locked them: all are leased;
        on SQLite, the single writer: one that another process took or changed since the read is not."""
        if not ids:
            return {}
        result = self._conn.execute(
            webhook_messages.update().where(m.id.in_(sorted(set(ids))), m.status.in_((PENDING, FAILED)),
                                          m.next_attempt_at.is_not(None))
            .values(status=DELIVERING, attempts=m.attempts + 1, claimed_at=now, next_attempt_at=None, updated_at=now)
            .returning(m.id, m.version, m.attempts))
        return {row.id: {"version": row.version, "attempts": row.attempts} for row in result}

    def stale(self, before: datetime, limit: int) -> list[Row]:
        return self._rows(webhook_messages.select().where(m.status == DELIVERING, m.claimed_at < before)
                          .order_by(m.claimed_at, m.id).limit(limit))

    def pending_of_subject(self, subject_id: str) -> list[Row]:
        """The person's messages still waiting for an attempt. On PostgreSQL their rows are locked for this
        transaction: a claim leasing one of them meanwhile is waited for, and the row, ``delivering`` once it
        commits, is then left out (a lease moves no version: canceling it under the claim would make the
        attempt's outcome the one that conflicts)."""
        query = webhook_messages.select().where(
            m.subject_id == subject_id, m.status.in_((PENDING, FAILED)), m.next_attempt_at.is_not(None))
        if self._conn.dialect.name == "postgresql":
            query = query.order_by(m.id).with_for_update(of=webhook_messages)
        return self._rows(query)

    def failed_since(self, integration_id: str, since: datetime, after_id: str | None, limit: int) -> list[Row]:
        query = webhook_messages.select().where(m.integration_id == integration_id, m.created_at >= since,
                                                m.status == FAILED, m.next_attempt_at.is_(None))
        if after_id is not None:
            query = query.where(m.id > after_id)
        return self._rows(query.order_by(m.id).limit(limit))

    def count_failed_since(self, integration_id: str, since: datetime) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(webhook_messages).where(
            m.integration_id == integration_id, m.created_at >= since, m.status == FAILED,
            m.next_attempt_at.is_(None))).scalar_one())


class SqlSharedSubjects(_Repo):
    def of_subject(self, subject_id: str) -> dict[str, list[str]]:
        """The integrations that received this person's data, with the field names they received."""
        return {row["integration_id"]: list(row["fields"])
                for row in self._rows(shared_subjects.select().where(s.subject_id == subject_id))}


class SqlHealth(_Repo):
    def get_many(self, ids: list[str]) -> dict[str, Row]:
        if not ids:
            return {}
        return {row["integration_id"]: row
                for row in self._rows(endpoint_health.select().where(h.integration_id.in_(sorted(set(ids)))))}

    def lock_many(self, ids: list[str], now: datetime) -> dict[str, Row]:
        """The endpoints' rows, created when missing and, on PostgreSQL, locked until the transaction ends (two
        batches recording outcomes of one endpoint side by side, in this process or another, take turns)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        dialect = self._conn.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self._conn.execute(insert(endpoint_health).values(
            [{"integration_id": iid, "state": {}, "throttled_until": None, "updated_at": now} for iid in wanted])
            .on_conflict_do_nothing(index_elements=["integration_id"]))
        query = endpoint_health.select().where(h.integration_id.in_(wanted)).order_by(h.integration_id)
        if dialect == "postgresql":
            query = query.with_for_update()
        return {row["integration_id"]: row for row in self._rows(query)}

    def throttled(self, now: datetime) -> set[str]:
        return {row[0] for row in self._conn.execute(sa.select(h.integration_id).where(h.throttled_until > now))}

    def put(self, integration_id: str, state: dict, throttled_until: datetime | None, now: datetime) -> None:
        """The endpoint's new state (its row exists: :meth:`lock_many`)."""
        self._conn.execute(endpoint_health.update().where(h.integration_id == integration_id).values(
            state=state, throttled_until=throttled_until, updated_at=now))


class SqlRecoveries(_Repo):
    def add(self, row: Row) -> None:
        self._conn.execute(recoveries.insert().values(**row))

    def get(self, job_id: str) -> Row | None:
        return self._row(recoveries.select().where(r.id == job_id))

    def update(self, job_id: str, **values: Any) -> None:
        self._conn.execute(recoveries.update().where(r.id == job_id).values(**values))

    def running(self) -> list[Row]:
        return self._rows(recoveries.select().where(r.status == "running").order_by(r.created_at))


class SqlRepositories:
    def __init__(self, uow: UnitOfWork) -> None:
        self.integrations = SqlIntegrations(uow)
        self.secrets = SqlSecrets(uow)
        self.messages = SqlMessages(uow)
        self.shared = SqlSharedSubjects(uow)
        self.health = SqlHealth(uow)
        self.recoveries = SqlRecoveries(uow)


def with_sql_repositories(uow: UnitOfWork) -> UnitOfWork:
    """``uow`` (a kernel unit of work on the integrations database) with this service's repositories."""
    return uow.with_repositories(SqlRepositories)
