"""Live push: the WebSocket ``GET /v1/stream`` (issue 13, "Live push").

How an event reaches a browser:

1. messaging's outbox relay publishes ``messaging.*`` events on ``messaging.events``; the push-relevant
   types are bound to the RabbitMQ *stream* ``gateway.push-events`` (:mod:`.stream`), read by every
   gateway replica from (now - the replay window) at start;
2. each event lands in a bounded in-memory :class:`~.ring.ReplayRing` under its stream offset, which is its
   *sequence id*: monotonic, the same on every replica and across restarts (a client may reconnect to
   another replica with the last id it saw);
3. the :class:`~.hub.PushHub`'s dispatcher calls ``messaging.push_view(items, viewers)`` once for the events
   that arrived together and the connected viewers (their verified access tokens): messaging decides who may
   see what (its one visibility rule), opens bodies and audits each content push per viewer; the gateway
   sends each socket only what messaging returned for it;
4. a reconnect with ``last_seq`` is served from the ring (through ``push_view`` again), or told ``resync``
   when it is older than the ring.

The WebSocket itself (:mod:`.connection`, :mod:`.protocol`): RFC 6455 through eventlet's implementation, the
token in the first message or in ``Sec-WebSocket-Protocol`` (never the URL), verified exactly as HTTP routes
verify it; bounded messages, an Origin allow-list, a per-user cap, and a close with 4001 when the token is
revoked or expires.
"""
