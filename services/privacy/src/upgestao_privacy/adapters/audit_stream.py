"""The audit stream: every stored record, in seq order, on a RabbitMQ stream queue.

Compliance tools replay it from any point (``x-stream-offset``: ``first``,
``last``, ``next``, a numeric offset or a time). Retention is the queue's
``x-max-age`` and ``x-max-length-bytes``.

A message carries up to ``stream_records_per_message`` consecutive records
as JSON Lines (``application/x-ndjson``): each line is a record's leaf, the
canonical JSON with its ``seq``; headers ``first_seq``, ``last_seq`` and
``count`` say which. Each signed checkpoint follows the records it covers as
a message of its own (``application/json``, header ``kind: checkpoint`` and
its ``tree_size``): a copy of it outside the database, for as long as the
stream keeps it (``audit tail --checkpoints FILE`` keeps it for good).
(One message per record cost the publisher and the broker as much CPU as
the ingest itself; batching is what streams are built for.) Stream offsets
therefore count messages, not records. A record can appear twice after a
crash between the broker's confirm and the saved position: readers skip a
seq they have seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO

import amqp
from kombu import Connection
from upgestao_kernel.consumers.publishing import ConfirmedPublisher

from ..domain.checkpoints import Checkpoint, checkpoint_line
from ..settings import AuditSettings

NDJSON = "application/x-ndjson"
CHECKPOINT_KIND = "checkpoint"  # the ``kind`` header of a checkpoint's message


def stream_arguments(settings: AuditSettings) -> dict:
    return {"x-queue-type": "stream", "x-max-age": settings.stream_max_age,
            "x-max-length-bytes": settings.stream_max_bytes}


def declare_stream(channel, settings: AuditSettings) -> None:
    channel.queue_declare(settings.stream_queue, durable=True, auto_delete=False,
                          arguments=stream_arguments(settings))


class StreamPublisher:
    """Publishes stored records to the stream as JSON Lines messages, confirmed
    (the kernel's :class:`~upgestao_kernel.consumers.publishing.ConfirmedPublisher`)."""

    def __init__(self, amqp_uri: str, settings: AuditSettings, confirm_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self._publisher = ConfirmedPublisher(amqp_uri, settings.stream_queue,
                                             declare=lambda channel: declare_stream(channel, settings),
                                             confirm_timeout_s=confirm_timeout_s)

    def publish(self, leaves: Sequence[tuple[int, str, str]]) -> None:
        """Publish ``(seq, audit_id, leaf)``s, consecutive, in messages of up to
        ``stream_records_per_message``; returns once the broker confirmed all, else raises."""
        per_message = self.settings.stream_records_per_message
        messages = []
        for start in range(0, len(leaves), per_message):
            chunk = leaves[start : start + per_message]
            first, last = chunk[0][0], chunk[-1][0]
            body = "".join(f"{leaf}\n" for _, _, leaf in chunk).encode("utf-8")
            messages.append(amqp.Message(body, content_type=NDJSON, content_encoding="utf-8", delivery_mode=2,
                                         message_id=f"audit-{first}-{last}",
                                         application_headers={"first_seq": first, "last_seq": last,
                                                              "count": len(chunk)}))
        self._publisher.publish(messages)

    def publish_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Publish signed checkpoints, one message each; returns once the broker confirmed all, else raises."""
        self._publisher.publish([
            amqp.Message(checkpoint_line(checkpoint).encode("ascii"), content_type="application/json",
                         content_encoding="utf-8", delivery_mode=2,
                         message_id=f"audit-checkpoint-{checkpoint.tree_size}",
                         application_headers={"kind": CHECKPOINT_KIND, "tree_size": checkpoint.tree_size})
            for checkpoint in checkpoints])

    def close(self) -> None:
        self._publisher.close()


def parse_offset(text: str) -> str | int | datetime:
    """``first``, ``last``, ``next``, a numeric offset, or an ISO-8601 time (with zone)."""
    if text in ("first", "last", "next"):
        return text
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--from: expected first, last, next, an offset or an ISO-8601 time, got {text!r}") from None
    if when.tzinfo is None:
        raise ValueError("--from: an ISO-8601 time needs a time zone (e.g. 2026-11-29T10:00:00Z)")
    return when


def tail(amqp_uri: str, settings: AuditSettings, offset: str | int | datetime, out: IO[str], *,
         follow: bool = False, idle_timeout_s: float = 2.0, limit: int | None = None,
         stop: Callable[[], bool] = lambda: False, checkpoints: IO[str] | None = None) -> int:
    """Print the stream from ``offset`` (a message's) as JSON Lines, one record a line;
    returns how many records were printed. The checkpoints on it are written to ``checkpoints``
    (one JSON line each: a checkpoint file for ``audit verify --against``), else skipped.

    Without ``follow`` it stops once no record arrived for ``idle_timeout_s``
    (the stream is drained); with it, it waits for new records until ``stop()``.
    """
    printed = 0
    with Connection(amqp_uri) as conn:
        conn.connect()
        channel = conn.channel()
        declare_stream(channel, settings)
        channel.basic_qos(0, 500, False)  # a stream consumer must set a prefetch

        def on_message(message) -> None:
            nonlocal printed
            body = message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body
            if (message.properties.get("application_headers") or {}).get("kind") == CHECKPOINT_KIND:
                if checkpoints is not None:
                    checkpoints.write(body.strip() + "\n")
                    checkpoints.flush()
                channel.basic_ack(message.delivery_tag)
                return
            for line in body.splitlines():
                if limit is not None and printed >= limit:
                    break
                out.write(line + "\n")
                printed += 1
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(settings.stream_queue, callback=on_message, no_ack=False,
                              arguments={"x-stream-offset": offset})
        last = time.monotonic()
        while not stop() and (limit is None or printed < limit):
            before = printed
            try:
                conn.drain_events(timeout=0.25)
            except TimeoutError:
                pass
            if printed != before:
                last = time.monotonic()
            elif not follow and time.monotonic() - last >= idle_timeout_s:
                break
        out.flush()
    return printed
