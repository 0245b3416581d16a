"""nameko entrypoints of the messaging service (thin: argument shapes, then the use cases).

Every method derives its actor from the verified access token (the kernel's ``rpc`` entrypoint and
``Database``), checks the permission again after the gateway (roles from identity, cached), and applies
the visibility rule (``domain/visibility.py``) in the use cases. Data-subject methods answer privacy's
broker user only (and privacy's ``erasure_requested`` events are handled); ``data_map`` anyone;
``push_view`` the gateway's (:mod:`.entrypoints.push`). A timer acting as the system reopens snoozed
conversations whose time has come.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nameko.rpc import RpcProxy
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.nameko_ext import Database, HealthRpc, Metrics, reliable_handler, rpc
from upgestao_kernel.nameko_ext.role_permissions import RolePermissions
from upgestao_kernel.unit_of_work import UnitOfWork

from .adapters.projections import projections
from .adapters.sql_repositories import with_sql_repositories
from .entrypoints import errors  # noqa: F401  (registers messaging's problems with the rpc entrypoint)
from .entrypoints.dependencies import MessagingRuntime, RpcDirectory, snooze_timer
from .entrypoints.push import PushRpc
from .entrypoints.sharing_rpc import SharingRpc
from .service_layer.access import Deps
from .service_layer.api import MessagingApi
from .service_layer.attachments import SealedAttachments


def _now() -> datetime:
    return datetime.now(UTC)


class MessagingService(PushRpc, SharingRpc, HealthRpc):
    name = "messaging"

    db = Database(projections=projections, personal_data=True)
    metrics = Metrics()  # /metrics on <SERVICE>_METRICS_ADDRESS, RPC timings, outbox depth and lag
    runtime = MessagingRuntime()
    roles = RolePermissions()
    identity = RpcProxy("identity")

    def _uow(self) -> UnitOfWork:
        return with_sql_repositories(self.db.unit_of_work())

    def push_deps(self) -> Deps:
        settings = self.runtime.settings
        return Deps(unit_of_work=self._uow, permissions_of=self.roles.permissions_of,
                    directory=RpcDirectory(self.identity), hasher=self.runtime.hasher,
                    edit_window_s=settings.edit_window_s, attachments=SealedAttachments(now=_now))

    def _api(self) -> MessagingApi:
        return MessagingApi(self.push_deps())

    @snooze_timer(interval=5.0)
    def wake_snoozed(self) -> None:
        """The system's sweep: snoozed conversations whose time has come reopen; uploads never sent go; erased
        subjects' ciphertexts and search entries are purged."""
        api = self._api()
        api.wake_snoozed()
        api.purge_unsent()
        api.purge_erased()

    # -- teams ------------------------------------------------------------------------------------------------
    @rpc
    def create_team(self, name: Any, member_ids: Any = None) -> dict:
        return self._api().create_team(name, member_ids)

    @rpc
    def update_team(self, team_id: Any, changes: Any) -> dict:
        return self._api().update_team(team_id, changes)

    @rpc
    def teams(self) -> dict:
        return self._api().teams()

    @rpc
    def team(self, team_id: Any) -> dict:
        return self._api().team(team_id)

    # -- conversations --------------------------------------------------------------------------------------
    @rpc
    def open_conversation(self, data: Any) -> dict:
        return self._api().open_conversation(data)

    @rpc
    def conversation(self, conversation_id: Any) -> dict:
        return self._api().conversation(conversation_id)

    @rpc
    def update_conversation(self, conversation_id: Any, changes: Any) -> dict:
        return self._api().update_conversation(conversation_id, changes)

    @rpc
    def conversations(self, filters: Any = None, limit: Any = 50, cursor: Any = None) -> dict:
        return self._api().conversations(filters, limit, cursor)

    @rpc
    def unread(self) -> dict:
        return self._api().unread()

    @rpc
    def mark_read(self, conversation_id: Any, message_id: Any) -> dict:
        return self._api().mark_read(conversation_id, message_id)

    @rpc
    def read_receipts(self, conversation_id: Any) -> dict:
        return self._api().read_receipts(conversation_id)

    # -- messages ---------------------------------------------------------------------------------------------
    @rpc
    def send_message(self, conversation_id: Any, data: Any) -> dict:
        return self._api().send_message(conversation_id, data)

    @rpc
    def messages(self, conversation_id: Any, before: Any = None, after: Any = None, limit: Any = 50) -> dict:
        return self._api().messages(conversation_id, before, after, limit)

    @rpc
    def message(self, message_id: Any) -> dict:
        return self._api().message(message_id)

    @rpc
    def edit_message(self, message_id: Any, body: Any) -> dict:
        return self._api().edit_message(message_id, body)

    @rpc
    def delete_message(self, message_id: Any) -> dict:
        return self._api().delete_message(message_id)

    @rpc
    def message_history(self, message_id: Any) -> dict:
        return self._api().message_history(message_id)

    @rpc
    def search(self, q: Any, conversation_id: Any = None, chat_id: Any = None, limit: Any = 20,
               cursor: Any = None) -> dict:
        return self._api().search(q, conversation_id, chat_id, limit, cursor)

    # -- chats ------------------------------------------------------------------------------------------------
    @rpc
    def create_chat(self, data: Any) -> dict:
        return self._api().create_chat(data)

    @rpc
    def chats(self) -> dict:
        return self._api().chats()

    @rpc
    def chat(self, chat_id: Any) -> dict:
        return self._api().chat(chat_id)

    @rpc
    def send_chat_message(self, chat_id: Any, data: Any) -> dict:
        return self._api().send_chat_message(chat_id, data)

    @rpc
    def chat_messages(self, chat_id: Any, before: Any = None, after: Any = None, limit: Any = 50) -> dict:
        return self._api().chat_messages(chat_id, before, after, limit)

    @rpc
    def add_chat_member(self, chat_id: Any, user_id: Any) -> dict:
        return self._api().add_chat_member(chat_id, user_id)

    @rpc
    def remove_chat_member(self, chat_id: Any, user_id: Any) -> dict:
        return self._api().remove_chat_member(chat_id, user_id)

    @rpc
    def mark_chat_read(self, chat_id: Any, message_id: Any) -> dict:
        return self._api().mark_chat_read(chat_id, message_id)

    # -- attachments ------------------------------------------------------------------------------------------
    @rpc
    def upload_attachment(self, data: Any) -> dict:
        return self._api().upload_attachment(data)

    @rpc
    def attachment(self, attachment_id: Any) -> dict:
        return self._api().attachment(attachment_id)

    # -- data subjects (privacy's broker user only) -------------------------------------------------------------
    @rpc
    def export_subject(self, subject_id: Any) -> dict:
        return self._api().export_subject(subject_id)

    @rpc
    def erase_subject(self, subject_id: Any, mode: Any = "deletion", request_id: Any = None) -> dict:
        return self._api().erase_subject(subject_id, mode, request_id)

    @rpc
    def customer_ids(self, channel: Any = None, limit: Any = 500, cursor: Any = None) -> dict:
        return self._api().customer_ids(channel, limit, cursor)

    @rpc
    def data_map(self) -> dict:
        """Every personal field messaging keeps (public, as identity's: no personal value in it)."""
        return self._api().data_map()

    @reliable_handler("privacy", ["privacy.erasure_requested.v1"])
    def on_erasure_requested(self, event: EventEnvelope) -> None:
        """Privacy asks to erase a person: shred, purge, confirm with ``messaging.subject_erased.v1``."""
        with self.db.handling(event) as uow:
            if uow is not None:
                self._api().erasure_requested(with_sql_repositories(uow), dict(event.data))
