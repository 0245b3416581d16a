"""The audit routes of the gateway: the privacy service's audit log over HTTP.

Every personal-data access of any service is an audit record, kept by the
privacy service in an append-only Merkle-tree log. These routes query it
(by subject, actor, request, ...), summarise what happened to one person's
data, and give what an outside verifier needs: the signed checkpoint, the
public key, inclusion and consistency proofs, and a JSON Lines export.

All need ``audit.read`` (the ``dpo`` role); privacy checks it again and
audits every query (action ``audit_query``). The answers hold ids and field
names, never personal values: ``personal_data=False``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..http.bodies import StreamResponse
from ..http.request import GatewayRequest
from ..http.routing import route
from ..http.streaming import Stream
from .schemas import (
    AuditPageSchema,
    AuditQuerySchema,
    CheckpointSchema,
    ConsistencyProofSchema,
    ConsistencyQuerySchema,
    ExportQuerySchema,
    InclusionProofSchema,
    InclusionQuerySchema,
    PublicKeySchema,
    SubjectSummarySchema,
    audit_filters,
    iso,
)

AUDIT = ("audit",)
PERMISSION = "audit.read"
NDJSON = "application/x-ndjson"
EXPORT_PAGE = 1000  # records per audit_export_records call (privacy's maximum)
EXPORT_DESCRIPTION = (
    "JSON Lines (one compact JSON object per line, UTF-8, \\n-separated). The first line is the export's "
    "header: {format, first_seq, end_seq, tree_size, checkpoint, checkpoints, range_proof, from, to, "
    "exported_at}. Each following line is one record of the log, in seq order from first_seq to end_seq - 1: "
    "{seq, leaf_hash, record}. A transfer that ends early (an error mid-stream) is cut without its final "
    "chunk; a verifier also sees the missing seqs against the header."
)


def json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


class ExportBroken(Exception):
    """The privacy service's answer does not continue the export where it stands."""


class AuditRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    @route("GET", "/v1/audit", personal_data=False, query=AuditQuerySchema, response=AuditPageSchema,
           auth="required", permission=PERMISSION, errors=(503,), tags=AUDIT,
           summary="Search the audit log (newest first, cursor pagination)",
           description="Filters combine (AND). `from` is inclusive and `to` exclusive, on occurred_at.")
    def search_audit(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.privacy.audit_search(audit_filters(query), query["limit"], query.get("cursor"))

    @route("GET", "/v1/audit/subjects/<uuid:subject_id>/summary", personal_data=False, response=SubjectSummarySchema,
           auth="required", permission=PERMISSION, errors=(404, 503), tags=AUDIT,
           summary="What happened to one person's data: who accessed it, why, how often, and with whom it was "
                   "shared")
    def audit_subject_summary(self, request: GatewayRequest, subject_id) -> dict:
        return self.rpc.privacy.audit_subject_summary(str(subject_id))

    @route("GET", "/v1/audit/checkpoint", personal_data=False, response=CheckpointSchema, auth="required",
           permission=PERMISSION, errors=(503,), tags=AUDIT,
           summary="The log's current signed checkpoint (tree size and root hash)")
    def audit_checkpoint(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.audit_checkpoint()

    @route("GET", "/v1/audit/public-key", personal_data=False, response=PublicKeySchema, auth="required",
           permission=PERMISSION, errors=(503,), tags=AUDIT, summary="The key that signs the checkpoints")
    def audit_public_key(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.audit_public_key()

    @route("GET", "/v1/audit/proof/inclusion", personal_data=False, query=InclusionQuerySchema,
           response=InclusionProofSchema, auth="required", permission=PERMISSION, errors=(503,), tags=AUDIT,
           summary="Proof that record `seq` is in the tree of size `tree_size`")
    def audit_inclusion_proof(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.privacy.audit_inclusion_proof(query["seq"], query["tree_size"])

    @route("GET", "/v1/audit/proof/consistency", personal_data=False, query=ConsistencyQuerySchema,
           response=ConsistencyProofSchema, auth="required", permission=PERMISSION, errors=(503,), tags=AUDIT,
           summary="Proof that the tree of size `second` extends the tree of size `first` (append-only)")
    def audit_consistency_proof(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.privacy.audit_consistency_proof(query["first"], query["second"])

    @route("GET", "/v1/audit/export", personal_data=False, query=ExportQuerySchema,
           response=StreamResponse(NDJSON, EXPORT_DESCRIPTION), auth="required", permission=PERMISSION,
           errors=(503,), tags=AUDIT, summary="Export the log (or a period of it) with its proofs, as JSON Lines")
    def export_audit(self, request: GatewayRequest, query: dict) -> Stream:
        header = self.rpc.privacy.audit_export_start(iso(query.get("from_")), iso(query.get("to")))
        first, end = int(header["first_seq"]), int(header["end_seq"])
        return Stream(self._export_lines(header, first, end), headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="audit-{first}-{end}.jsonl"',
        })

    def _export_lines(self, header: dict, first: int, end: int) -> Iterator[str]:
        """The header line, then the records of [first, end), a page (one chunk) per privacy call."""
        yield json_line(header)
        start = first
        while start < end:
            page = self.rpc.privacy.audit_export_records(start, min(start + EXPORT_PAGE, end))
            if not page:
                raise ExportBroken(f"no records from seq {start} (export ends at {end})")
            for offset, item in enumerate(page):
                if item.get("seq") != start + offset:
                    raise ExportBroken(f"expected seq {start + offset}, got {item.get('seq')!r}")
            if start + len(page) > end:
                raise ExportBroken(f"records past the export's end {end}")
            yield "".join(json_line(item) for item in page)
            start += len(page)
