"""``AuditLogRunner``: the audit log's two background loops in the privacy service.

* ingest: consumes ``privacy.audit-ingest`` (durable quorum queue bound to
  the ``audit`` exchange), stores batches (:mod:`..service_layer.ingest`) and
  acks them only after the commit; malformed records go to
  ``privacy.audit-ingest.parked`` (confirmed) before being acked;
* checkpoints: every ``checkpoint_interval_s`` the tree is signed if it grew.

(The audit stream is fed by the relay process: :mod:`..adapters.stream_feeder`.)

The loops survive a broker or database outage: they back off and resume;
unacked messages stay in the queue meanwhile.
"""

from __future__ import annotations

import json
import time

import amqp
import eventlet
import sqlalchemy as sa
from kombu import Connection
from nameko.extensions import DependencyProvider
from upgestao_kernel.config import load_settings
from upgestao_kernel.db import create_engine, green_postgres
from upgestao_kernel.logging import get_logger
from upgestao_kernel.topology import audit_exchange, consumer_queue, declare_publishing, parking_queue

from ..domain.checkpoints import CheckpointSigner
from ..service_layer import ingest
from ..settings import AuditSettings, load_audit_settings

log = get_logger(__name__)

INGEST_QUEUE = "privacy.audit-ingest"
BATCH_WAIT_S = 0.02  # a partial batch is stored once no record arrived for this long
ERROR_HEADER = "x-upgestao-error"
# A message that is not a record: parked. json.JSONDecodeError is a ValueError; JSON nested too
# deep raises RecursionError, which left unparked made the batch a poison message redelivered forever.
UNREADABLE = (ValueError, RecursionError)


def _describe(exc: BaseException) -> str:
    """What went wrong, without the values involved: a database error's text can quote the
    failing row (a record's source address, say), so only its type and SQLSTATE are kept;
    the parser's own errors name fields only."""
    if isinstance(exc, sa.exc.DBAPIError):
        return f"{type(exc.orig).__name__} (SQLSTATE {getattr(exc.orig, 'pgcode', None) or '?'})"
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
        return f"{type(exc).__name__}: {exc}"[:1000]
    return type(exc).__name__


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
        self._stopping = False
        self._threads: list = []
        with Connection(self.amqp_uri) as conn:
            declare_ingest(conn.default_channel)

    def start(self) -> None:
        for loop in (self._ingest_loop, self._checkpoint_loop):
            self._threads.append(self.container.spawn_managed_thread(loop, identifier=loop.__name__))

    def stop(self) -> None:
        self._stopping = True
        for thread in self._threads:
            try:
                thread.wait()
            except Exception:  # noqa: BLE001 - a loop that died already logged why
                pass
        self.engine.dispose()

    def kill(self) -> None:
        self._stopping = True
        for thread in self._threads:
            thread.kill()

    def get_dependency(self, worker_ctx) -> AuditLogRunner:
        return self

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            eventlet.sleep(min(0.1, deadline - time.monotonic()))

    def _forever(self, name: str, step) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                step()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - broker or database trouble: back off, retry
                log.error(f"audit.{name}_failed", error=_describe(exc))
                self._sleep(backoff)
                backoff = min(backoff * 2, 2.0)  # a broker or database back from a restart: used within 2 s

    # -- ingest -------------------------------------------------------------------------------

    def _ingest_loop(self) -> None:
        self._forever("ingest", self._consume)

    def _consume(self) -> None:
        """Collect deliveries into batches; one batch is stored (in its own green thread) while the
        next one arrives, and each is acked here, on the consuming thread, once its commit is done."""
        pending: list = []
        storing = None  # (green thread, last delivery tag of its batch)
        with Connection(self.amqp_uri) as conn:
            conn.connect()
            channel = conn.channel()
            declare_ingest(channel)
            # malformed records are parked on a connection whose publishes wait for the broker's confirm
            parking_conn = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
            parking = parking_conn.channel()
            channel.basic_qos(0, self.settings.ingest_prefetch, False)
            channel.basic_consume(INGEST_QUEUE, callback=pending.append, no_ack=False)
            try:
                while not self._stopping:
                    quiet = False
                    try:
                        conn.drain_events(timeout=BATCH_WAIT_S if pending or storing else 0.5)
                    except TimeoutError:
                        quiet = True
                    if storing is not None and storing[0].dead:
                        storing[0].wait()  # re-raises a failed store: nothing acked, all redelivered
                        channel.basic_ack(storing[1], multiple=True)
                        storing = None
                    ready = len(pending) >= self.settings.ingest_batch or (quiet and pending)
                    if storing is None and ready:
                        batch = pending[: self.settings.ingest_batch]
                        del pending[: len(batch)]
                        storing = (eventlet.spawn(self._store, parking, batch), batch[-1].delivery_tag)
            finally:
                if storing is not None:
                    try:
                        storing[0].wait()  # let a commit in progress finish: its batch is redelivered anyway
                    except Exception:  # noqa: BLE001 - already failing: the outer loop logs and retries
                        pass
                parking_conn.release()

    def _store(self, parking, messages: list) -> None:
        """Park the malformed, store the rest in one transaction (the caller acks afterwards)."""
        records, malformed = [], []
        for message in messages:
            try:
                records.append(ingest.parse(json.loads(message.body)))
            except UNREADABLE as exc:
                malformed.append((message, exc))
        for message, exc in malformed:
            self._park(parking, message, exc)
        if records:
            try:
                result = ingest.store(self.engine, records, self.signer,
                                      checkpoint_every=self.settings.checkpoint_every)
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                    raise  # the database is away: nothing acked, everything redelivered later
                result = self._store_one_by_one(parking, messages, records)  # a record it refuses: parked
            log.debug("audit.stored", stored=len(result.stored), duplicates=result.duplicates,
                      checkpoint=result.checkpoint.tree_size if result.checkpoint else None)

    def _store_one_by_one(self, parking, messages, records) -> ingest.IngestResult:
        """A batch the database refused: find the record it refuses, park it, store the rest."""
        by_id = {}
        for message in messages:
            try:
                by_id[json.loads(message.body).get("audit_id")] = message
            except (*UNREADABLE, AttributeError):
                continue
        total = ingest.IngestResult()
        for record in records:
            try:
                result = ingest.store(self.engine, [record], self.signer,
                                      checkpoint_every=self.settings.checkpoint_every)
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                    raise
                self._park(parking, by_id[record["audit_id"]], exc)
                continue
            total.stored.extend(result.stored)
            total.duplicates += result.duplicates
        return total

    def _park(self, parking, message, exc: Exception) -> None:
        headers = dict(message.properties.get("application_headers") or {})
        headers[ERROR_HEADER] = _describe(exc)
        parking.basic_publish(
            amqp.Message(message.body, content_type=message.properties.get("content_type"),
                         delivery_mode=2, message_id=message.properties.get("message_id"),
                         application_headers=headers),
            exchange="", routing_key=parking_queue(INGEST_QUEUE).name)  # confirm mode: waits for the ack
        log.warning("audit.record_parked", message_id=message.properties.get("message_id"),
                    error=type(exc).__name__)

    # -- checkpoints ------------------------------------------------------------------------------

    def _checkpoint_loop(self) -> None:
        def step() -> None:
            self._sleep(self.settings.checkpoint_interval_s)
            if not self._stopping:
                ingest.sign_pending(self.engine, self.signer)

        self._forever("checkpoint", step)
