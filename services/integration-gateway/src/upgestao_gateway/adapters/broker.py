"""The broker, as readiness sees it: can one AMQP connection be opened now, and how deep is the
catch-all queue of messages nobody consumes?"""

from __future__ import annotations

from amqp.exceptions import AMQPError
from kombu import Connection
from upgestao_kernel.topology import UNROUTED


def check_broker(amqp_uri: str, timeout_s: float) -> int | None:
    """Open (and close) one AMQP connection: one attempt, so a refusing broker is down at once
    (kombu's ``connect()`` would retry after 2 s). Returns the number of messages waiting in
    ``upgestao.unrouted`` (a passive declare: nothing is created), or None when it cannot be had (the
    queue does not exist yet, or this broker user may not look at it): the broker is up all the same."""
    with Connection(amqp_uri, connect_timeout=timeout_s) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0,
                                     timeout=timeout_s)
        channel = connection.channel()
        try:
            _, message_count, _ = channel.queue_declare(queue=UNROUTED, passive=True)
            return int(message_count)
        except AMQPError:  # 404 not found, 403 access refused: the channel is closed, the connection is fine
            return None
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001 (already closed by the broker's refusal)
                pass
