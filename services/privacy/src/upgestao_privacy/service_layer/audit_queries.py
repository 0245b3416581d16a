"""Compliance queries on the audit log (D3, R4.2): search, a subject's summary,
checkpoints, proofs and exports.

Every query needs ``audit.read`` (checked here again after the gateway) and is
itself audited as ``audit_query`` in the same transaction that reads: the
log shows who looked at whom. Refusals are audited as denied.

The unit of work hands out the log as ``uow.audit_log`` (:class:`~..adapters.ports.AuditLogRepository`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from upgestao_kernel.audit import ACTIONS, OUTCOMES
from upgestao_kernel.errors import ServiceError, field_error, validation_error
from upgestao_kernel.logging import get_logger
from upgestao_kernel.unit_of_work import UnitOfWorkPort

from ..adapters.ports import FILTERS, ColumnsTampered
from ..domain import merkle
from ..domain.checkpoints import Checkpoint, CheckpointSigner
from .checkpointing import checkpoint_if_due

PERMISSION = "audit.read"
RESOURCE = "audit_log"
PURPOSE = "compliance"
SEARCH_MAX = 500
EXPORT_PAGE_MAX = 1000
EXPORT_FORMAT = "upgestao-audit-export/v1"
SYSTEM = "system"

PermissionsOf = Callable[[str | None], frozenset[str]]
# gives each ``shared_with`` entry its ``name`` and ``privacy_policy_url`` (R9.1), on the query's unit of work
DescribeShares = Callable[[UnitOfWorkPort, list[dict]], None]
TAMPERED = "audit-log-tampered"

log = get_logger(__name__)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class AuditQueries:
    def __init__(self, unit_of_work: Callable[[], UnitOfWorkPort], permissions_of: PermissionsOf,
                 signer: CheckpointSigner, describe_shares: DescribeShares | None = None) -> None:
        self._unit_of_work = unit_of_work
        self._permissions_of = permissions_of
        self.signer = signer
        # the service's looks the third parties up in privacy's read model; without one, the setting only
        self._describe_shares = describe_shares or _described_from_settings

    # -- access ---------------------------------------------------------------------------

    @contextmanager
    def _open(self, *, subject_id: str | None = None, fields: tuple[str, ...] = (),
              audited: bool = True) -> Iterator[UnitOfWorkPort]:
        """A unit of work for a permitted caller, the query audited in it; refused (403, audited) otherwise."""
        with self._unit_of_work() as uow:
            ctx = uow.context
            allowed = (ctx.actor_id == SYSTEM and ctx.actor_role == SYSTEM) or (
                bool(ctx.actor_id) and PERMISSION in self._permissions_of(ctx.actor_role))
            if not allowed:
                uow.deny(action="audit_query", resource_type=RESOURCE, resource_id=None, subject_id=subject_id,
                         fields=fields, purpose="authorization")
                raise ServiceError("forbidden", f"Your role does not grant {PERMISSION}.", 403,
                                   {"permission": PERMISSION})
            if audited:
                uow.audit_access(action="audit_query", resource_type=RESOURCE, resource_id=None,
                                 subject_id=subject_id, fields=fields, purpose=PURPOSE)
            yield uow

    # -- search ---------------------------------------------------------------------------

    def search(self, filters: Mapping[str, Any], limit: int = 50, cursor: str | None = None) -> dict:
        clean = _filters(filters)
        limit = _limit(limit)
        before = _decode_cursor(cursor) if cursor else None
        with self._open(subject_id=clean.get("subject_id"), fields=tuple(sorted(clean))) as uow:
            items = _or_tampered(lambda: uow.audit_log.search(clean, limit + 1, before))
        if isinstance(items, ColumnsTampered):  # (raised once the query itself is audited)
            raise _tampered(items)
        page = items[:limit]
        next_cursor = _encode_cursor(page[-1]["seq"]) if len(items) > limit else None
        return {"items": page, "next_cursor": next_cursor}

    def subject_summary(self, subject_id: str) -> dict:
        subject_id = _subject_id(subject_id)
        with self._open(subject_id=subject_id, fields=("subject_id",)) as uow:
            records = _or_tampered(lambda: uow.audit_log.records_of_subject(subject_id))
            summary = None if isinstance(records, ColumnsTampered) else summarise(subject_id, records)
            if summary is not None:
                self._describe_shares(uow, summary["shared_with"])
        if isinstance(records, ColumnsTampered):
            raise _tampered(records)
        return summary

    # -- tamper evidence --------------------------------------------------------------------

    def checkpoint(self) -> dict:
        with self._open() as uow:
            checkpoint = uow.audit_log.latest_checkpoint()
            if checkpoint is None or checkpoint.tree_size < uow.audit_log.head().tree_size:
                # None: an ingest signed this very tree between the read above and the head's lock (read again)
                checkpoint = (checkpoint_if_due(uow.audit_log, self.signer, datetime.now(UTC), every=1, force=True)
                              or uow.audit_log.latest_checkpoint())
        return checkpoint.to_dict()

    def public_key(self) -> dict:
        return {"algorithm": "Ed25519", "key_id": self.signer.key_id, "public_key": self.signer.public_key_b64}

    def inclusion_proof(self, seq: int, tree_size: int) -> dict:
        seq = _int("seq", seq, 0)
        tree_size = _int("tree_size", tree_size, 1)
        if seq >= tree_size:
            raise validation_error([field_error("seq", "must be less than tree_size")], "The proof request is invalid.")
        with self._open(fields=("seq", "tree_size")) as uow:
            source = _AlsoFetching(uow.audit_log.nodes(), (0, seq))  # path and leaf: one query
            try:
                path = merkle.inclusion_proof(seq, tree_size, source)
                if not source.extra:  # (a one-leaf tree has an empty path: nothing was fetched)
                    source.get_nodes(())
            except merkle.MissingNode:  # only leaves not appended yet have no nodes
                raise _beyond_the_log("tree_size", uow) from None
        return {"seq": seq, "tree_size": tree_size, "leaf_hash": b64(source.extra),
                "audit_path": [b64(h) for h in path]}

    def consistency_proof(self, first: int, second: int) -> dict:
        first = _int("first", first, 0)
        second = _int("second", second, 1)
        if first > second:
            raise validation_error([field_error("first", "must not exceed second")], "The proof request is invalid.")
        with self._open(fields=("first", "second")) as uow:
            try:
                proof = merkle.consistency_proof(first, second, uow.audit_log.nodes())
            except merkle.MissingNode:
                raise _beyond_the_log("second", uow) from None
        return {"first": first, "second": second, "proof": [b64(h) for h in proof]}

    # -- export -------------------------------------------------------------------------------

    def export_start(self, from_: str | None = None, to: str | None = None) -> dict:
        """The header of an export of ``[from, to)``: the seq range, a checkpoint covering it,
        the proof tying the range to that checkpoint's root, and the checkpoints in between."""
        start = _datetime("from", from_) if from_ else None
        end = _datetime("to", to) if to else None
        if start and end and start > end:
            raise validation_error([field_error("from", "must not be after to")], "The export request is invalid.")
        with self._open(fields=tuple(name for name, v in (("from", from_), ("to", to)) if v)) as uow:
            head = uow.audit_log.head()
            if start is None and end is None:
                span = (0, head.tree_size)
            else:
                span = uow.audit_log.seq_range(start, end) or (head.tree_size, head.tree_size)
            checkpoint = uow.audit_log.latest_checkpoint()
            if checkpoint is None or checkpoint.tree_size < span[1]:
                checkpoint = checkpoint_if_due(uow.audit_log, self.signer, datetime.now(UTC), every=1,
                                                           force=True) or checkpoint
            first, end_seq = span
            proof = merkle.range_proof(first, end_seq, checkpoint.tree_size, uow.audit_log.nodes()) \
                if end_seq > first else []
            between = uow.audit_log.checkpoints_between(first, end_seq)
        return export_header(first, end_seq, checkpoint, between, proof, from_, to)

    def export_records(self, start: int, end: int) -> list[dict]:
        start = _int("start", start, 0)
        end = _int("end", end, 0)
        if not start <= end <= start + EXPORT_PAGE_MAX:
            raise validation_error([field_error("end", f"must be within [start, start + {EXPORT_PAGE_MAX}]")],
                                   "The export request is invalid.")
        with self._open(audited=False) as uow:  # the export was audited once, at its start
            lines = uow.audit_log.export_lines(start, end)
        for line in lines:
            line["leaf_hash"] = b64(line["leaf_hash"]) if line["leaf_hash"] is not None else None
        return lines


def _or_tampered(read: Callable[[], list[dict]]) -> list[dict] | ColumnsTampered:
    try:
        return read()
    except ColumnsTampered as exc:
        return exc


def _tampered(exc: ColumnsTampered) -> ServiceError:
    """A record filed under columns its leaf does not hold: someone edited the store around the tree.
    The answer would misattribute it (or miss it), so there is none: the error names the seqs, for
    ``audit verify``, which reports the same records as edited."""
    tampered = [{"seq": seq, "columns": columns} for seq, columns in sorted(exc.disagreements.items())]
    log.error("audit.columns_tampered", records=len(tampered), seqs=[t["seq"] for t in tampered[:50]])
    return ServiceError(TAMPERED, f"The audit log's index disagrees with {len(tampered)} of its records: the "
                        "store was edited outside the log. Run `audit verify`; no answer is given from it "
                        "meanwhile.", 500, {"tampered": tampered[:50]})


class _AlsoFetching:
    """A node source that fetches one more node with the first lookup (the leaf of a proof)."""

    def __init__(self, source: merkle.NodeSource, key: merkle.NodeKey) -> None:
        self.source = source
        self.key = key
        self.extra = b""

    def get_nodes(self, keys):
        found = self.source.get_nodes({*keys, self.key})
        self.extra = found[self.key]
        return found


def _beyond_the_log(name: str, uow: UnitOfWorkPort) -> ServiceError:
    size = uow.audit_log.head().tree_size
    return validation_error([field_error(name, f"the log holds {size} records")], "The proof request is invalid.")


def export_header(first: int, end_seq: int, checkpoint: Checkpoint, between: list[Checkpoint],
                  proof: list[bytes], from_: str | None, to: str | None) -> dict:
    return {
        "format": EXPORT_FORMAT, "first_seq": first, "end_seq": end_seq, "tree_size": checkpoint.tree_size,
        "checkpoint": checkpoint.to_dict(), "checkpoints": [c.to_dict() for c in between],
        "range_proof": [b64(h) for h in proof], "from": from_, "to": to,
        "exported_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }


def _described_from_settings(uow: UnitOfWorkPort, shares: list[dict]) -> None:
    """Each share's third party as ``PRIVACY_THIRD_PARTY_POLICIES`` alone names it (no read model at hand)."""
    from .third_parties import fallback_policies

    policies = fallback_policies()
    for entry in shares:
        entry["name"] = None
        entry["privacy_policy_url"] = policies.get(entry.get("recipient") or "")


def summarise(subject_id: str, records: list[dict]) -> dict:
    """Who accessed the subject's data, when, which fields, for what purpose; with whom it was shared (each
    recipient's ``name`` and ``privacy_policy_url`` are added by the caller: :mod:`.third_parties`)."""
    accesses: dict[tuple, dict] = {}
    shares: dict[tuple, dict] = {}
    denied = 0
    for record in records:
        if record["outcome"] != "success":
            denied += 1
            continue
        if record["action"] == "share":
            key = (record.get("recipient"), record["service"])
            entry = shares.setdefault(key, {"recipient": key[0], "service": key[1], "fields": set(), "count": 0,
                                            "first_at": record["occurred_at"], "last_at": record["occurred_at"]})
        else:
            key = (record.get("actor_id"), record.get("actor_role"), record["service"], record["resource_type"],
                   record["action"], record["purpose"])
            entry = accesses.setdefault(key, dict(zip(
                ("actor_id", "actor_role", "service", "resource_type", "action", "purpose"), key, strict=True),
                fields=set(), count=0, first_at=record["occurred_at"], last_at=record["occurred_at"]))
        entry["fields"].update(record["fields"])
        entry["count"] += 1
        entry["first_at"] = min(entry["first_at"], record["occurred_at"])
        entry["last_at"] = max(entry["last_at"], record["occurred_at"])
    for entry in (*accesses.values(), *shares.values()):
        entry["fields"] = sorted(entry["fields"])
    by_recent = lambda e: e["last_at"]  # noqa: E731
    return {
        "subject_id": subject_id, "total_records": len(records), "denied_attempts": denied,
        "accesses": sorted(accesses.values(), key=by_recent, reverse=True),
        "shared_with": sorted(shares.values(), key=by_recent, reverse=True),
    }


# -- argument checks (the gateway validated already; RPC callers may not have) -------------


def _invalid(name: str, message: str) -> ServiceError:
    return validation_error([field_error(name, message)], "The audit query is invalid.")


def _text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _invalid(name, f"must be a non-empty string of at most {limit} characters")
    return value


# a subject is a person's id: a UUID in its canonical text (as the services emit it). Anything else is
# refused before the query is audited, so no text a caller typed (a name, an e-mail) lands in the log
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _subject_id(value: Any) -> str:
    """The gateway refuses a subject id that is not a UUID (422); this is the same check behind it, for
    any other RPC caller: the refusal audits nothing, since the audit record would store the text."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise _invalid("subject_id", "must be a UUID (lowercase, 8-4-4-4-12 hexadecimal digits)")
    return value


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(name, f"must be an integer >= {minimum}")
    return value


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SEARCH_MAX:
        raise _invalid("limit", f"must be between 1 and {SEARCH_MAX}")
    return value


def _datetime(name: str, value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _invalid(name, "must be an ISO-8601 date-time with a time zone")
    return parsed.astimezone(UTC)


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    known = {*FILTERS, "from", "to"}
    clean: dict[str, Any] = {}
    for name, value in (filters or {}).items():
        if name not in known:
            raise _invalid(name, "is not a filter of the audit log")
        if value is None or value == "":
            continue
        if name in ("from", "to"):
            clean[name] = _datetime(name, value)
        elif name == "subject_id":
            clean[name] = _subject_id(value)
        else:
            clean[name] = _text(name, value, 128)
    if clean.get("action") and clean["action"] not in ACTIONS:
        raise _invalid("action", f"must be one of {', '.join(ACTIONS)}")
    if clean.get("outcome") and clean["outcome"] not in OUTCOMES:
        raise _invalid("outcome", f"must be one of {', '.join(OUTCOMES)}")
    if clean.get("from") and clean.get("to") and clean["from"] > clean["to"]:
        raise _invalid("from", "must not be after to")
    return clean


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": seq}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))["before"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid("cursor", "is not a cursor this API returned")
    return value
