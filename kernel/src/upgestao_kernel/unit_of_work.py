"""Unit of work: one transaction holding events, read models, outbox and audit.

This is the only door to personal data: values go in through
``personal.seal`` and come out through ``personal.open``, and both write the
audit record into the same transaction. There is no unaudited read path.

:class:`UnitOfWorkPort` is what a service layer may use; :class:`UnitOfWork` is the real one
(SQLAlchemy, one database transaction) and :class:`upgestao_kernel.fakes.FakeUnitOfWork` the
in-memory one its unit tests run on. A service reaches its own tables through *repositories*:
a factory given to :meth:`UnitOfWork.with_repositories` builds them on the unit's connection,
and the unit hands them out by name (``uow.users``), so the service layer holds no SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from . import eventstore, tracing
from .audit import AuditEmitter, AuditRecord
from .context import RequestContext
from .events import Aggregate, EventEnvelope, NewEvent, utcnow
from .outbox import enqueue_event
from .projections import Projection
from .schema import processed_events
from .vault import ERASED, is_erased  # noqa: F401  (what an opened value of a shredded subject is)

if TYPE_CHECKING:
    from .keyed_requests import KeyedRequest

A = TypeVar("A", bound=Aggregate)
U = TypeVar("U", bound="RepositoryAccess")

RepositoryFactory = Callable[[Any], Any]
"""Builds a service's repositories for one unit of work (given the unit: they use its ``conn``)."""


class UnitOfWorkPort(Protocol):
    """What a use case may do with a unit of work, whichever implementation it gets.

    ``with uow:`` commits on success and rolls back on error; a denial (``deny``) is kept either way.
    """

    context: RequestContext
    recorded: list[EventEnvelope]

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type, exc, tb) -> None: ...

    @property
    def personal(self) -> PersonalData:
        """The only door to personal values: seal, open, blind_index, shred (audited)."""

    def record(self, stream_id: str, expected_version: int | None,
               new_events: Sequence[NewEvent]) -> list[EventEnvelope]: ...

    def stream_version(self, stream_id: str) -> int: ...

    def load(self, aggregate_cls: type[A], id: str) -> A | None: ...

    def save(self, aggregate: Aggregate) -> list[EventEnvelope]: ...

    def save_many(self, aggregates: Sequence[Aggregate],
                  contexts: Sequence[RequestContext] | None = None) -> list[EventEnvelope]: ...

    def audit_access(self, **kwargs: Any) -> AuditRecord: ...

    def deny(self, **kwargs: Any) -> AuditRecord: ...

    def claim(self, consumer: str, event_id: str) -> bool: ...

    def claim_many(self, consumer: str, event_ids: Sequence[str]) -> set[str]: ...

    @property
    def repositories(self) -> Any:
        """The service's repositories, also reachable by name (``uow.users``)."""


class RepositoryAccess:
    """Hands a unit of work's repositories to the service layer: ``uow.users`` is
    ``uow.repositories.users``, built once per unit by the factory given to :meth:`with_repositories`."""

    _repository_factory: RepositoryFactory | None = None
    _repository_set: Any = None

    def with_repositories(self: U, factory: RepositoryFactory) -> U:
        self._repository_factory = factory
        self._repository_set = None
        return self

    @property
    def repositories(self) -> Any:
        if self._repository_set is None:
            if self._repository_factory is None:
                raise RuntimeError("this unit of work has no repositories: build it with with_repositories()")
            self._repository_set = self._repository_factory(self)
        return self._repository_set

    def __getattr__(self, name: str) -> Any:
        # Called only when ordinary lookup failed: a repository's name, or a genuine AttributeError.
        if name.startswith("_") or name == "repositories" or self._repository_factory is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.repositories, name)


class PersonalData:
    """Encrypt and decrypt personal fields, auditing every access."""

    def __init__(self, conn: Connection, vault: Any, audit: AuditEmitter, context: RequestContext,
                 request: KeyedRequest | None = None) -> None:
        self._conn = conn
        self._vault = vault
        self._audit = audit
        self._context = context
        self._request = request

    def _touch(self, subject_id: str) -> None:
        if self._request is not None:  # a kept reply is sealed under the subject whose values it holds
            self._request.note_subject(subject_id)

    def seal(
        self,
        *,
        subject_id: str,
        resource_type: str,
        resource_id: str | None,
        values: Mapping[str, str | None],
        purpose: str,
        action: str = "create",
    ) -> dict[str, str | None]:
        """Encrypt ``values`` under the subject's key; audited as ``action``."""
        self._touch(subject_id)
        self._audit.record(
            self._conn, self._context, action=action, resource_type=resource_type,
            resource_id=resource_id, subject_id=subject_id, fields=values.keys(), purpose=purpose,
        )
        return {name: self._vault.encrypt(self._conn, subject_id, name, value) for name, value in values.items()}

    def open(
        self,
        *,
        subject_id: str,
        resource_type: str,
        resource_id: str | None,
        sealed: Mapping[str, str | None],
        purpose: str,
        action: str = "read",
        recipient: str | None = None,
    ) -> dict[str, Any]:
        """Decrypt ``sealed`` fields; the audit record is written first (``recipient``: with whom the values
        are shared, action ``share``)."""
        self._touch(subject_id)
        self._audit.record(
            self._conn, self._context, action=action, resource_type=resource_type,
            resource_id=resource_id, subject_id=subject_id, fields=sealed.keys(), purpose=purpose,
            recipient=recipient,
        )
        return self._vault.decrypt_many(self._conn, subject_id, dict(sealed))

    def open_many(
        self,
        *,
        subject_id: str,
        resource_type: str,
        items: Sequence[tuple[str, Mapping[str, str | None]]],
        purpose: str,
        action: str = "read",
        recipient: str | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`open` for several resources of one subject (a page of its messages): the same audit
        records, one per ``(resource_id, sealed)`` item and written first, in one statement; one key lookup."""
        return self.open_each(resource_type=resource_type, items=[(subject_id, resource_id, sealed)
                                                                  for resource_id, sealed in items],
                              purpose=purpose, action=action, recipient=recipient)

    def open_each(
        self,
        *,
        resource_type: str,
        items: Sequence[tuple[str, str | None, Mapping[str, str | None]]],
        purpose: str,
        action: str = "read",
        recipient: str | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`open` for several resources of one subject or of several (a search's hits, of many
        conversations), each item ``(subject_id, resource_id, sealed)``: the same audit records, one per item
        (its own id, subject, resource and fields) and written first, all in one statement; one statement
        looks up every subject's key. The opened values in the order of ``items``."""
        if not items:
            return []
        batches: dict[str, list[dict[str, str | None]]] = {}
        for subject_id, _, sealed in items:
            batch = batches.get(subject_id)
            if batch is None:
                self._touch(subject_id)
                batch = batches[subject_id] = []
            batch.append(dict(sealed))
        self._audit.emit_accesses(self._conn, self._context, action=action, resource_type=resource_type,
                                  accesses=[(resource_id, subject_id, tuple(sealed))
                                            for subject_id, resource_id, sealed in items], purpose=purpose,
                                  recipient=recipient)
        if len(batches) == 1:
            [(subject_id, batch)] = batches.items()
            return self._vault.decrypt_batch(self._conn, subject_id, batch)
        opened = {subject_id: iter(values)
                  for subject_id, values in self._vault.decrypt_subjects(self._conn, batches).items()}
        return [next(opened[subject_id]) for subject_id, _, _ in items]

    def blind_index(self, field: str, value: str) -> str:
        """Exact-match lookup key: no personal value is revealed, so not audited."""
        return self._vault.blind_index(field, value)

    def shred(self, *, subject_id: str, resource_type: str, purpose: str) -> bool:
        """Destroy the subject's key: every ciphertext of theirs becomes unreadable."""
        self._audit.record(
            self._conn, self._context, action="erase", resource_type=resource_type,
            resource_id=subject_id, subject_id=subject_id, fields=(), purpose=purpose,
        )
        return self._vault.shred(self._conn, subject_id)


class UnitOfWork(RepositoryAccess):
    """``with UnitOfWork(...) as uow:`` commits on success, rolls back on error.

    Inside a keyed request (``request``, see :mod:`.keyed_requests`) the commit of a successful
    unit is deferred until the request's reply is known, and made with the reply in the same
    transaction; the first unit of the request claims its key.
    """

    def __init__(
        self,
        engine: Engine,
        service: str,
        context: RequestContext,
        projections: Sequence[Projection] = (),
        vault: Any = None,
        request: KeyedRequest | None = None,
        repositories: RepositoryFactory | None = None,
    ) -> None:
        self.engine = engine
        self.request = request
        self.service = service
        self.context = context
        self.projections = tuple(projections)
        self._vault = vault  # private: personal data goes through ``personal`` only
        self.audit = AuditEmitter(service)
        self._conn: Connection | None = None
        self._denied: list[AuditRecord] = []
        self.recorded: list[EventEnvelope] = []
        if repositories is not None:
            self.with_repositories(repositories)

    def __enter__(self) -> UnitOfWork:
        conn = None
        if self.request is not None:
            self.request.begin_unit()  # the request's previous unit commits before this one opens
            conn = self.request.take_connection()  # the first unit: the connection its key was looked up on
        self._conn = conn if conn is not None else self.engine.connect()
        self._conn.begin()
        if self.request is not None:
            try:
                self.request.claim(self)
            except BaseException:
                self._conn.rollback()
                self._conn.close()
                self._conn = None
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._conn is not None
        deferred = False
        try:
            if exc_type is None:
                for record in self._denied:
                    self.audit.emit(self._conn, self.context, record)
                if self.request is not None:
                    self.request.defer(self)  # committed with the reply (or when the next unit opens)
                    deferred = True
                else:
                    self._conn.commit()
            else:
                self._conn.rollback()
                if self.request is not None:
                    self.request.rolled_back(self)
                if self._denied:
                    # The attempt's own work is gone; its denial must not be.
                    with self.engine.begin() as conn:
                        for record in self._denied:
                            self.audit.emit(conn, self.context, record)
        finally:
            if not deferred:
                self._conn.close()
                self._conn = None

    def release(self) -> Connection:
        """The open connection of a deferred unit, handed to its keyed request to commit or roll back."""
        conn, self._conn = self._conn, None
        if conn is None:
            raise RuntimeError("unit of work has no open connection")
        return conn

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its with-block")
        return self._conn

    @property
    def personal(self) -> PersonalData:
        if self._vault is None:
            raise RuntimeError(f"{self.service} has no vault configured")
        return PersonalData(self.conn, self._vault, self.audit, self.context, self.request)

    # -- events ------------------------------------------------------------
    def record(
        self, stream_id: str, expected_version: int | None, new_events: Sequence[NewEvent]
    ) -> list[EventEnvelope]:
        """Append, project and queue for publication, all in this transaction."""
        with tracing.span("eventstore.append") as span:  # the outbox rows carry it: the relay continues it
            if span is not None:
                span.set_attributes(_append_attributes(self.service, new_events))
            envelopes = eventstore.append(self.conn, stream_id, expected_version, new_events, self.context)
            for event, envelope in zip(new_events, envelopes, strict=True):
                for projection in self.projections:
                    projection.apply(self.conn, envelope)
                enqueue_event(self.conn, self.service, event, envelope, self.context)
        self.recorded.extend(envelopes)
        return envelopes

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0: no such stream), to append at with ``record``."""
        return eventstore.current_version(self.conn, stream_id)

    def load(self, aggregate_cls: type[A], id: str) -> A | None:
        history = eventstore.read_stream(self.conn, aggregate_cls.stream_id_for(id))
        return aggregate_cls.replay(id, history) if history else None

    def save(self, aggregate: Aggregate) -> list[EventEnvelope]:
        envelopes = self.record(aggregate.stream_id, aggregate.expected_version, aggregate.collect())
        if envelopes:
            aggregate.version = envelopes[-1].version
        return envelopes

    def save_many(self, aggregates: Sequence[Aggregate],
                  contexts: Sequence[RequestContext] | None = None) -> list[EventEnvelope]:
        """:meth:`save` for several aggregates (one stream each), all or nothing, in a few statements: the
        streams' versions in one, every event in one, and each projection given the whole list
        (``apply_many`` when it has one, else ``apply`` per event, in order). ``contexts``: one per aggregate
        (work caused by several events: each aggregate's events caused by its own), else this unit's."""
        items = [(a, a.collect()) for a in aggregates]
        with tracing.span("eventstore.append") as span:
            if span is not None:
                span.set_attributes(_append_attributes(self.service, [e for _, new in items for e in new]))
            return self._save_many(items, contexts)

    def _save_many(self, items: list[tuple[Aggregate, list[NewEvent]]],
                   contexts: Sequence[RequestContext] | None) -> list[EventEnvelope]:
        appended = eventstore.append_many(self.conn, [(a.stream_id, a.expected_version, new) for a, new in items],
                                          self.context, contexts=contexts)
        envelopes = [e for item in appended for e in item]
        for projection in self.projections:
            apply_many = getattr(projection, "apply_many", None)
            if apply_many is not None:
                apply_many(self.conn, envelopes)
            else:
                for envelope in envelopes:
                    projection.apply(self.conn, envelope)
        for index, ((aggregate, new), item) in enumerate(zip(items, appended, strict=True)):
            for event, envelope in zip(new, item, strict=True):
                enqueue_event(self.conn, self.service, event, envelope,
                              self.context if contexts is None else contexts[index])
            if item:
                aggregate.version = item[-1].version
        self.recorded.extend(envelopes)
        return envelopes

    # -- audit without personal values (lists, logins, queries) --------------
    def audit_access(self, **kwargs: Any) -> AuditRecord:
        return self.audit.record(self.conn, self.context, **kwargs)

    def deny(self, **kwargs: Any) -> AuditRecord:
        """Record a refused attempt; it is written whether this unit commits or rolls back."""
        record = self.audit.build(self.context, outcome="denied", **kwargs)
        self._denied.append(record)
        return record

    # -- idempotent consumption --------------------------------------------
    def claim(self, consumer: str, event_id: str) -> bool:
        """Mark ``event_id`` processed by ``consumer``; False if it already was (one statement: the row is
        skipped on conflict, no savepoint)."""
        insert = _SKIPPING_CLAIMS.get(self.conn.dialect.name)
        if insert is not None:
            result = self.conn.execute(insert, {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()})
            return result.rowcount == 1
        try:  # pragma: no cover - the kernel runs on PostgreSQL and SQLite
            with self.conn.begin_nested():
                self.conn.execute(
                    processed_events.insert().values(consumer=consumer, event_id=event_id, processed_at=utcnow())
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def claim_many(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """:meth:`claim` for several events (a batch consumer's) in one statement, in id order (two units
        claiming some of the same ids wait for each other, never deadlock): the ids claimed now, without
        those processed before."""
        ids = sorted(set(event_ids))
        insert = _SKIPPING_CLAIMS.get(self.conn.dialect.name)
        if not ids or insert is None:  # pragma: no cover - the kernel runs on PostgreSQL and SQLite
            return {event_id for event_id in ids if self.claim(consumer, event_id)}
        now = utcnow()
        rows = self.conn.execute(insert.values([{"consumer": consumer, "event_id": event_id, "processed_at": now}
                                                for event_id in ids]).returning(_CLAIMED))
        return set(rows.scalars())


def _append_attributes(service: str, events: Sequence[NewEvent]) -> dict[str, Any]:
    """An append's span attributes: the event types (a bounded set of names) and their count, no values."""
    return {"upgestao.service": service, "upgestao.event_count": len(events),
            "upgestao.event_types": sorted({e.type for e in events})}


_CLAIMED = processed_events.c.event_id
_SKIPPING_CLAIMS = {
    name: dialect_insert(processed_events).on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}

