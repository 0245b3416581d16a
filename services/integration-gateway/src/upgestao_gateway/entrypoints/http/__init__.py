"""The gateway's HTTP core, shared by every route.

* :mod:`.server` — the WSGI server and protocol (eventlet's own 400/414/431/505 as problem+json);
* :mod:`.routing` — the :func:`~.routing.route` decorator and the ``GatewayRoute`` entrypoint;
* :mod:`.spec` — what a route declares (``RouteSpec``), checked at import;
* :mod:`.request` — the request as routes see it (request id, principal, route);
* :mod:`.guards` — authentication, permission (audited), idempotency key, body and query loading;
* :mod:`.streaming` — streamed answers; :mod:`.responses` — JSON and problem answers;
* :mod:`.problems` — problem types (RFC 9457); :mod:`.bodies` — non-JSON bodies;
  :mod:`.schemas` — the shared schemas; :mod:`.openapi` — the document, generated from the routes.
"""
