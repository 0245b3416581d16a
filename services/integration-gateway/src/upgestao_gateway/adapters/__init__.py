"""The gateway talking to other processes.

* :mod:`.rpc` — RPC with a deadline and idempotency keys (the routes' ``self.rpc``);
* :mod:`.identity` — identity's keys and role map, fetched outside any worker;
* :mod:`.broker` — can the broker be reached (readiness).

The access-events stream (a RabbitMQ stream consumer) is :mod:`upgestao_gateway.access.stream`.
nameko is imported here only where the adapter *is* nameko's protocol: :mod:`.rpc` (its method proxy
and reply listener) and :mod:`.identity` (its standalone RPC proxy).
"""
