"""Audit records (D3): one for every access to personal data.

Records carry ids and field *names* only, never values. They go to the
outbox in the caller's transaction, so a record exists exactly when the
access it describes was committed; a denied attempt is written even when
the attempt's own work rolls back (see ``UnitOfWork.deny``).

Where a request came from is kept as a network, never as an address
(:func:`source_network`): an IP address is personal data under the LGPD,
and the audit log can never be erased. A record's ``source_ip`` holds the
client's IPv4 /24 or IPv6 /48 (``203.0.113.0/24``, ``2001:db8:1234::/48``):
enough to tell an office from a foreign network in an investigation, not
enough to single out one subscriber. The full address lives only in the
request's context, for as long as the request (identity's login throttle
keys on it), and is never written anywhere.

On the wire (the ``audit`` exchange, routing key ``audit.<service>.<action>``) a message is one
record (:class:`AuditRecordSchema`) or a *batch*: an object whose only key is ``records``, a list
of records of one action (:data:`BATCH_KEY`, :func:`records_in`). :meth:`AuditEmitter.emit_many`
sends the records of one statement as batches, so a page of 50 reads is one outbox row and one
broker message, not 50; each record is still its own record, with its own ``audit_id``, stored as
its own leaf of the log. Only the transport is batched. :meth:`AuditEmitter.emit_accesses` makes
and sends such records of several reads (``PersonalData.open_each``) from what they share.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from marshmallow import Schema, fields, validate
from sqlalchemy.engine import Connection

from .context import RequestContext
from .events import new_id, new_ids, utcnow
from .outbox import enqueue, enqueue_many, message_headers
from .topology import AUDIT_EXCHANGE, audit_routing_key

ACTIONS = (
    "read", "list", "create", "update", "delete", "export", "share", "notify",
    "login", "logout", "erase", "audit_query",
)
OUTCOMES = ("success", "denied", "failure")
# how much of a client's address an audit record keeps (see the module docstring)
IPV4_PREFIX = 24
IPV6_PREFIX = 48
# A batch message: ``{"records": [<record>, ...]}``, the records of one action (see the module docstring).
BATCH_KEY = "records"
MAX_BATCH_RECORDS = 500  # records in one batch message, at most
# The JSON of one batch message, at most (an upper bound, counted before it is encoded: see _wire_size_bound).
# Privacy's ingest refuses a message of more than twice this.
MAX_BATCH_BYTES = 1024 * 1024
# A record's JSON beyond its strings: keys, quotes, separators, null/true (about 230 bytes), with room to spare.
_RECORD_OVERHEAD_BYTES = 400


def source_network(address: str | None) -> str | None:
    """The network an audit record keeps of ``address``: its IPv4 /24 or IPv6 /48 (an IPv4-mapped IPv6
    address counts as IPv4; a network already that wide or wider is kept); None for anything else."""
    if not address:
        return None
    try:
        network = ipaddress.ip_network(address.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        network = ipaddress.ip_network(network.network_address.ipv4_mapped)
    prefix = IPV4_PREFIX if network.version == 4 else IPV6_PREFIX
    if network.prefixlen > prefix:
        network = network.supernet(new_prefix=prefix)
    return str(network)


class AuditRecordSchema(Schema):
    """The wire form of an audit record (what the ``audit`` exchange carries)."""

    audit_id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    service = fields.String(required=True)
    actor_id = fields.String(allow_none=True)
    actor_role = fields.String(allow_none=True)
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    resource_type = fields.String(required=True)
    resource_id = fields.String(allow_none=True)
    subject_id = fields.String(allow_none=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    purpose = fields.String(required=True)
    request_id = fields.String(allow_none=True)
    source_ip = fields.String(allow_none=True)
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    # with whom the data was shared (action ``share``: an integration's id), R4.2
    recipient = fields.String(allow_none=True, load_default=None)


@dataclass(frozen=True)
class AuditRecord:
    service: str
    action: str
    resource_type: str
    resource_id: str | None
    subject_id: str | None
    fields: tuple[str, ...]
    purpose: str
    actor_id: str | None
    actor_role: str | None
    request_id: str | None
    source_ip: str | None  # a network (source_network), never an address
    outcome: str = "success"
    recipient: str | None = None
    audit_id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {self.outcome!r}")
        if not self.purpose:
            raise ValueError("an audit record needs a purpose")

    def to_message(self) -> dict:
        # (built by hand: dataclasses.asdict deep-copies, and this runs on every personal-data access)
        return {
            "service": self.service, "action": self.action, "resource_type": self.resource_type,
            "resource_id": self.resource_id, "subject_id": self.subject_id, "fields": sorted(self.fields),
            "purpose": self.purpose, "actor_id": self.actor_id, "actor_role": self.actor_role,
            "request_id": self.request_id, "source_ip": self.source_ip, "outcome": self.outcome,
            "recipient": self.recipient, "audit_id": self.audit_id, "occurred_at": self.occurred_at.isoformat(),
        }


class AuditEmitter:
    """Writes audit records of one service into its outbox."""

    def __init__(self, service: str) -> None:
        self.service = service

    def build(
        self,
        context: RequestContext,
        *,
        action: str,
        resource_type: str,
        resource_id: str | None,
        subject_id: str | None,
        fields: Iterable[str],
        purpose: str,
        outcome: str = "success",
        recipient: str | None = None,
    ) -> AuditRecord:
        return AuditRecord(
            service=self.service,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            subject_id=subject_id,
            fields=tuple(sorted(set(fields))),
            purpose=purpose,
            actor_id=context.actor_id,
            actor_role=context.actor_role,
            request_id=context.request_id,
            source_ip=source_network(context.source_ip),  # never the address itself
            outcome=outcome,
            recipient=recipient,
        )

    def emit(self, conn: Connection, context: RequestContext, record: AuditRecord) -> AuditRecord:
        enqueue(
            conn,
            message_id=record.audit_id,
            exchange=AUDIT_EXCHANGE,
            routing_key=audit_routing_key(self.service, record.action),
            body=record.to_message(),
            headers=message_headers(context),
        )
        return record

    def emit_many(self, conn: Connection, context: RequestContext, records: list[AuditRecord]) -> list[AuditRecord]:
        """Several records in one statement, as few messages as possible: one batch per action (its routing
        key) of at most :data:`MAX_BATCH_RECORDS` records and :data:`MAX_BATCH_BYTES`, the message id its
        first record's ``audit_id``. A group of one record goes out as :meth:`emit` sends it. Each record
        is still its own record (one per resource read), only the transport is shared."""
        if records:
            bodies = [record.to_message() for record in records]
            self._enqueue_batches(conn, context, [(record.action, body, _wire_size_bound(body))
                                                  for record, body in zip(records, bodies, strict=True)])
        return records

    def emit_accesses(
        self,
        conn: Connection,
        context: RequestContext,
        *,
        action: str,
        resource_type: str,
        accesses: Sequence[tuple[str | None, str | None, tuple[str, ...]]],
        purpose: str,
        outcome: str = "success",
        recipient: str | None = None,
    ) -> list[str]:
        """One record per ``(resource_id, subject_id, fields)`` of ``accesses`` (the reads of one statement: a
        page of bodies, a search's hits), sent as :meth:`emit_many` sends them; their ``audit_id`` s, in order.

        The records are those :meth:`build` makes, each with its own ``audit_id``, resource, subject and
        fields, and one ``occurred_at`` for all (one moment: the statement's); what they share is validated
        and put in wire form once, not once per record (a page of 50: 50 records built, 50 ids and 50 times
        read, 50 messages made from their records, each field sorted again)."""
        if not accesses:
            return []
        template = self.build(context, action=action, resource_type=resource_type, resource_id=None,
                              subject_id=None, fields=(), purpose=purpose, outcome=outcome,
                              recipient=recipient).to_message()
        # _wire_size_bound of a record: the template's strings but its audit_id, plus the record's own below
        shared = _wire_size_bound(template) - 12 * len(template["audit_id"])
        names_of: dict[tuple[str, ...], tuple[list[str], int]] = {}  # fields -> (sorted names, their bound)
        audit_ids = new_ids(len(accesses))
        entries = []
        for (resource_id, subject_id, field_names), audit_id in zip(accesses, audit_ids, strict=True):
            known = names_of.get(field_names)
            if known is None:
                names = sorted(set(field_names))
                known = names_of[field_names] = (names, 12 * sum(len(name) + 3 for name in names))
            names, names_size = known
            body = {**template, "resource_id": resource_id, "subject_id": subject_id, "fields": list(names),
                    "audit_id": audit_id}
            size = shared + names_size + 12 * (len(audit_id) + (len(resource_id) if type(resource_id) is str else 0)
                                               + (len(subject_id) if type(subject_id) is str else 0))
            entries.append((action, body, size))
        self._enqueue_batches(conn, context, entries)
        return audit_ids

    def _enqueue_batches(self, conn: Connection, context: RequestContext,
                         entries: Sequence[tuple[str, dict, int]]) -> None:
        """``(action, record body, its _wire_size_bound)`` of each record, enqueued as :meth:`emit_many` says."""
        groups: list[tuple[str, list[dict]]] = []  # (action, record bodies), in the order they were opened
        filling: dict[str, tuple[list[dict], int]] = {}  # action -> its last group, that group's size bound
        for action, body, size in entries:
            bodies, used = filling.get(action, (None, 0))
            if bodies is None or len(bodies) >= MAX_BATCH_RECORDS or used + size > MAX_BATCH_BYTES:
                bodies, used = [], 0
                groups.append((action, bodies))
            bodies.append(body)
            filling[action] = (bodies, used + size)
        headers = message_headers(context)
        enqueue_many(conn, [{"message_id": bodies[0]["audit_id"], "exchange": AUDIT_EXCHANGE,
                             "routing_key": audit_routing_key(self.service, action),
                             "body": bodies[0] if len(bodies) == 1 else {BATCH_KEY: bodies}, "headers": headers}
                            for action, bodies in groups])

    def record(self, conn: Connection, context: RequestContext, **kwargs) -> AuditRecord:
        return self.emit(conn, context, self.build(context, **kwargs))


def is_batch(body: object) -> bool:
    """Whether an ``audit`` message body (or an outbox row's) is a batch rather than one record."""
    return isinstance(body, Mapping) and BATCH_KEY in body


def records_in(body: Mapping) -> list[dict]:
    """The records an ``audit`` message body (or an outbox row's) carries: a batch's, in order, or the
    body itself (for readers of the outbox or the broker: tests, tools; the ingest validates its own way)."""
    if is_batch(body):
        return list(body[BATCH_KEY])
    return [dict(body)]


def _wire_size_bound(message: Mapping) -> int:
    """At least the length of ``message``'s compact JSON (as the relay encodes it, ``ensure_ascii``): each
    character of a string is at most 12 bytes there (a non-BMP character is two ``\\uXXXX`` escapes)."""
    chars = sum(len(value) for value in message.values() if type(value) is str)
    chars += sum(len(name) + 3 for name in message["fields"])
    return 12 * chars + _RECORD_OVERHEAD_BYTES
