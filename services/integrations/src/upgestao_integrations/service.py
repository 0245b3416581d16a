"""nameko entrypoints of the integrations service (thin: the use cases do the work).

Events that may become webhooks arrive through ``reliable_handler`` (idempotent by event id: the messages are
queued in the handler's unit of work, then the dispatcher is woken); the dispatcher
(:class:`~.entrypoints.dispatcher.IntegrationsRuntime`) delivers; the RPCs answer the gateway's
``/v1/integrations`` routes (``integrations.manage``, checked again here) and the notifier's ``notice``.
"""

from __future__ import annotations

from nameko.rpc import RpcProxy
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.nameko_ext import Database, HealthRpc, reliable_handler
from upgestao_kernel.nameko_ext.role_permissions import RolePermissions
from upgestao_kernel.unit_of_work import UnitOfWork

from .adapters.projections import projections
from .adapters.sql_repositories import with_sql_repositories
from .entrypoints.dispatcher import IntegrationsRuntime
from .entrypoints.messages_rpc import MessagesRpc
from .entrypoints.notices_rpc import NoticesRpc
from .entrypoints.registry_rpc import RegistryRpc
from .service_layer import fanout


class IntegrationsService(RegistryRpc, MessagesRpc, NoticesRpc, HealthRpc):
    name = "integrations"

    db = Database(projections=projections)
    runtime = IntegrationsRuntime()
    roles = RolePermissions()
    identity = RpcProxy("identity")

    def _uow(self) -> UnitOfWork:
        return with_sql_repositories(self.db.unit_of_work())

    def _accept(self, event: EventEnvelope) -> None:
        with self.db.handling(event) as uow:
            if uow is None:
                return  # a duplicate delivery: its messages are queued already
            queued = fanout.accept(with_sql_repositories(uow), event)
        if queued.messages:
            self.runtime.wake()

    @reliable_handler("messaging", list(fanout.MESSAGING_EVENTS))
    def on_messaging_event(self, event: EventEnvelope) -> None:
        """A conversation opened, its status or assignee changed; a message created, edited or deleted."""
        self._accept(event)

    @reliable_handler("identity", list(fanout.IDENTITY_EVENTS))
    def on_identity_event(self, event: EventEnvelope) -> None:
        """A customer registered (customer.created) or changed (subject.updated to past recipients)."""
        self._accept(event)

    @reliable_handler("privacy", list(fanout.PRIVACY_EVENTS))
    def on_erasure_requested(self, event: EventEnvelope) -> None:
        """An erasure: subject.erased to every integration that received the person's data."""
        self._accept(event)
