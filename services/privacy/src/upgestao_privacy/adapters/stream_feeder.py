"""``StreamFeeder``: stored audit records onto the stream queue, in seq order.

Runs in the privacy relay process (``python -m upgestao_privacy relay``, one
replica), beside the outbox relay, so publishing the stream never takes CPU
from the ingest. The position moves only after the broker confirmed a batch;
a crash in between repeats those records on the stream (readers skip a seq
they have seen), never skips one. On PostgreSQL the position row is locked
(``SKIP LOCKED``) while a batch is published, so two feeders never interleave;
read with it, in the same statement, the log's size and latest checkpoint say
whether checkpoints are to be looked for; after a poll that found nothing, the
next asks whether anything waits in one statement before taking the lock.

The signed checkpoints leave the database the same way: each one, once the
records it covers are on the stream, is published after them and appended
to the checkpoint file (:mod:`.checkpoint_log`), then its tree size is saved
as published (issue 11, finding 7: copies a rewriter of the database cannot
reach).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from upgestao_kernel.consumers import Stop, run_forever
from upgestao_kernel.db import read_only
from upgestao_kernel.logging import get_logger

from ..domain.checkpoints import Checkpoint
from ..settings import AuditSettings
from . import audit_store
from .audit_stream import StreamPublisher
from .checkpoint_log import CheckpointFile

log = get_logger(__name__)

IDLE_POLL_S = 0.1  # nothing to publish: look again this much later


class StreamFeeder:
    def __init__(self, engine: Engine, amqp_uri: str, settings: AuditSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.publisher = StreamPublisher(amqp_uri, settings)
        self.checkpoint_file = CheckpointFile(settings.checkpoint_file) if settings.checkpoint_file else None
        self._idle = False  # the last poll found nothing to publish

    def feed_once(self) -> int:
        """Publish the next batch of stored records, then the checkpoints they complete; how many
        records were published."""
        now = datetime.now(UTC)
        if self.engine.dialect.name == "postgresql":
            # After a poll that found nothing, one statement outside any transaction says whether anything
            # waits (an idle feeder's poll: one round trip, not a transaction of five).
            if self._idle and not self._pending_pg():
                return 0
            with self.engine.begin() as conn:
                state = audit_store.stream_state(conn, lock=True)
                if state is None:  # another feeder holds the position
                    return 0
                leaves = audit_store.leaves_from(conn, state.next_seq, self.settings.stream_batch)
                streamed = leaves[-1][0] + 1 if leaves else state.next_seq
                checkpoints = (audit_store.checkpoints_between(conn, state.checkpoints_published, streamed)
                               if state.signed > state.checkpoints_published else [])
                self._publish(leaves, checkpoints)
                self._saved(conn, leaves, checkpoints, now)
                self._idle = not leaves and not checkpoints
                return len(leaves)
        with self.engine.connect() as conn:  # SQLite: one process; no write lock while publishing
            with read_only(conn).begin():
                leaves, checkpoints = self._pending(conn, audit_store.stream_position(conn))
        self._publish(leaves, checkpoints)
        with self.engine.begin() as conn:
            self._saved(conn, leaves, checkpoints, now)
        return len(leaves)

    def _pending_pg(self) -> bool:
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            raw.autocommit = True  # the statement is its only round trip: no BEGIN, no ROLLBACK
            try:
                state = audit_store.stream_state(conn)
            finally:
                if not raw.closed:
                    raw.autocommit = False
        return state is not None and state.pending

    def _pending(self, conn, position: int) -> tuple[list[tuple[int, str, str]], list[Checkpoint]]:
        """The next records, and the checkpoints not yet published that cover nothing beyond them."""
        leaves = audit_store.leaves_from(conn, position, self.settings.stream_batch)
        streamed = leaves[-1][0] + 1 if leaves else position
        return leaves, audit_store.checkpoints_between(conn, audit_store.checkpoints_published(conn), streamed)

    def _publish(self, leaves: list[tuple[int, str, str]], checkpoints: list[Checkpoint]) -> None:
        if leaves:
            self.publisher.publish(leaves)
        if checkpoints:
            self.publisher.publish_checkpoints(checkpoints)
            if self.checkpoint_file is not None:
                self.checkpoint_file.append(checkpoints)

    @staticmethod
    def _saved(conn, leaves: list[tuple[int, str, str]], checkpoints: list[Checkpoint], now: datetime) -> None:
        if leaves:
            audit_store.set_stream_position(conn, leaves[-1][0] + 1, now)
        if checkpoints:
            audit_store.set_checkpoints_published(conn, checkpoints[-1].tree_size, now)

    def run(self, stop: Stop) -> None:
        """Feed until ``stop`` is set; back off on broker or database errors (at most 2 s), never skip."""
        def step() -> float:
            return 0 if self.feed_once() >= self.settings.stream_batch else IDLE_POLL_S

        log.info("audit_stream.started", queue=self.settings.stream_queue)
        try:
            run_forever(step, stop=stop, event="audit_stream.publish_failed")
        finally:
            self.publisher.close()
            log.info("audit_stream.stopped")


def relay_loops(settings) -> list:
    """The privacy relay process's extra loop (``ServiceDefinition.relay_loops``)."""
    from upgestao_kernel.db import create_engine

    from ..settings import load_audit_settings

    feeder = StreamFeeder(create_engine(settings.database_url, pool_size=2), settings.amqp_uri,
                          load_audit_settings(settings, signing_key=False))
    return [feeder.run]
