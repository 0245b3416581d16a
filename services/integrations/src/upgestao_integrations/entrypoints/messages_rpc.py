"""Webhook messages' RPCs (permission ``integrations.manage``): list, read, resend, recover."""

from __future__ import annotations

from upgestao_kernel.nameko_ext import rpc

from ..service_layer.messages import Messages


class MessagesRpc:
    def _messages(self) -> Messages:
        return self.runtime.messages(self._uow, self.roles.permissions_of)

    @rpc
    def webhook_messages(self, integration_id: str, status: str | None = None, limit: int = 50,
                         cursor: str | None = None) -> dict:
        return self._messages().webhook_messages(integration_id, status, limit, cursor)

    @rpc
    def webhook_message(self, integration_id: str, message_id: str) -> dict:
        return self._messages().webhook_message(integration_id, message_id)

    @rpc
    def resend(self, integration_id: str, message_id: str) -> dict:
        """A failed, aborted or succeeded message queued again, with the same id."""
        return self._messages().resend(integration_id, message_id)

    @rpc
    def recover(self, integration_id: str, since: str) -> dict:
        """A background job re-queueing every message that failed for good since ``since``."""
        return self._messages().recover(integration_id, since)

    @rpc
    def recovery(self, integration_id: str, job_id: str) -> dict:
        return self._messages().recovery(integration_id, job_id)
