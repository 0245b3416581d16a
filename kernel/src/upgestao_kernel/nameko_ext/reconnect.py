"""Back on the broker within a second or two of its return.

nameko's queue consumer (every RPC, event handler and reply listener of a service) reconnects
through kombu's ``ensure_connection`` with kombu's default back-off: 2 s, then 4, 6, ... up to
30 s between attempts. After a 5-second broker restart, services came back 6 to 12 s after the
broker did (the chaos suite's recovery p50 was 14 s), and requests in that gap failed. Here the
attempts come every 0.25 s at first, growing to at most 2 s: a broker that stays down is asked
about once every 2 s per process (the cost of a TCP connect), a broker that returns is used within
about 2 s.

And stopped within a fraction of a second: the same consumer notices a request to stop (a consumer to
cancel) only between two ``drain_events`` calls, which kombu bounds by a 1 s ``safety_interval`` nameko
does not expose, so every service took about 2 s to stop (its entrypoints' consumers, then its reply
listener's), on every deploy and restart. Here the drain waits at most
:data:`CONSUMER_SAFETY_INTERVAL_S`; a message still wakes it at once, and an idle wake-up costs a
heartbeat check.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

from kombu.mixins import ConsumerMixin
from nameko.messaging import QueueConsumer

RECONNECT_BACKOFF = {"interval_start": 0.25, "interval_step": 0.5, "interval_max": 2.0}
CONSUMER_SAFETY_INTERVAL_S = 0.1


@contextmanager
def _establish_connection(self):
    with self.create_connection() as conn:
        conn.ensure_connection(self.on_connection_error, self.connect_max_retries, **RECONNECT_BACKOFF)
        # the connection consuming now, for the readiness probe (``upgestao_kernel.probes``): None while
        # the consumer has none (starting, or lost it and reconnecting)
        self.broker_connection = conn
        try:
            yield conn
        finally:
            self.broker_connection = None


def install_fast_reconnect() -> None:
    """Idempotent: nameko's queue consumer reconnects with :data:`RECONNECT_BACKOFF` and sees a stop
    within :data:`CONSUMER_SAFETY_INTERVAL_S`."""
    QueueConsumer.establish_connection = _establish_connection
    QueueConsumer.run = functools.partialmethod(ConsumerMixin.run, safety_interval=CONSUMER_SAFETY_INTERVAL_S)


install_fast_reconnect()
