"""The dispatcher: a loop in every integrations process that delivers due webhook messages.

It wakes at once when a handler of this process queued messages (:meth:`IntegrationsRuntime.wake`), else
polls every ``INTEGRATIONS_POLL_S`` (0.5 s); each round is :meth:`Deliverer.run_once` (claims are safe across
replicas). The POSTs run on a green pool of ``INTEGRATIONS_CONCURRENCY``. At start, recover jobs left running
by a stopped process are resumed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eventlet.greenpool import GreenPool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy
from upgestao_kernel.config import load_settings
from upgestao_kernel.logging import get_logger
from upgestao_kernel.nameko_ext import Database

from ..adapters.http_sender import WebhookSender
from ..adapters.secret_box import SecretBox
from ..adapters.sql_repositories import with_sql_repositories
from ..domain.network import AllowedNetworks
from ..service_layer.delivery import Deliverer
from ..service_layer.messages import Messages
from ..settings import IntegrationsSettings, load_integrations_settings
from .dependencies import RpcOwners

log = get_logger(__name__)
BATCHES = 4  # claimed batches delivered side by side per process
SETTLE_EVERY_S = 1.0  # how often claims left by a dead process are looked for


def webhook_sender(settings: IntegrationsSettings) -> WebhookSender:
    """The dispatcher's sender: it keeps as many idle connections to an endpoint as it POSTs to it at once
    (``per_endpoint``), so a wave of POSTs finds one each instead of opening and closing the rest."""
    return WebhookSender(AllowedNetworks.parse(settings.allowed_networks), timeout_s=settings.timeout_s,
                         max_idle_per_key=max(4, settings.per_endpoint))


def utcnow() -> datetime:
    return datetime.now(UTC)


class IntegrationsRuntime(DependencyProvider):
    settings: IntegrationsSettings

    def setup(self) -> None:
        self.settings = load_integrations_settings(load_settings(self.container.service_name))
        self.box = SecretBox(self.settings.secrets_key)
        self.sender = webhook_sender(self.settings)
        self.pool = GreenPool(self.settings.concurrency)
        self.posting: dict[str, Semaphore] = {}  # per endpoint: at most ``per_endpoint`` POSTs at once
        self._wake = threading.Event()
        self._running = False
        self._jobs = GreenPool(4)

    def _database(self) -> Database:
        return next(d for d in self.container.dependencies if isinstance(d, Database))

    def unit_of_work(self) -> Any:
        return with_sql_repositories(self._database().unit_of_work())

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._loop, identifier="integrations.dispatcher")
        self.container.spawn_managed_thread(self._resume, identifier="integrations.recoveries")

    def stop(self) -> None:
        self._running = False
        self._wake.set()
        self._jobs.waitall()

    def kill(self) -> None:
        self._running = False
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def spawn(self, job: Callable[[], None]) -> None:
        self._jobs.spawn_n(self._guarded, job)

    @staticmethod
    def _guarded(job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - a recover job's failure: it stays running, resumed at start
            log.error("integrations.job_failed", error=type(exc).__name__)

    def messages(self, unit_of_work: Callable[[], Any], permissions_of: Callable) -> Messages:
        return Messages(unit_of_work, permissions_of, now=utcnow, spawn=self.spawn, wake=self.wake)

    def _resume(self) -> None:
        try:
            resumed = self.messages(self.unit_of_work, lambda role: frozenset()).resume_recoveries()
            if resumed:
                log.info("integrations.recoveries_resumed", jobs=resumed)
        except Exception as exc:  # noqa: BLE001 - the database away at start: the next start resumes them
            log.warning("integrations.recoveries_not_resumed", error=type(exc).__name__)

    def _loop(self) -> None:
        """Claim a batch whenever there is room (at most ``claimed_per_endpoint`` messages claimed per endpoint,
        POSTed 8 at a time; BATCHES batches side by side), deliver it in the background, and claim again; idle,
        wait for a wake-up or the poll."""
        rng = random.Random()
        batches = GreenPool(BATCHES)
        while self._running:
            try:
                with ClusterRpcProxy(dict(self.container.config), timeout=self.settings.owners_timeout_s) as cluster:
                    owners = RpcOwners(cluster)
                    deliverer = Deliverer(unit_of_work=self.unit_of_work, owners=owners,
                                          sender=self.sender, box=self.box, settings=self.settings, now=utcnow,
                                          rng=rng, concurrently=self.pool.imap, batch_done=self.wake,
                                          semaphore=Semaphore, posting=self.posting)
                    settled = 0.0
                    while self._running and not owners.broken:  # a failed call: a new proxy (see RpcOwners)
                        if time.monotonic() - settled >= SETTLE_EVERY_S:
                            deliverer.settle_stale()
                            settled = time.monotonic()
                        claimed = deliverer.claim()
                        if claimed:
                            batches.spawn(self._deliver, deliverer, claimed)  # waits while BATCHES run
                            continue
                        self._wake.wait(self.settings.poll_s)
                        self._wake.clear()
                    batches.waitall()
            except Exception as exc:  # noqa: BLE001 - the database or the broker away: try again shortly
                log.warning("integrations.dispatcher_error", error=type(exc).__name__)
                self._wake.wait(self.settings.poll_s)
                self._wake.clear()

    @staticmethod
    def _deliver(deliverer: Deliverer, claimed: list) -> None:
        try:
            deliverer.deliver(claimed)
        except Exception as exc:  # noqa: BLE001 - its claims are settled as interrupted after the timeout
            log.warning("integrations.batch_failed", messages=len(claimed), error=type(exc).__name__)

    def get_dependency(self, worker_ctx) -> IntegrationsRuntime:
        return self
