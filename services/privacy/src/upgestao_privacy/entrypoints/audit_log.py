"""``AuditLogRunner``: the audit log's two background loops in the privacy service, wired.

* ingest: the kernel's :class:`~upgestao_kernel.consumers.batch.BatchConsumer` on
  ``privacy.audit-ingest`` (durable quorum queue bound to the ``audit`` exchange):
  a message holds one record or a batch of them; batches of messages are stored by
  :mod:`..service_layer.ingest` (at most ``ingest_batch`` records a transaction) and
  acked only after the commit; a message with a malformed record, or a record of
  another service than its sender's, goes whole to ``privacy.audit-ingest.parked``
  (confirmed) before being acked;
* checkpoints: every ``checkpoint_interval_s`` the tree is signed if it grew.

(The audit stream is fed by the relay process: :mod:`..adapters.stream_feeder`.)

Both loops survive a broker or database outage on the kernel's back-off loop;
unacked messages stay in the queue meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from kombu import Connection
from nameko.extensions import DependencyProvider
from upgestao_kernel.broker_permissions import SHARED_USER_ENV, shares_one_user
from upgestao_kernel.config import ConfigError, load_settings
from upgestao_kernel.consumers import GreenStop, run_forever
from upgestao_kernel.consumers.batch import BATCH_WAIT_S, BatchConsumer, BatchHandler
from upgestao_kernel.db import create_engine, green_postgres
from upgestao_kernel.logging import get_logger
from upgestao_kernel.topology import audit_exchange, consumer_queue, declare_publishing, parking_queue

from ..adapters.audit_store import sql_transactions
from ..adapters.database_roles import owns_the_log
from ..adapters.metrics import audit_stored
from ..domain.checkpoints import CheckpointSigner
from ..service_layer import ingest
from ..settings import AuditSettings, load_audit_settings

log = get_logger(__name__)

INGEST_QUEUE = "privacy.audit-ingest"
__all__ = ["AuditLogRunner", "BATCH_WAIT_S", "INGEST_QUEUE", "declare_ingest", "ingest_queue"]


def ingest_queue():
    return consumer_queue(INGEST_QUEUE, audit_exchange(), ["audit.#"])


def declare_ingest(channel) -> None:
    declare_publishing(channel)
    ingest_queue()(channel).declare()
    parking_queue(INGEST_QUEUE)(channel).declare()


class AuditLogRunner(DependencyProvider):
    """Runs the loops; ``self.audit_log`` in a worker gives the signer and settings."""

    def setup(self) -> None:
        base = load_settings(self.container.service_name)
        self.settings: AuditSettings = load_audit_settings(base)
        self.signer = CheckpointSigner(self.settings.signing_key)
        self.amqp_uri = self.container.config["AMQP_URI"]
        if base.database_url.startswith("postgresql"):
            green_postgres()
        self.engine = create_engine(base.database_url, pool_size=3)
        self._check_runtime_role(production=base.production)
        self.transaction = sql_transactions(self.engine)
        self._stop = GreenStop()
        self._threads: list = []
        self.consumer = BatchConsumer(
            self.amqp_uri, INGEST_QUEUE,
            BatchHandler(parse=ingest.parse_message, store=self._store, refuses=ingest.refused,
                         describe=ingest.describe_error, admit=self._admit(base.env)),
            declare=declare_ingest, batch_size=self.settings.ingest_batch, prefetch=self.settings.ingest_prefetch,
            name="audit.ingest", stop=self._stop, max_items=self.settings.ingest_batch,
        )
        with Connection(self.amqp_uri) as conn:
            declare_ingest(conn.default_channel)

    def _check_runtime_role(self, *, production: bool) -> None:
        """The service must not log in as the audit log's owner: the owner can switch the append-only
        triggers off (``adapters.database_roles``). Refused in production; reported elsewhere (a
        developer's single PostgreSQL role). A database that does not answer yet is checked by nobody:
        the loops wait for it as for any outage."""
        try:
            with self.engine.connect() as conn:
                owner = owns_the_log(conn)
        except sa.exc.OperationalError:
            return
        if not owner:
            return
        if production:
            raise ConfigError("PRIVACY_DATABASE_URL", "logs in as the audit log's owner (or a superuser): run as "
                              "the runtime role, migrate with PRIVACY_MIGRATION_DATABASE_URL")
        log.warning("audit.runtime_role_owns_log", hint="run as a runtime role (PRIVACY_MIGRATION_DATABASE_URL "
                    "for the migrations): this role could switch the append-only triggers off")

    def start(self) -> None:
        for loop in (self.consumer.run, self._checkpoint_loop):
            self._threads.append(self.container.spawn_managed_thread(loop, identifier=f"audit.{loop.__name__}"))

    def stop(self) -> None:
        self._stop.stop_loops(self._threads)
        self.engine.dispose()

    def kill(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.kill()

    def get_dependency(self, worker_ctx) -> AuditLogRunner:
        return self

    @staticmethod
    def _admit(env: str):
        """A record is stored only if its ``service`` is its sender's (the message's ``user_id``); on a
        platform whose processes share one broker user (never in production) that cannot be told."""
        if shares_one_user(env):
            log.warning("audit.sender_unchecked", reason=f"{SHARED_USER_ENV}=1: every process shares one broker user")
            return ingest.admit_any
        return ingest.admit

    def _store(self, records: Sequence[dict[str, Any]]) -> None:
        result = ingest.store(self.transaction, records, self.signer, checkpoint_every=self.settings.checkpoint_every)
        audit_stored(result.stored)  # committed: counted, each record's lag from its emission observed
        log.debug("audit.stored", stored=len(result.stored), duplicates=result.duplicates,
                  checkpoint=result.checkpoint.tree_size if result.checkpoint else None)

    def _checkpoint_loop(self) -> None:
        """Every ``checkpoint_interval_s``, sign the tree if records arrived since the last checkpoint."""
        def step() -> None:
            self._stop.wait(self.settings.checkpoint_interval_s)
            if not self._stop.is_set():
                ingest.sign_pending(self.transaction, self.signer)

        run_forever(step, stop=self._stop, event="audit.checkpoint_failed", level="error",
                    describe=lambda exc: {"error": ingest.describe_error(exc)})
