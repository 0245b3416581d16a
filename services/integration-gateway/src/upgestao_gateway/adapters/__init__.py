"""The gateway talking to other processes.

* :mod:`.rpc` — RPC with a deadline and idempotency keys (the routes' ``self.rpc``);
* :mod:`.identity` — identity's keys and role map, fetched outside any worker;
* :mod:`.broker` — can the broker be reached (readiness).

The access-events stream (a RabbitMQ stream consumer) is :mod:`upgestao_gateway.access.stream`.
No adapter imports nameko: the calls go out through what the entrypoints give them (nameko's method
proxy for :mod:`.rpc`, its standalone proxy for :mod:`.identity`; see
:mod:`upgestao_gateway.entrypoints.nameko_rpc` and :mod:`upgestao_gateway.entrypoints.dependencies`).
"""
