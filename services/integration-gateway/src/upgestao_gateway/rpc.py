"""RPC with a deadline, for code that must answer an HTTP client in time.

nameko's ``RpcProxy`` waits for a reply forever. :class:`Rpc` gives the
worker ``self.rpc``::

    self.rpc.identity.health()                       # the default deadline
    self.rpc.call("identity", "health", timeout=2)   # an explicit one

The worker's context data (request id, actor, source ip) travels with every
call as message headers, as with nameko's proxy. A call that is not answered
in time raises :class:`RpcTimeout`; a call no service can receive raises
:class:`RpcUnavailable` (the gateway answers both 503). The request message
expires with the deadline, so a stopped service does not pile up calls that
nobody waits for any more.
"""

from __future__ import annotations

from typing import Any

import eventlet
from kombu.exceptions import OperationalError
from nameko.constants import NON_PERSISTENT
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import MethodProxy, ReplyListener
from upgestao_kernel.config import load_settings


class RpcUnavailable(Exception):
    """The called service cannot be reached (not running, broker down, too slow)."""

    def __init__(self, service: str, method: str, reason: str) -> None:
        self.service = service
        self.method = method
        self.reason = reason
        super().__init__(f"{service}.{method}: {reason}")


class RpcTimeout(RpcUnavailable):
    def __init__(self, service: str, method: str, timeout_s: float) -> None:
        super().__init__(service, method, f"no reply within {timeout_s}s")


class DeadlineReplyListener(ReplyListener):
    """nameko's reply listener, able to forget a call whose caller gave up."""

    def forget(self, reply_event) -> None:
        for correlation_id, event in list(self._reply_events.items()):
            if event is reply_event:
                self._reply_events.pop(correlation_id, None)


class RpcClient:
    def __init__(self, worker_ctx, reply_listener: DeadlineReplyListener, timeout_s: float) -> None:
        self._worker_ctx = worker_ctx
        self._reply_listener = reply_listener
        self.timeout_s = timeout_s

    def call(self, service: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return self.invoke(service, method, args, kwargs, timeout)

    def invoke(self, service: str, method: str, args: tuple, kwargs: dict, timeout: float | None = None) -> Any:
        timeout_s = timeout or self.timeout_s
        reply = None
        deadline = eventlet.Timeout(timeout_s)
        try:
            # Transient: a request outliving its deadline is useless, so it
            # need not wait for the broker's disk before being confirmed.
            proxy = MethodProxy(
                self._worker_ctx, service, method, self._reply_listener,
                expiration=timeout_s, delivery_mode=NON_PERSISTENT,
            )
            reply = proxy.call_async(*args, **kwargs)
            return reply.result()
        except eventlet.Timeout as exc:
            if exc is not deadline:
                raise
            if reply is not None:
                self._reply_listener.forget(reply.reply_event)
            raise RpcTimeout(service, method, timeout_s) from None
        except UnknownService:
            raise RpcUnavailable(service, method, "no such service is listening") from None
        except (OperationalError, ConnectionError) as exc:
            raise RpcUnavailable(service, method, f"broker: {type(exc).__name__}") from None
        finally:
            deadline.cancel()

    def __getattr__(self, service: str) -> _ServiceCaller:
        if service.startswith("_"):
            raise AttributeError(service)
        return _ServiceCaller(self, service)


class _ServiceCaller:
    def __init__(self, client: RpcClient, service: str) -> None:
        self._client = client
        self._service = service

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._client.invoke(self._service, method, args, kwargs)

        return call


class Rpc(DependencyProvider):
    """``self.rpc``: calls to any service, each bounded by a deadline.

    The default deadline is ``UPGESTAO_RPC_TIMEOUT_S`` (kernel settings).
    """

    reply_listener = DeadlineReplyListener()

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s

    def setup(self) -> None:
        if self.timeout_s is None:
            self.timeout_s = float(load_settings(self.container.service_name).rpc_timeout_s)

    def get_dependency(self, worker_ctx) -> RpcClient:
        return RpcClient(worker_ctx, self.reply_listener, self.timeout_s)
