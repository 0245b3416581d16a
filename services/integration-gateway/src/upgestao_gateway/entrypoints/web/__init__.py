"""The privacy centre in the browser, served under ``/app/`` (issue 17).

* :mod:`.pages` — the static front end (``upgestao_gateway/web/static``): ``/app/static/<file>`` with its
  content type and an ETag, every other page path answered ``index.html`` (the router is client-side);
* :mod:`.headers` — the security headers of every ``/app`` answer (CSP without ``unsafe-inline``, ...);
* :mod:`.session` — the web session: ``/app/session`` routes setting HttpOnly cookies, and the CSRF
  check of every cookie-authenticated state change (:mod:`upgestao_gateway.access.web_session`).
"""
