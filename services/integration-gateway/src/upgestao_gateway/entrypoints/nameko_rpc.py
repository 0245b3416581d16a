"""nameko's RPC, as the routes' calls go out (:class:`~upgestao_gateway.adapters.rpc.RpcTransport`).

:class:`NamekoTransport` sends one call with nameko's method proxy: the worker's context data (request
id, actor, source ip) travels as message headers, and a keyed call adds its idempotency key
(:data:`IDEMPOTENCY_HEADER`). The request message is transient and expires with the caller's
deadline. :class:`DeadlineReplyListener` is nameko's reply listener, able to forget a call whose
caller gave up (its reply, if it ever comes, is then dropped).
"""

from __future__ import annotations

from typing import Any

from nameko.constants import NON_PERSISTENT
from nameko.exceptions import UnknownService
from nameko.rpc import MethodProxy, ReplyListener

from ..adapters.rpc import RpcUnavailable

IDEMPOTENCY_HEADER = "nameko.idempotency_key"
NOT_LISTENING = "no such service is listening"


class KeyedMethodProxy(MethodProxy):
    """nameko's method proxy, adding the call's idempotency key to the worker's context headers."""

    def __init__(self, worker_ctx, service_name, method_name, reply_listener, *, idempotency_key: str, **options):
        self.idempotency_key = idempotency_key
        super().__init__(worker_ctx, service_name, method_name, reply_listener, **options)

    def get_message_headers(self, worker_ctx):
        headers = super().get_message_headers(worker_ctx)
        headers[IDEMPOTENCY_HEADER] = self.idempotency_key
        return headers


class DeadlineReplyListener(ReplyListener):
    """nameko's reply listener, able to forget a call whose caller gave up."""

    def forget(self, reply_event) -> None:
        for correlation_id, event in list(self._reply_events.items()):
            if event is reply_event:
                self._reply_events.pop(correlation_id, None)


class NamekoReply:
    """nameko's pending reply; a service no one serves is :class:`RpcUnavailable`."""

    def __init__(self, reply: Any, service: str, method: str) -> None:
        self.reply = reply
        self.service = service
        self.method = method

    def result(self) -> Any:
        try:
            return self.reply.result()
        except UnknownService:
            raise RpcUnavailable(self.service, self.method, NOT_LISTENING) from None


class NamekoTransport:
    """The calls of one worker, through the container's reply listener."""

    def __init__(self, worker_ctx: Any, reply_listener: DeadlineReplyListener) -> None:
        self._worker_ctx = worker_ctx
        self._reply_listener = reply_listener

    def send(self, service: str, method: str, args: tuple, kwargs: dict, *, expiration_s: float,
             idempotency_key: str | None) -> NamekoReply:
        # Transient: a request outliving its deadline is useless, so it
        # need not wait for the broker's disk before being confirmed.
        options = {"expiration": expiration_s, "delivery_mode": NON_PERSISTENT}
        if idempotency_key is None:
            proxy = MethodProxy(self._worker_ctx, service, method, self._reply_listener, **options)
        else:
            proxy = KeyedMethodProxy(self._worker_ctx, service, method, self._reply_listener,
                                     idempotency_key=idempotency_key, **options)
        try:
            return NamekoReply(proxy.call_async(*args, **kwargs), service, method)
        except UnknownService:
            raise RpcUnavailable(service, method, NOT_LISTENING) from None

    def forget(self, reply: NamekoReply) -> None:
        self._reply_listener.forget(reply.reply.reply_event)
