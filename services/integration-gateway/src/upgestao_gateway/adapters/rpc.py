"""RPC with a deadline, for code that must answer an HTTP client in time.

nameko's ``RpcProxy`` waits for a reply forever. :class:`RpcClient` is the
worker's ``self.rpc`` (given by the ``Rpc`` dependency provider of
:mod:`upgestao_gateway.entrypoints.dependencies`)::

    self.rpc.identity.health()                       # the default deadline
    self.rpc.call("identity", "health", timeout=2)   # an explicit one

The worker's context data (request id, actor, source ip) travels with every
call as message headers, as with nameko's proxy. A call that is not answered
in time raises :class:`RpcTimeout`; a call no service can receive raises
:class:`RpcUnavailable` (the gateway answers both 503). The request message
expires with the deadline, so a stopped service does not pile up calls that
nobody waits for any more.

A call made for a write (an HTTP request given an ``idempotency_base``, see
:mod:`upgestao_gateway.entrypoints.http.guards`) carries an idempotency key: the
base, the service and method, and the call's rank among the request's calls of
that method. When its answer does
not come -- the broker went away, the service died after its commit, it timed
out, its database was briefly unreachable -- it is asked again with the same key,
for up to ``UPGESTAO_RPC_RETRY_BUDGET_S``: the service answers from the reply it
kept with the effects (``upgestao_kernel.keyed_requests``) or, if nothing was
committed, carries it out. An answer that says the outcome is unknown is not
asked again.

The calls go out through an :class:`RpcTransport`: nameko's method proxy and
reply listener in production (:mod:`upgestao_gateway.entrypoints.dependencies`,
the only place importing nameko), so this module is the deadline and the
retries only.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import eventlet
from kombu.exceptions import OperationalError
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import get_logger

log = get_logger(__name__)
RETRY_FIRST_DELAY_S = 0.25
RETRY_MAX_DELAY_S = 2.0


class RpcUnavailable(Exception):
    """The called service cannot be reached (not running, broker down, too slow)."""

    def __init__(self, service: str, method: str, reason: str) -> None:
        self.service = service
        self.method = method
        self.reason = reason
        super().__init__(f"{service}.{method}: {reason}")


class RpcTimeout(RpcUnavailable):
    def __init__(self, service: str, method: str, timeout_s: float) -> None:
        super().__init__(service, method, f"no reply within {timeout_s:g}s")


def retryable(exc: BaseException) -> bool:
    """Worth asking again with the same key: no answer came, or the service said "not now" (its
    database was unreachable, its hashing queue full) without saying the outcome is unknown."""
    if isinstance(exc, RpcUnavailable):
        return True
    return (isinstance(exc, ServiceError) and exc.status == 503
            and exc.extensions.get("outcome") != "unknown")


class PendingReply(Protocol):
    def result(self) -> Any:
        """The answer (or the service's error, raised); waits until it comes."""


class RpcTransport(Protocol):
    """How one call goes out, and is forgotten when its caller gives up on it.

    ``send`` raises :class:`RpcUnavailable` when no service can receive the call (as may ``result``);
    broker errors are kombu's ``OperationalError`` or a ``ConnectionError``.
    """

    def send(self, service: str, method: str, args: tuple, kwargs: dict, *, expiration_s: float,
             idempotency_key: str | None) -> PendingReply: ...

    def forget(self, reply: PendingReply) -> None: ...


class RpcClient:
    """A worker's ``self.rpc``: ``worker_ctx.args[0]`` is the HTTP request, whose ``idempotency_base``
    (a keyed route's) makes its calls keyed."""

    def __init__(self, worker_ctx: Any, transport: RpcTransport, timeout_s: float, retry_budget_s: float = 0.0) -> None:
        self._worker_ctx = worker_ctx
        self._transport = transport
        self.timeout_s = timeout_s
        self.retry_budget_s = retry_budget_s
        self._ranks: dict[str, int] = {}

    def call(self, service: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return self.invoke(service, method, args, kwargs, timeout)

    def _idempotency_key(self, service: str, method: str) -> str | None:
        args = self._worker_ctx.args
        base = getattr(args[0], "idempotency_base", None) if args else None
        if not base:
            return None
        name = f"{service}.{method}"
        self._ranks[name] = rank = self._ranks.get(name, 0) + 1
        return f"{base}:{name}#{rank}"

    def invoke(self, service: str, method: str, args: tuple, kwargs: dict, timeout: float | None = None) -> Any:
        timeout_s = timeout or self.timeout_s
        key = self._idempotency_key(service, method)
        if key is None:
            return self._attempt(service, method, args, kwargs, timeout_s, None)
        give_up_at = time.monotonic() + self.retry_budget_s
        delay, attempt = RETRY_FIRST_DELAY_S, 1
        while True:
            try:
                return self._attempt(service, method, args, kwargs, timeout_s, key)
            except (RpcUnavailable, ServiceError) as exc:
                if not retryable(exc) or time.monotonic() + delay >= give_up_at:
                    if attempt > 1:
                        log.warning("rpc.retries_exhausted", downstream=service, method=method, attempts=attempt)
                    raise
                log.info("rpc.retrying", downstream=service, method=method, attempt=attempt,
                         reason=getattr(exc, "reason", None) or getattr(exc, "slug", None))
            eventlet.sleep(delay)
            delay, attempt = min(delay * 2, RETRY_MAX_DELAY_S), attempt + 1
            timeout_s = max(1.0, min(timeout_s, give_up_at - time.monotonic()))

    def _attempt(self, service: str, method: str, args: tuple, kwargs: dict, timeout_s: float,
                 key: str | None) -> Any:
        reply = None
        deadline = eventlet.Timeout(timeout_s)
        try:
            # The request message expires with the deadline: a request outliving it is useless.
            reply = self._transport.send(service, method, args, kwargs, expiration_s=timeout_s, idempotency_key=key)
            return reply.result()
        except eventlet.Timeout as exc:
            if exc is not deadline:
                raise
            if reply is not None:
                self._transport.forget(reply)
            raise RpcTimeout(service, method, timeout_s) from None
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
