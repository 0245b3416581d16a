"""RPC methods through which the integrations service opens the conversations it shares (issue 15, mixed
into the service): never a private note, never a staff chat, each opening audited as a ``share``."""

from __future__ import annotations

from typing import Any

from upgestao_kernel.nameko_ext import rpc

from ..service_layer import sharing


class SharingRpc:
    """Mixed into :class:`~upgestao_messaging.service.MessagingService`."""

    @rpc(keep_reply=False)  # a reply holding message bodies is never stored
    def share_messages(self, message_ids: Any, include_body: Any, recipient: Any, purpose: Any) -> dict:
        """The conversation messages of ``message_ids`` for ``recipient`` (``integration:<id>``), bodies when
        ``include_body`` (each audited ``share``): ``{"messages": {id: {...} | None}}``."""
        with self._uow() as uow:  # type: ignore[attr-defined]
            return sharing.share_messages(uow, message_ids, include_body, recipient, purpose)
