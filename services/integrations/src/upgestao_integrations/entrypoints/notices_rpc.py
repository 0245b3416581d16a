"""``integrations.notice``: the notifier's question when an integration was disabled (gone, failing)."""

from __future__ import annotations

from upgestao_kernel.nameko_ext import rpc

from ..service_layer import notices


class NoticesRpc:
    @rpc
    def notice(self, notice_id: str, recipient_id: str | None = None, cursor: str | None = None) -> dict:
        with self._uow() as uow:
            return notices.notice(uow, self.identity, notice_id, recipient_id, cursor)
