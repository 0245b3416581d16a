"""How the world reaches the gateway: HTTP routes, per downstream service, and its nameko dependencies.

* :mod:`.http` — the HTTP core: server, routing, guards, streaming, responses, problems, OpenAPI;
* :mod:`.operations`, :mod:`.identity`, :mod:`.audit` — the routes (and their schemas) of the gateway
  itself, of identity and of privacy's audit log, each a mixin of the service class;
* :mod:`.dependencies` — the nameko dependency providers (access control, RPC);
  :mod:`.nameko_rpc` — nameko's RPC as the routes' calls go out.
"""
