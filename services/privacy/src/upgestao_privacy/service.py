"""nameko entrypoints of the privacy service (thin: argument shapes, then the use cases).

Owns the audit log (D3): ingest, checkpoints and the audit stream run in
:class:`~.entrypoints.audit_log.AuditLogRunner`; compliance queries are RPCs
(the gateway's ``/v1/audit`` routes), each needing ``audit.read`` and each
audited as ``audit_query``. The data subjects' rights (issue 14) are mixed in,
one area a module: requests and the contact channel, corrections/policies/consents,
incidents and the data map, erasures and access bundles.
"""

from __future__ import annotations

from nameko.rpc import RpcProxy
from upgestao_kernel.nameko_ext import Database, HealthRpc, Metrics, rpc
from upgestao_kernel.nameko_ext.role_permissions import RolePermissions

from .adapters.audit_store import with_sql_audit_log
from .adapters.metrics import SOURCES as METRICS_SOURCES
from .adapters.projections import projections
from .entrypoints.audit_log import AuditLogRunner
from .entrypoints.corrections_rpc import ConsentRpc
from .entrypoints.erasures_rpc import ErasureRpc
from .entrypoints.incidents_rpc import IncidentsRpc
from .entrypoints.requests_rpc import RequestsRpc
from .entrypoints.third_parties_rpc import ThirdPartiesRpc
from .service_layer import third_parties
from .service_layer.audit_queries import AuditQueries


class PrivacyService(RequestsRpc, ConsentRpc, IncidentsRpc, ErasureRpc, ThirdPartiesRpc, HealthRpc):
    name = "privacy"

    # the rights areas' read models applied in each append's transaction; personal data (a contact's
    # address, a correction's new values, an incident's texts) sealed per subject
    db = Database(projections=projections, personal_data=True)
    # /metrics on <SERVICE>_METRICS_ADDRESS, RPC timings, outbox depth and lag; the audit log's size and
    # checkpoints, the requests and incidents against their deadlines (read at scrape time)
    metrics = Metrics(sources=METRICS_SOURCES)
    audit_log = AuditLogRunner()
    roles = RolePermissions()
    identity = RpcProxy("identity")
    messaging = RpcProxy("messaging")
    notifier = RpcProxy("notifier")

    def _queries(self) -> AuditQueries:
        return AuditQueries(lambda: with_sql_audit_log(self.db.unit_of_work()), self.roles.permissions_of,
                            self.audit_log.signer,
                            lambda uow, shares: third_parties.describe_shares(uow.conn, shares))

    @rpc
    def audit_search(self, filters: dict | None = None, limit: int = 50, cursor: str | None = None) -> dict:
        return self._queries().search(filters or {}, limit, cursor)

    @rpc
    def audit_subject_summary(self, subject_id: str) -> dict:
        return self._queries().subject_summary(subject_id)

    @rpc
    def audit_checkpoint(self) -> dict:
        return self._queries().checkpoint()

    @rpc
    def audit_public_key(self) -> dict:
        return self._queries().public_key()

    @rpc
    def audit_inclusion_proof(self, seq: int, tree_size: int) -> dict:
        return self._queries().inclusion_proof(seq, tree_size)

    @rpc
    def audit_consistency_proof(self, first: int, second: int) -> dict:
        return self._queries().consistency_proof(first, second)

    @rpc
    def audit_export_start(self, from_: str | None = None, to: str | None = None) -> dict:
        return self._queries().export_start(from_, to)

    @rpc
    def audit_export_records(self, start: int, end: int) -> list[dict]:
        return self._queries().export_records(start, end)
