"""nameko entrypoints of the notifier service (thin: the use cases do the work).

Events that ask for mail (identity's, privacy's, integrations') arrive through ``reliable_handler`` (retried,
then parked; never acked before the deliveries they ask for are stored); a timer attempts due retries and
settles interrupted claims; two RPCs answer the gateway's delivery queries (``notifications.read``, checked again here).
"""

from __future__ import annotations

from nameko.rpc import RpcProxy
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.nameko_ext import Database, HealthRpc, Metrics, reliable_handler, rpc
from upgestao_kernel.nameko_ext.role_permissions import RolePermissions
from upgestao_kernel.unit_of_work import UnitOfWork

from .adapters.metrics import delivery_states
from .adapters.projections import projections
from .adapters.sql_repositories import with_sql_repositories
from .domain.kinds import KINDS, asks_for_mail
from .entrypoints.dependencies import NotifierRuntime, RpcNoticeSource, sweep_timer
from .service_layer.dispatch import Dispatcher
from .service_layer.queries import DeliveryQueries

IDENTITY_EVENTS = sorted(k.event_type for k in KINDS.values() if k.source == "identity")
# verification codes, answers to requests, correction decisions, breach notices, policy versions
PRIVACY_EVENTS = sorted(k.event_type for k in KINDS.values() if k.source == "privacy")
# an integration's endpoint disabled by the platform (410 Gone, failing for 5 days): its admins are told
INTEGRATIONS_EVENTS = sorted(k.event_type for k in KINDS.values() if k.source == "integrations")


class NotifierService(HealthRpc):
    name = "notifier"

    db = Database(projections=projections)
    # /metrics on <SERVICE>_METRICS_ADDRESS, RPC timings, outbox depth and lag, deliveries by state
    metrics = Metrics(sources=[delivery_states])
    runtime = NotifierRuntime()
    roles = RolePermissions()
    identity = RpcProxy("identity")
    privacy = RpcProxy("privacy")
    integrations = RpcProxy("integrations")

    def _uow(self) -> UnitOfWork:
        return with_sql_repositories(self.db.unit_of_work())

    def _dispatcher(self) -> Dispatcher:
        return self.runtime.dispatcher(self._uow, RpcNoticeSource(
            {"identity": self.identity, "privacy": self.privacy, "integrations": self.integrations}))

    @reliable_handler("identity", IDENTITY_EVENTS)
    def on_identity_event(self, event: EventEnvelope) -> None:
        """A password reset, a new sign-in, an e-mail change: the e-mail identity's notice asks for."""
        self._dispatcher().accept(event.event_id, event.type)

    @reliable_handler("privacy", PRIVACY_EVENTS)
    def on_privacy_event(self, event: EventEnvelope) -> None:
        """A verification code, a request's answer, a correction's decision, a breach notice, a new policy."""
        self._dispatcher().accept(event.event_id, event.type)

    @reliable_handler("integrations", INTEGRATIONS_EVENTS)
    def on_integrations_event(self, event: EventEnvelope) -> None:
        """An integration disabled by the platform (gone, failing): every holder of integrations.manage is
        mailed. One disabled by hand (reason manual) asks for nothing: the admin who did it knows."""
        if asks_for_mail(event.type, event.data):
            self._dispatcher().accept(event.event_id, event.type)

    @sweep_timer(interval=1.0)
    def sweep(self) -> None:
        self._dispatcher().sweep()

    @rpc
    def deliveries(self, filters: dict | None = None, limit: int = 50, cursor: str | None = None) -> dict:
        return DeliveryQueries(self._uow, self.roles.permissions_of).deliveries(filters, limit, cursor)

    @rpc
    def campaign(self, campaign_id: str) -> dict:
        return DeliveryQueries(self._uow, self.roles.permissions_of).campaign(campaign_id)
