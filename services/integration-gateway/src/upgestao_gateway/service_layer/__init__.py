"""What the gateway does that is neither HTTP nor transport.

* :mod:`.readiness` — which dependencies answer now (the broker first);
* :mod:`.denials` — a refused request, audited through the gateway's unit of work;
* :mod:`.public_keys` / :mod:`.role_permissions` — the gateway's caches of identity's keys and role
  map, fetched at first need and refreshed (the fetching itself is :mod:`upgestao_gateway.adapters.identity`).
"""
