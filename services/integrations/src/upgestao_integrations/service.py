"""nameko entrypoints of the integrations service (thin: the use cases do the work).

Events that may become webhooks arrive through :class:`~.entrypoints.events_in.EventsIn` (a batch of them in
one transaction, idempotent by event id, acked after the commit: the messages are queued, then the
dispatcher is woken); the dispatcher (:class:`~.entrypoints.dispatcher.IntegrationsRuntime`) delivers; the
RPCs answer the gateway's ``/v1/integrations`` routes (``integrations.manage``, checked again here) and the
notifier's ``notice``.
"""

from __future__ import annotations

from nameko.rpc import RpcProxy
from upgestao_kernel.nameko_ext import Database, HealthRpc, Metrics
from upgestao_kernel.nameko_ext.role_permissions import RolePermissions
from upgestao_kernel.unit_of_work import UnitOfWork

from .adapters.metrics import message_states
from .adapters.projections import projections
from .adapters.sql_repositories import with_sql_repositories
from .entrypoints.dispatcher import IntegrationsRuntime
from .entrypoints.events_in import EventsIn
from .entrypoints.messages_rpc import MessagesRpc
from .entrypoints.notices_rpc import NoticesRpc
from .entrypoints.registry_rpc import RegistryRpc


class IntegrationsService(RegistryRpc, MessagesRpc, NoticesRpc, HealthRpc):
    name = "integrations"

    db = Database(projections=projections)
    # /metrics on <SERVICE>_METRICS_ADDRESS, RPC timings, outbox depth and lag, webhook messages by state
    metrics = Metrics(sources=[message_states])
    runtime = IntegrationsRuntime()
    events_in = EventsIn()
    roles = RolePermissions()
    identity = RpcProxy("identity")

    def _uow(self) -> UnitOfWork:
        return with_sql_repositories(self.db.unit_of_work())
