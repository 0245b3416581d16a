"""In-memory stand-ins for the unit of work and the vault, for unit tests of use cases.

A :class:`MemoryStore` is a service's database in memory: the event log, the tables its
repositories keep (read models and operational stores, rows as dicts), the outbox (published
events and audit records) and the vault's keys. A :class:`FakeUnitOfWork` is one transaction on
it: what it does is seen by itself at once and by the store only when its ``with`` block ends
well; an error discards all of it except its denials, as in the real :class:`UnitOfWork`.

The fake behaves like the real unit where a use case can tell (``kernel/tests/test_fakes.py``
runs the same scenarios on both):

* events get versions, actor, correlation and causation ids the way ``eventstore.append`` gives
  them, and a stale ``expected_version`` raises :class:`ConcurrencyError` writing nothing (also
  when another unit committed the same stream in between);
* personal data goes through the kernel's own :class:`PersonalData`, so each seal, open and shred
  writes the same audit record; the :class:`FakeVault` keeps values out of its ciphertexts and
  answers :data:`ERASED` once the subject is shredded;
* published events and audit records go through the kernel's own outbox code, so bodies and
  headers are the real ones.

What it does not do: SQL (a repository on the fake keeps its rows in :meth:`MemoryTransaction.table`),
unique constraints across concurrent units, and keyed requests (it commits when its block ends).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .audit import AuditEmitter, AuditRecord, records_in
from .context import RequestContext
from .events import Aggregate, EventEnvelope, NewEvent, new_id, utcnow
from .eventstore import ConcurrencyError
from .outbox import enqueue_event
from .schema import outbox
from .topology import AUDIT_EXCHANGE, events_exchange_name
from .unit_of_work import A, PersonalData, RepositoryAccess, RepositoryFactory
from .vault import ERASED, Erased, VaultError, _check_ids, _normalise

_DELETED = object()


class MemoryProjection(Protocol):
    """A read model kept in memory: folds ``event`` into the transaction's tables."""

    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None: ...


@dataclass
class MemoryStore:
    """A service's database in memory; shared by every unit of work of a test."""

    service: str = "service"
    tables: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    events: list[EventEnvelope] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    vault_log: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, subject, field)
    _positions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def begin(self) -> MemoryTransaction:
        return MemoryTransaction(self)

    # -- what tests inspect -------------------------------------------------
    def stream(self, stream_id: str) -> list[EventEnvelope]:
        return [e for e in self.events if e.stream_id == stream_id]

    def version(self, stream_id: str) -> int:
        return max((e.version for e in self.events if e.stream_id == stream_id), default=0)

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    def audit_records(self, **match: Any) -> list[dict[str, Any]]:
        """The audit records committed, in order, whose keys equal ``match``: one per record, a batch
        message (:meth:`~upgestao_kernel.audit.AuditEmitter.emit_many`) read as the records it carries."""
        return [record for m in self.outbox if m["exchange"] == AUDIT_EXCHANGE for record in records_in(m["body"])
                if all(record.get(k) == v for k, v in match.items())]

    def published(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Bodies of the events published on ``<service>.events``, in order."""
        exchange = events_exchange_name(self.service)
        return [m["body"] for m in self.outbox
                if m["exchange"] == exchange and (event_type is None or m["routing_key"] == event_type)]

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self.tables.get(table, {}).values()]

    # -- committing ---------------------------------------------------------
    def _commit(self, tx: MemoryTransaction) -> None:
        for stream_id, base in tx.stream_bases.items():
            actual = self.version(stream_id)
            if actual != base:  # another unit appended to the stream since this one read it
                raise ConcurrencyError(stream_id, base, actual)
        self.events.extend(tx.events)
        for name, changes in tx.changes.items():
            table = self.tables.setdefault(name, {})
            for key, row in changes.items():
                if row is _DELETED:
                    table.pop(key, None)
                else:
                    table[key] = row
        self.outbox.extend(tx.outbox)
        self.vault_log.extend(tx.vault_log)


class MemoryTransaction:
    """One unit's view of a :class:`MemoryStore`: reads see its own writes, the store sees them at commit.

    It stands where the real unit has its SQLAlchemy connection (``uow.conn``), and understands
    one SQL statement only, the outbox insert, so that the kernel's outbox and audit code runs
    unchanged on it.
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.changes: dict[str, dict[Any, Any]] = {}
        self.events: list[EventEnvelope] = []
        self.stream_bases: dict[str, int] = {}
        self.outbox: list[dict[str, Any]] = []
        self.vault_log: list[tuple[str, str, str]] = []

    # -- tables ---------------------------------------------------------------
    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        changed = self.changes.get(table, {}).get(key)
        if changed is _DELETED:
            return None
        row = changed if changed is not None else self.store.tables.get(table, {}).get(key)
        return dict(row) if row is not None else None

    def put(self, table: str, key: Any, row: Mapping[str, Any]) -> None:
        self.changes.setdefault(table, {})[key] = dict(row)

    def update(self, table: str, key: Any, **values: Any) -> bool:
        """Change some columns of one row; False when there is no such row (like an UPDATE of 0 rows)."""
        row = self.get(table, key)
        if row is None:
            return False
        row.update(values)
        self.put(table, key, row)
        return True

    def delete(self, table: str, key: Any) -> None:
        self.changes.setdefault(table, {})[key] = _DELETED

    def table(self, name: str) -> dict[Any, dict[str, Any]]:
        """Every row of ``name`` as this transaction sees it (copies: change them with ``put``)."""
        rows = {k: dict(v) for k, v in self.store.tables.get(name, {}).items()}
        for key, row in self.changes.get(name, {}).items():
            if row is _DELETED:
                rows.pop(key, None)
            else:
                rows[key] = dict(row)
        return rows

    # -- events -----------------------------------------------------------------
    def stream_version(self, stream_id: str) -> int:
        own = [e.version for e in self.events if e.stream_id == stream_id]
        return max(own) if own else self.store.version(stream_id)

    def stream(self, stream_id: str) -> list[EventEnvelope]:
        return self.store.stream(stream_id) + [e for e in self.events if e.stream_id == stream_id]

    def append(self, stream_id: str, expected_version: int | None, new_events: Sequence[NewEvent],
               context: RequestContext) -> list[EventEnvelope]:
        """As ``eventstore.append``: after ``expected_version`` (0: a new stream; None: any), or
        :class:`ConcurrencyError` and nothing appended."""
        if not new_events:
            return []
        actual = self.stream_version(stream_id)
        if expected_version is not None and actual != expected_version:
            raise ConcurrencyError(stream_id, expected_version, actual)
        self.stream_bases.setdefault(stream_id, actual)
        when = utcnow()
        envelopes = [
            EventEnvelope(
                event_id=new_id(), stream_id=stream_id, version=actual + offset, type=event.type,
                occurred_at=when, actor=context.actor,
                correlation_id=context.correlation_id or context.request_id,
                causation_id=context.causation_id or context.request_id,
                data=dict(event.data), position=next(self.store._positions),
            )
            for offset, event in enumerate(new_events, start=1)
        ]
        self.events.extend(envelopes)
        return envelopes

    # -- the outbox (the one statement understood) ----------------------------
    def execute(self, statement: Any,
                parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> None:
        if getattr(statement, "table", None) is not outbox or parameters is None:
            raise TypeError("the in-memory unit of work runs no SQL: use the service's in-memory repositories")
        for row in [parameters] if isinstance(parameters, Mapping) else parameters:  # one insert, or several
            self.outbox.append({k: row[k] for k in ("message_id", "exchange", "routing_key", "body", "headers")})


class MemoryRepository:
    """Base of a service's in-memory repository: its rows live in the unit of work's transaction
    (``tx``), so they commit and roll back with it."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def tx(self) -> MemoryTransaction:
        return self._uow.conn


class FakeVault:
    """The vault's behaviour without its cryptography, for unit tests.

    A ciphertext is an opaque ``fake1:<id>``; the value stays in the store's ``vault_values``
    table beside the subject's key row, so a shred (which deletes them) makes every value of the
    subject unreadable: it opens as :data:`ERASED`, and nothing can be sealed for it any more.
    Blind indexes are keyed HMACs over the same normalisation as the real ones.
    """

    PREFIX = "fake1:"

    def __init__(self, blind_index_key: bytes = b"fake-blind-index-key") -> None:
        self._blind_index_key = blind_index_key

    def encrypt(self, tx: MemoryTransaction, subject_id: str, field: str, value: str | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"vault values are str, got {type(value).__name__}")
        _check_ids(subject_id, field)
        key = tx.get("subject_keys", subject_id)
        if key is None:
            tx.put("subject_keys", subject_id, {"subject_id": subject_id, "shredded": False})
        elif key["shredded"]:
            raise VaultError(f"subject {subject_id!r} is shredded: refusing to store personal data")
        ciphertext = self.PREFIX + new_id()
        tx.put("vault_values", ciphertext, {"subject_id": subject_id, "field": field, "value": value})
        tx.vault_log.append(("seal", subject_id, field))
        return ciphertext

    def decrypt(self, tx: MemoryTransaction, subject_id: str, field: str,
                ciphertext: str | None) -> str | Erased | None:
        return self.decrypt_many(tx, subject_id, {field: ciphertext})[field]

    def decrypt_many(self, tx: MemoryTransaction, subject_id: str,
                     ciphertexts: Mapping[str, str | None]) -> dict[str, str | Erased | None]:
        _check_ids(subject_id)
        if all(ct is None for ct in ciphertexts.values()):
            return dict(ciphertexts)
        key = tx.get("subject_keys", subject_id)
        if key is None:
            raise VaultError(f"no data key for subject {subject_id!r}")
        out: dict[str, str | Erased | None] = {}
        for name, ct in ciphertexts.items():
            if ct is None:
                out[name] = None
            elif key["shredded"]:
                out[name] = ERASED
            else:
                stored = tx.get("vault_values", ct) if isinstance(ct, str) else None
                if stored is None or (stored["subject_id"], stored["field"]) != (subject_id, name):
                    raise VaultError(f"{name}: ciphertext does not authenticate (tampered, or of another "
                                     "subject/field)")
                out[name] = stored["value"]
                tx.vault_log.append(("open", subject_id, name))
        return out

    def decrypt_batch(self, tx: MemoryTransaction, subject_id: str,
                      items: Sequence[Mapping[str, str | None]]) -> list[dict[str, str | Erased | None]]:
        return [self.decrypt_many(tx, subject_id, item) for item in items]

    def decrypt_subjects(self, tx: MemoryTransaction, batches: Mapping[str, Sequence[Mapping[str, str | None]]]
                         ) -> dict[str, list[dict[str, str | Erased | None]]]:
        return {subject_id: self.decrypt_batch(tx, subject_id, items) for subject_id, items in batches.items()}

    def blind_index(self, field: str, value: str) -> str:
        msg = (field + "\x00" + _normalise(value)).encode()
        return hmac.new(self._blind_index_key, msg, hashlib.sha256).hexdigest()

    def is_shredded(self, tx: MemoryTransaction, subject_id: str) -> bool:
        key = tx.get("subject_keys", subject_id)
        return key is not None and key["shredded"]

    def shred(self, tx: MemoryTransaction, subject_id: str) -> bool:
        """Destroy the subject's values; True if a live key was destroyed (a tombstone otherwise)."""
        _check_ids(subject_id)
        key = tx.get("subject_keys", subject_id)
        tx.put("subject_keys", subject_id, {"subject_id": subject_id, "shredded": True})
        for ciphertext, stored in tx.table("vault_values").items():
            if stored["subject_id"] == subject_id:
                tx.delete("vault_values", ciphertext)
        tx.vault_log.append(("shred", subject_id, ""))
        return key is not None and not key["shredded"]


class FakeUnitOfWork(RepositoryAccess):
    """The in-memory unit of work: :class:`~upgestao_kernel.unit_of_work.UnitOfWorkPort` on a
    :class:`MemoryStore`. ``repositories`` builds the service's in-memory repositories, which keep
    their rows in ``uow.conn`` (the unit's :class:`MemoryTransaction`)."""

    def __init__(
        self,
        store: MemoryStore,
        context: RequestContext,
        projections: Sequence[MemoryProjection] = (),
        vault: FakeVault | None = None,
        repositories: RepositoryFactory | None = None,
    ) -> None:
        self.store = store
        self.service = store.service
        self.context = context
        self.projections = tuple(projections)
        self._vault = vault
        self.audit = AuditEmitter(store.service)
        self._tx: MemoryTransaction | None = None
        self._denied: list[AuditRecord] = []
        self.recorded: list[EventEnvelope] = []
        if repositories is not None:
            self.with_repositories(repositories)

    def __enter__(self) -> FakeUnitOfWork:
        self._tx = self.store.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        tx, self._tx = self._tx, None
        assert tx is not None
        if exc_type is None:
            for record in self._denied:
                self.audit.emit(tx, self.context, record)
            try:
                self.store._commit(tx)
                return
            except ConcurrencyError:
                self._keep_denials()
                raise
        self._keep_denials()

    def _keep_denials(self) -> None:
        if self._denied:  # the attempt's own work is gone; its denial must not be
            tx = self.store.begin()
            for record in self._denied:
                self.audit.emit(tx, self.context, record)
            self.store._commit(tx)

    @property
    def conn(self) -> MemoryTransaction:
        if self._tx is None:
            raise RuntimeError("unit of work used outside its with-block")
        return self._tx

    @property
    def personal(self) -> PersonalData:
        if self._vault is None:
            raise RuntimeError(f"{self.service} has no vault configured")
        return PersonalData(self.conn, self._vault, self.audit, self.context)  # type: ignore[arg-type]

    # -- events ------------------------------------------------------------
    def record(self, stream_id: str, expected_version: int | None,
               new_events: Sequence[NewEvent]) -> list[EventEnvelope]:
        tx = self.conn
        envelopes = tx.append(stream_id, expected_version, new_events, self.context)
        for event, envelope in zip(new_events, envelopes, strict=True):
            for projection in self.projections:
                projection.apply(tx, envelope)
            enqueue_event(tx, self.service, event, envelope, self.context)  # type: ignore[arg-type]
        self.recorded.extend(envelopes)
        return envelopes

    def stream_version(self, stream_id: str) -> int:
        return self.conn.stream_version(stream_id)

    def load(self, aggregate_cls: type[A], id: str) -> A | None:
        history = self.conn.stream(aggregate_cls.stream_id_for(id))
        return aggregate_cls.replay(id, history) if history else None

    def save(self, aggregate: Aggregate) -> list[EventEnvelope]:
        envelopes = self.record(aggregate.stream_id, aggregate.expected_version, aggregate.collect())
        if envelopes:
            aggregate.version = envelopes[-1].version
        return envelopes

    def save_many(self, aggregates: Sequence[Aggregate],
                  contexts: Sequence[RequestContext] | None = None) -> list[EventEnvelope]:
        """As the real one: all or nothing (checked before anything is appended), in order; each aggregate's
        events under its own context when ``contexts`` are given."""
        streams = [a.stream_id for a in aggregates if a._pending]
        if len(streams) != len(set(streams)):
            raise ValueError("save_many: a stream appears more than once")
        if contexts is not None and len(contexts) != len(aggregates):
            raise ValueError("save_many: one context per aggregate")
        for aggregate in aggregates:
            actual = self.conn.stream_version(aggregate.stream_id)
            if aggregate._pending and aggregate.expected_version is not None and actual != aggregate.expected_version:
                raise ConcurrencyError(aggregate.stream_id, aggregate.expected_version, actual)
        if contexts is None:
            return [e for aggregate in aggregates for e in self.save(aggregate)]
        own, saved = self.context, []
        try:
            for aggregate, context in zip(aggregates, contexts, strict=True):
                self.context = context
                saved += self.save(aggregate)
        finally:
            self.context = own
        return saved

    # -- audit ---------------------------------------------------------------
    def audit_access(self, **kwargs: Any) -> AuditRecord:
        return self.audit.record(self.conn, self.context, **kwargs)  # type: ignore[arg-type]

    def deny(self, **kwargs: Any) -> AuditRecord:
        record = self.audit.build(self.context, outcome="denied", **kwargs)
        self._denied.append(record)
        return record

    # -- idempotent consumption --------------------------------------------
    def claim(self, consumer: str, event_id: str) -> bool:
        tx = self.conn
        if tx.get("processed_events", (consumer, event_id)) is not None:
            return False
        tx.put("processed_events", (consumer, event_id),
               {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()})
        return True

    def claim_many(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        return {event_id for event_id in sorted(set(event_ids)) if self.claim(consumer, event_id)}
