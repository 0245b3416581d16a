"""marshmallow schemas of the audit routes: queries checked precisely here
(422 naming the parameter), answers shaped as the privacy service gives them.

Actions and outcomes are the kernel's own lists (:mod:`upgestao_kernel.audit`),
so a filter can only name something a record can hold.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema
from upgestao_kernel.audit import ACTIONS, OUTCOMES

from ..http.request import ID_PATTERN
from ..http.schemas import Pattern

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SEQ = 2**63 - 1  # a leaf index (PostgreSQL bigint)
_ID = Pattern(ID_PATTERN, error="must be an id: letters, digits and . _ : - (at most 128)")
_CURSOR = validate.Length(min=1, max=500)
_DATE_TIME = {"format": "date-time"}
# "2024-05-01T10:00:00+00:00" typed into a URL unencoded arrives with a space for the "+"
_SPACE_FOR_PLUS = re.compile(r"^(\d{4}-\d{2}-\d{2}T[\d:.]+) (\d{2}(?::?\d{2})?)$")
# the filters of GET /v1/audit, by their query-parameter name (== privacy's filter key)
FILTERS = ("subject_id", "actor_id", "action", "service", "resource_type", "outcome", "request_id")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class QueryInteger(fields.Integer):
    """A whole number written in decimal digits (``int()`` would also take ``" 7"``, ``"+7"``, ``"1_000"``)."""

    _DIGITS = re.compile(r"-?[0-9]{1,19}")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and not self._DIGITS.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


# -- queries -----------------------------------------------------------------------


class PeriodQuerySchema(Schema):
    """``from`` (inclusive) and ``to`` (exclusive) on ``occurred_at``, ISO 8601 with a UTC offset."""

    from_ = fields.AwareDateTime(data_key="from", metadata={
        "description": "Records that occurred at or after this instant (ISO 8601 with offset, e.g. "
                       "2025-03-01T00:00:00-03:00)."})
    to = fields.AwareDateTime(metadata={
        "description": "Records that occurred before this instant (ISO 8601 with offset); `from` must not be "
                       "after it."})

    @pre_load
    def _restore_plus(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for key in ("from", "to"):
            value = fixed.get(key)
            if isinstance(value, str):
                fixed[key] = _SPACE_FOR_PLUS.sub(r"\1+\2", value)
        return fixed

    @validates_schema
    def _ordered(self, data: dict, **kwargs: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None and start > end:
            raise ValidationError("must not be after to", field_name="from")


class AuditQuerySchema(PeriodQuerySchema):
    subject_id = fields.String(validate=_ID, metadata={"description": "Whose data was accessed."})
    actor_id = fields.String(validate=_ID, metadata={"description": "Who accessed it (a user id)."})
    action = fields.String(validate=validate.OneOf(ACTIONS))
    service = fields.String(validate=_ID, metadata={"description": "The service that recorded the access."})
    resource_type = fields.String(validate=_ID, metadata={"example": "user"})
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    request_id = fields.String(validate=_ID, metadata={"description": "The X-Request-ID of the access."})
    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=_CURSOR, metadata={"description": "next_cursor of the previous page."})


def audit_filters(query: dict) -> dict[str, str]:
    """The ``filters`` argument of privacy's ``audit_search``: only what was given."""
    filters = {key: query[key] for key in FILTERS if query.get(key) is not None}
    if query.get("from_") is not None:
        filters["from"] = iso(query["from_"])
    if query.get("to") is not None:
        filters["to"] = iso(query["to"])
    return filters


class InclusionQuerySchema(Schema):
    seq = QueryInteger(required=True, validate=validate.Range(min=0, max=MAX_SEQ),
                         metadata={"description": "The record's leaf index (its seq)."})
    tree_size = QueryInteger(required=True, validate=validate.Range(min=1, max=MAX_SEQ),
                               metadata={"description": "The size of the tree to prove against (a checkpoint's)."})

    @validates_schema
    def _inside(self, data: dict, **kwargs: Any) -> None:
        if data["seq"] >= data["tree_size"]:
            raise ValidationError("must be less than tree_size", field_name="seq")


class ConsistencyQuerySchema(Schema):
    first = QueryInteger(required=True, validate=validate.Range(min=0, max=MAX_SEQ),
                           metadata={"description": "The older tree size."})
    second = QueryInteger(required=True, validate=validate.Range(min=1, max=MAX_SEQ),
                            metadata={"description": "The newer tree size."})

    @validates_schema
    def _ordered(self, data: dict, **kwargs: Any) -> None:
        if data["first"] > data["second"]:
            raise ValidationError("must not exceed second", field_name="first")


class ExportQuerySchema(PeriodQuerySchema):
    pass


# -- answers -----------------------------------------------------------------------


class AuditItemSchema(Schema):
    """An audit record as stored, with its place in the log (ids and field names only, never values)."""

    seq = fields.Integer(required=True, metadata={"description": "Leaf index in the Merkle-tree log (0-based)."})
    audit_id = fields.String(required=True, metadata={"format": "uuid"})
    occurred_at = fields.String(required=True, metadata=_DATE_TIME)
    service = fields.String(required=True)
    actor_id = fields.String(required=True, allow_none=True)
    actor_role = fields.String(required=True, allow_none=True)
    action = fields.String(required=True, metadata={"enum": list(ACTIONS)})
    resource_type = fields.String(required=True)
    resource_id = fields.String(required=True, allow_none=True)
    subject_id = fields.String(required=True, allow_none=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True,
                          metadata={"description": "Names of the personal fields accessed."})
    purpose = fields.String(required=True)
    request_id = fields.String(required=True, allow_none=True)
    source_ip = fields.String(required=True, allow_none=True)
    outcome = fields.String(required=True, metadata={"enum": list(OUTCOMES)})
    recipient = fields.String(required=True, allow_none=True,
                              metadata={"description": "With whom the data was shared (action share)."})


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditItemSchema), required=True, metadata={"description": "Newest first."})
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Pass as `cursor` for older records; null at the end."})


class SubjectAccessSchema(Schema):
    actor_id = fields.String(required=True, allow_none=True)
    actor_role = fields.String(required=True, allow_none=True)
    service = fields.String(required=True)
    resource_type = fields.String(required=True)
    action = fields.String(required=True)
    purpose = fields.String(required=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    count = fields.Integer(required=True)
    first_at = fields.String(required=True, metadata=_DATE_TIME)
    last_at = fields.String(required=True, metadata=_DATE_TIME)


class SubjectSharingSchema(Schema):
    recipient = fields.String(required=True, allow_none=True)  # (a share record that named none)
    # the third party as privacy knows it (an integration's name and privacy-policy URL, R9.1): None when unknown
    name = fields.String(allow_none=True, load_default=None, metadata={"description": "The third party's name."})
    privacy_policy_url = fields.String(allow_none=True, load_default=None, metadata={
        "description": "The third party's privacy policy."})
    service = fields.String(required=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    count = fields.Integer(required=True)
    first_at = fields.String(required=True, metadata=_DATE_TIME)
    last_at = fields.String(required=True, metadata=_DATE_TIME)


class SubjectSummarySchema(Schema):
    subject_id = fields.String(required=True)
    total_records = fields.Integer(required=True, metadata={"description": "Every record about the subject."})
    denied_attempts = fields.Integer(required=True, metadata={
        "description": "Records whose outcome was not success (refused or failed attempts)."})
    accesses = fields.List(fields.Nested(SubjectAccessSchema), required=True,
                           metadata={"description": "Who accessed the subject's data, how, why and how often."})
    shared_with = fields.List(fields.Nested(SubjectSharingSchema), required=True,
                              metadata={"description": "With whom the subject's data was shared."})


class CheckpointSchema(Schema):
    """The log's signed head: its size and root hash, signed by the privacy service."""

    origin = fields.String(required=True)
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True, metadata={"format": "byte"})
    signed_at = fields.String(required=True, metadata=_DATE_TIME)
    key_id = fields.String(required=True)
    signature = fields.String(required=True, metadata={"format": "byte", "description": "Ed25519, base64."})


class PublicKeySchema(Schema):
    algorithm = fields.String(required=True, metadata={"example": "Ed25519"})
    key_id = fields.String(required=True)
    public_key = fields.String(required=True, metadata={"format": "byte", "description": "Raw key, base64."})


class InclusionProofSchema(Schema):
    seq = fields.Integer(required=True)
    tree_size = fields.Integer(required=True)
    leaf_hash = fields.String(required=True, metadata={"format": "byte"})
    audit_path = fields.List(fields.String(metadata={"format": "byte"}), required=True)


class ConsistencyProofSchema(Schema):
    first = fields.Integer(required=True)
    second = fields.Integer(required=True)
    proof = fields.List(fields.String(metadata={"format": "byte"}), required=True)
