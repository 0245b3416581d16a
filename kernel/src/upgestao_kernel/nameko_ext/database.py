"""``Database``: a service's own database, unit of work and vault, for nameko.

nameko-sqlalchemy does not work with SQLAlchemy 2; this is the small
replacement, built on the kernel's unit of work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from nameko.utils import get_redacted_args

from ..config import load_settings
from ..context import RequestContext, system_context
from ..db import create_engine, green_postgres
from ..events import EventEnvelope
from ..keyed_requests import KeyedRequest, fingerprint
from ..logging import bind_request_context, clear_request_context
from ..projections import Projection
from ..unit_of_work import UnitOfWork
from ..vault import Vault, load_keys
from .principals import Principals, pinned_keys, request_context


class ServiceDatabase:
    """What a worker sees as ``self.db``: bound to the worker's request context."""

    def __init__(self, provider: Database, context: RequestContext, entrypoint_name: str,
                 keyed: KeyedRequest | None = None, worker_ctx=None) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx
        self.context = context
        self._entrypoint_name = entrypoint_name
        self.keyed = keyed  # the worker's keyed request (an RPC that came with an idempotency key)

    @property
    def engine(self) -> sa.engine.Engine:
        return self._provider.engine

    def unit_of_work(self, context: RequestContext | None = None) -> UnitOfWork:
        return UnitOfWork(
            self._provider.engine,
            self._provider.service,
            context or self.context,
            projections=self._provider.projections,
            vault=self._provider._vault,
            request=self.keyed if context is None else None,
        )

    @contextmanager
    def handling(self, event: EventEnvelope) -> Iterator[UnitOfWork | None]:
        """A unit of work that processes ``event`` at most once for this handler.

        Yields ``None`` when the event was already processed (a duplicate
        delivery): the handler then does nothing.
        """
        consumer = f"{self._provider.service}.{self._entrypoint_name}"
        with self.unit_of_work(self.context.caused_by(event.event_id)) as uow:
            claimed = uow.claim(consumer, event.event_id)
            if not claimed and self._worker_ctx is not None:  # counted as a duplicate, not handled (metrics)
                setattr(self._worker_ctx, DUPLICATE_DELIVERY, True)
            yield uow if claimed else None

    def ping(self) -> str:
        with self._provider.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return "ok"


class Database(DependencyProvider):
    def __init__(self, projections: Callable[[], Sequence[Projection]] | Sequence[Projection] = (), *,
                 personal_data: bool = False) -> None:
        """``personal_data``: the service keeps personal data (through its vault). Only such a service
        loads the master and blind-index keys: a front door or a service that never decrypts never holds
        them, so its compromise opens nothing (issue 11, finding 9)."""
        self._projections = projections
        self.personal_data = personal_data
        self._own_token_keys: dict = {}
        self.principals: Principals | None = None

    def trust_token_keys(self, keys: Mapping) -> None:
        """Verify access tokens with these keys too (identity: the public halves of its signing keys)."""
        self._own_token_keys.update(keys)
        if self.principals is not None:
            self.principals.trust(keys)

    def setup(self) -> None:
        self.service = self.container.service_name
        settings = load_settings(self.service)
        if settings.database_url.startswith("postgresql"):
            green_postgres()
        self.engine = create_engine(settings.database_url)
        if self.personal_data:
            keyring, blind_key = load_keys(settings, os.environ)
            self._vault = Vault(keyring, blind_key)
        else:
            self._vault = None  # any use of uow.personal says this service has no vault
        config = dict(self.container.config)
        self.principals = Principals(pinned_keys(settings, os.environ),
                                     fetch=lambda: fetch_identity_keys(config))
        self.principals.trust(self._own_token_keys)
        self.projections = tuple(self._projections() if callable(self._projections) else self._projections)

    def stop(self) -> None:
        self.engine.dispose()

    def unit_of_work(self, context: RequestContext | None = None) -> UnitOfWork:
        """For work outside any worker (start-up tasks): the system acts."""
        return UnitOfWork(self.engine, self.service, context or system_context(), projections=self.projections,
                          vault=self._vault)

    def worker_setup(self, worker_ctx) -> None:
        ctx = request_context(worker_ctx, self.principals)
        bind_request_context(
            request_id=ctx.request_id, actor_id=ctx.actor_id, actor_role=ctx.actor_role,
            entrypoint=worker_ctx.entrypoint.method_name,
        )

    def worker_teardown(self, worker_ctx) -> None:
        keyed = getattr(worker_ctx, "keyed_request", None)
        if keyed is not None:
            keyed.abandon()  # normally finished by the entrypoint already; never leave a transaction open
        clear_request_context()

    def get_dependency(self, worker_ctx) -> ServiceDatabase:
        context = request_context(worker_ctx, self.principals)
        # The key is this request's, not its callees': taken out so it does not travel on.
        # (from worker_ctx.data itself: nameko's context_data is a copy, and popping the copy left the key to
        # travel on to every call the worker makes, where a second call was "the same key, another request")
        key = worker_ctx.data.pop(IDEMPOTENCY_KEY, None)
        keyed = None
        if key and getattr(worker_ctx.entrypoint, "keyed_requests", False):
            keyed = KeyedRequest(
                self.engine, self._vault, key=str(key), method=worker_ctx.entrypoint.method_name,
                fingerprint=request_fingerprint(worker_ctx),
                actor_id=context.actor_id, keep_reply=getattr(worker_ctx.entrypoint, "keep_reply", True),
            )
            worker_ctx.keyed_request = keyed
        return ServiceDatabase(self, context, worker_ctx.entrypoint.method_name, keyed, worker_ctx)


IDEMPOTENCY_KEY = "idempotency_key"
# set on a worker's context when ``handling`` found its event already processed (a redelivery)
DUPLICATE_DELIVERY = "upgestao_duplicate_delivery"


def request_fingerprint(worker_ctx) -> str:
    """The request's method and arguments, its sensitive ones (passwords, tokens) redacted."""
    entrypoint = worker_ctx.entrypoint
    try:
        if not entrypoint.sensitive_arguments and hasattr(entrypoint, "call_arguments"):
            # the kernel's rpc: its method's signature read once, nothing to redact (nor to copy first)
            callargs = entrypoint.call_arguments(worker_ctx.args, worker_ctx.kwargs)
        else:
            callargs = get_redacted_args(entrypoint, *worker_ctx.args, **worker_ctx.kwargs)
    except TypeError:  # arguments that do not fit: nameko refuses the call anyway
        callargs = {"args": list(worker_ctx.args), "kwargs": worker_ctx.kwargs}
    callargs.pop("self", None)
    return fingerprint(entrypoint.method_name, (), callargs)


def fetch_identity_keys(config: Mapping) -> dict:
    """Identity's JWKS document over RPC (outside production, unpinned): only identity's broker user may
    consume ``rpc-identity``, so only identity can answer."""
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy(dict(config), timeout=5) as cluster:
        return cluster.identity.public_keys()
