"""nameko's consumers reconnect to a returning broker within about 2 s (kombu's default back-off,
2, 4, 6 ... s, kept services away from it for 6 to 12 s after a 5-second restart)."""

from __future__ import annotations

from types import SimpleNamespace

import upgestao_kernel.nameko_ext  # noqa: F401  (installs the back-off)
from kombu import Connection
from nameko.messaging import QueueConsumer
from upgestao_kernel.nameko_ext.reconnect import RECONNECT_BACKOFF


def test_the_queue_consumer_reconnects_with_the_short_backoff(monkeypatch):
    asked = {}

    def ensure_connection(self, errback=None, max_retries=None, **intervals):
        asked.update(intervals, errback=errback)
        return self

    monkeypatch.setattr(Connection, "ensure_connection", ensure_connection)
    consumer = SimpleNamespace(create_connection=lambda: Connection("memory://"), connect_max_retries=None,
                               on_connection_error=lambda exc, interval: None)
    with QueueConsumer.establish_connection(consumer) as conn:
        assert isinstance(conn, Connection)
    assert {k: asked[k] for k in RECONNECT_BACKOFF} == RECONNECT_BACKOFF
    assert asked["errback"] is consumer.on_connection_error

