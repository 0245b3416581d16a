"""Ingest: audit records from the ``audit`` exchange into the append-only log.

A message carries one record or a batch of them (``{"records": [...]}``, what the
kernel's ``AuditEmitter.emit_many`` sends: :func:`parse_message`); a batch of
messages is validated record by record (a malformed record is refused with its
whole message, to be parked by the caller, nothing of it stored; so is a message
too large or a batch of too many records), appended in one transaction (gap-free
seqs, Merkle nodes, head) and, when 1,000 records arrived since the last
checkpoint, signed in the same transaction. The caller acks the messages
only after this returns: a crash at any point leaves them in the queue, and
redelivered records are recognised by ``audit_id``.

The log is reached through :class:`~..adapters.ports.AuditLogRepository`, one per transaction
opened by the ``transaction`` given (SQL in the service, in memory in the unit tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, validate
from upgestao_kernel.audit import ACTIONS, BATCH_KEY, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, OUTCOMES, AuditRecordSchema
from upgestao_kernel.broker_identity import service_of_user

from ..adapters.ports import Appended, AuditLogTransactions
from ..domain.checkpoints import Checkpoint, CheckpointSigner
from .checkpointing import checkpoint_if_due

# the lengths of the indexed columns (adapters.tables), so a valid record always fits
_LIMITS = {"service": 64, "resource_type": 64, "subject_id": 64, "actor_id": 64, "actor_role": 64,
           "request_id": 128, "resource_id": 200, "purpose": 200, "source_ip": 64, "recipient": 200}


class IngestSchema(AuditRecordSchema):
    """The wire form, with the lengths the store can hold."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, limit in _LIMITS.items():
            self.fields[name].validators.append(validate.Length(max=limit))


_schema = IngestSchema()
# (matched with fullmatch: "$" would also match before a trailing newline, which the schema refuses)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})")
_REQUIRED_TEXT = ("service", "action", "resource_type", "purpose", "outcome")
_OPTIONAL_TEXT = ("actor_id", "actor_role", "resource_id", "subject_id", "request_id", "source_ip", "recipient")
_KEYS = frozenset(("audit_id", "occurred_at", "fields", *_REQUIRED_TEXT, *_OPTIONAL_TEXT))
_ACTIONS = frozenset(ACTIONS)
_OUTCOMES = frozenset(OUTCOMES)
# What one message may hold, at most: twice what the kernel's emitter puts in one (a sender's broker
# user cannot make the ingest decode a 100 MB body or validate a million records of one message).
MAX_MESSAGE_BYTES = 2 * MAX_BATCH_BYTES
MAX_MESSAGE_RECORDS = 2 * MAX_BATCH_RECORDS


def parse(body: Any) -> dict[str, Any]:
    """The record to store, in its canonical wire form; ``ValueError`` if malformed.

    Records as the kernel emits them take a fast path (this runs for every
    record); anything else is judged by the schema, which also words the error.
    """
    return _fast(body) or _by_schema(body)


def parse_message(body: bytes | str) -> list[dict[str, Any]]:
    """The records of a message of the ingest queue: JSON holding one record or a batch
    (``{"records": [<record>, ...]}``), each record by :func:`parse`. ``ValueError``
    (``RecursionError`` for JSON nested too deep) if it can never be stored, whole: a message
    over :data:`MAX_MESSAGE_BYTES`, a batch of no or over :data:`MAX_MESSAGE_RECORDS` records,
    any record of it malformed. The consumer parks it."""
    if len(body) > MAX_MESSAGE_BYTES:  # refused before it is decoded
        raise ValueError(f"the message is over {MAX_MESSAGE_BYTES} bytes")
    value = json.loads(body)
    if type(value) is not dict or BATCH_KEY not in value:
        return [parse(value)]
    records = value[BATCH_KEY]
    if len(value) != 1 or type(records) is not list:
        raise ValueError(f"a batch is an object of one key, {BATCH_KEY!r}, a list of records")
    if not 0 < len(records) <= MAX_MESSAGE_RECORDS:
        raise ValueError(f"a batch holds from 1 to {MAX_MESSAGE_RECORDS} records")
    parsed = []
    for index, record in enumerate(records):
        try:
            parsed.append(parse(record))
        except ValueError as exc:
            raise ValueError(f"record {index} of the batch: {exc}") from None
    return parsed


def refused(exc: BaseException) -> bool:
    """A database error that blames a record (a constraint, a value it cannot hold), not the
    database being away (a lost connection, an operational error): that record is parked."""
    return (isinstance(exc, sa.exc.DBAPIError) and not exc.connection_invalidated
            and not isinstance(exc, sa.exc.OperationalError))


def describe_error(exc: BaseException) -> str:
    """What went wrong, without the values involved: a database error's text can quote the
    failing row (a record's source address, say), so only its type and SQLSTATE are kept;
    the parser's own errors name fields only."""
    if isinstance(exc, sa.exc.DBAPIError):
        return f"{type(exc.orig).__name__} (SQLSTATE {getattr(exc.orig, 'pgcode', None) or '?'})"
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
        return f"{type(exc).__name__}: {exc}"[:1000]
    return type(exc).__name__


def _fast(body: Any) -> dict[str, Any] | None:
    """The canonical record if ``body`` is exactly what the kernel emits, else ``None``
    (it accepts a subset of what the schema accepts, and gives the same result)."""
    if type(body) is not dict or body.keys() != _KEYS:
        return None
    for name in _REQUIRED_TEXT:
        value = body[name]
        if type(value) is not str or not value or len(value) > _LIMITS.get(name, 10_000):
            return None
    for name in _OPTIONAL_TEXT:
        value = body[name]
        if value is not None and (type(value) is not str or len(value) > _LIMITS[name]):
            return None
    fields = body["fields"]
    if (type(fields) is not list or any(type(f) is not str for f in fields) or body["action"] not in _ACTIONS
            or body["outcome"] not in _OUTCOMES or type(body["audit_id"]) is not str
            or not _UUID.fullmatch(body["audit_id"]) or type(body["occurred_at"]) is not str
            or not _ISO_TIME.fullmatch(body["occurred_at"])):
        return None
    try:
        occurred_at = datetime.fromisoformat(body["occurred_at"])
        if occurred_at.tzinfo is None:
            return None
        occurred_at = occurred_at.astimezone(UTC)
    except (ValueError, OverflowError):  # (year 1 or 9999 with an offset may not exist in UTC)
        return None
    record = dict(body)
    record["occurred_at"] = occurred_at.isoformat(timespec="microseconds")
    record["fields"] = sorted(set(fields))
    return record


def _by_schema(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ValueError("an audit record must be a JSON object")
    try:
        loaded = _schema.load(body)
    except ValidationError as exc:
        # only the record's own field names: an unknown key is the publisher's text (it may be a value)
        named = sorted(name for name in exc.messages if name in _KEYS)
        unknown = len(exc.messages) - len(named)
        raise ValueError(f"invalid audit record: {named}" + (f" and {unknown} unknown keys" if unknown else "")) \
            from None
    try:
        occurred_at = loaded["occurred_at"].astimezone(UTC)
    except OverflowError:  # an instant of year 1 or 9999 that UTC cannot hold
        raise ValueError("invalid audit record: ['occurred_at']") from None
    record = dict(loaded)
    record["audit_id"] = str(loaded["audit_id"])
    record["occurred_at"] = occurred_at.isoformat(timespec="microseconds")
    record["fields"] = sorted(set(loaded["fields"]))
    for name in _OPTIONAL_TEXT:
        record.setdefault(name, None)
    return record


@dataclass
class IngestResult:
    stored: list[Appended] = field(default_factory=list)
    duplicates: int = 0
    checkpoint: Checkpoint | None = None


def store(transaction: AuditLogTransactions, records: Sequence[dict[str, Any]], signer: CheckpointSigner, *,
          checkpoint_every: int, now: datetime | None = None) -> IngestResult:
    """Append ``records`` (parsed) in one transaction; sign a checkpoint if one is due."""
    now = now or datetime.now(UTC)
    with transaction() as log:
        stored = log.append(records, now)
        checkpoint = checkpoint_if_due(log, signer, now, every=checkpoint_every) if stored else None
    return IngestResult(stored=stored, duplicates=len(records) - len(stored), checkpoint=checkpoint)


def sign_pending(transaction: AuditLogTransactions, signer: CheckpointSigner,
                 now: datetime | None = None) -> Checkpoint | None:
    """Sign the tree if records arrived since the last checkpoint (the 10-second timer)."""
    with transaction() as log:
        return checkpoint_if_due(log, signer, now or datetime.now(UTC), every=1, force=True)


class NotTheSender(ValueError):
    """A record whose ``service`` is not the service whose broker user published it (or whose
    message carries no ``user_id``): a forgery, or a sender outside the platform. Parked, never stored."""


def admit(record: Mapping[str, Any], user_id: str | None) -> None:
    """Refuse (:class:`NotTheSender`) a record another service's broker user published.

    The AMQP ``user_id`` is checked by RabbitMQ against the publishing connection's user, so it says
    which service sent the message; the record's own ``service`` field is only what the sender wrote.
    The gateway's records say ``service=gateway`` and come from the gateway's user, so they pass."""
    sender = service_of_user(user_id)
    if sender is None:
        raise NotTheSender("user_id: the message was not published by a service's broker user")
    if record.get("service") != sender:
        raise NotTheSender(f"service: a record of {record.get('service')!r} published by {sender!r}"[:300])


def admit_any(record: Mapping[str, Any], user_id: str | None) -> None:
    """Every record, whoever sent it: only for a platform whose processes share one broker user
    (``UPGESTAO_BROKER_SHARED_USER=1``, never in production), where ``user_id`` cannot tell them apart."""
    return None
