"""The broker, as readiness sees it: can one AMQP connection be opened now?"""

from __future__ import annotations

from kombu import Connection


def check_broker(amqp_uri: str, timeout_s: float) -> None:
    """Open (and close) one AMQP connection: one attempt, so a refusing broker is down at once
    (kombu's ``connect()`` would retry after 2 s)."""
    with Connection(amqp_uri, connect_timeout=timeout_s) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0,
                                     timeout=timeout_s)
