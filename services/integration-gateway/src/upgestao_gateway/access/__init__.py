"""Authentication of the gateway: one home for it.

* :mod:`.authentication` — the ``authenticator`` slot every authenticated route goes through, and the
  bearer credential (RFC 6750) every authenticator reads;
* :mod:`.tokens` — identity's access tokens (JWT, EdDSA) verified locally, and the
  :class:`~.tokens.JwtAuthenticator` that turns one into a
  :class:`~upgestao_gateway.domain.principal.Principal`;
* :mod:`.stream` — the ``gateway.access-events`` RabbitMQ stream, from which every replica learns
  revoked sessions and role-permission changes; :mod:`.events` — what those events change.

What they rest on lives in the service's layers: the principal, the role map, the revocation list and
the JWKS format in :mod:`upgestao_gateway.domain`; the caches of identity's keys and role map in
:mod:`upgestao_gateway.service_layer`; identity's client in :mod:`upgestao_gateway.adapters.identity`;
the nameko extension holding it all per container in :mod:`upgestao_gateway.entrypoints.dependencies`.
"""
