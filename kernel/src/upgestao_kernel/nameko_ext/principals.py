"""Who is asking a service, from proof only.

Two facts make a request's context, and neither is a header its sender wrote:

* **the end user** — the ``access_token`` identity signed, sent on by the gateway with every call a request
  makes, verified here with identity's public keys (:mod:`upgestao_kernel.access_tokens`). No token, or
  one that does not verify: nobody (the call is anonymous). The headers ``actor_id``/``actor_role`` travel
  for logs and are ignored.
* **the calling service** — the AMQP ``user_id`` of the request, which RabbitMQ checked against the
  sender's broker user (:mod:`upgestao_kernel.broker_identity`). ``system`` (work no person asked for) is
  only ever in-process: a relay, a start-up task, a CLI command, an event handler of the service itself.
  Over RPC a service is its own name (``RequestContext.caller_service``) and each method says which
  services it serves.

An entrypoint that builds its context in this process from what it verified itself (the gateway's HTTP
routes) says so with ``trusted_context = True``; any entrypoint fed by the broker is never trusted.

Identity's public keys are pinned by ``UPGESTAO_IDENTITY_JWKS`` (the JWKS document, or the path of a file
holding it): required in production, so no consumer of ``rpc-identity`` could ever hand a service keys of
its own. Outside production, without the pin, they are fetched from identity (``identity.public_keys``)
at first need and cached; only identity's broker user may consume ``rpc-identity``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..access_tokens import SYSTEM_ROLE as SYSTEM
from ..access_tokens import AccessClaims, InvalidAccessToken, TokenVerifier
from ..broker_identity import service_of_user
from ..config import Settings
from ..context import RequestContext
from ..events import new_id
from ..jwks import JWKS_VAR, pinned_jwks  # noqa: F401  (JWKS_VAR: named here for readers)
from ..logging import get_logger
from ..public_keys import KeysUnavailable, PublicKeys

log = get_logger(__name__)

ACCESS_TOKEN = "access_token"
CALLER_SERVICE = "caller_service"
# what a sender may not say about itself: the receiving entrypoint writes it from the message
RESERVED_HEADERS = (CALLER_SERVICE,)


def pinned_keys(settings: Settings, environ: Mapping[str, str]) -> dict[str, Ed25519PublicKey] | None:
    """Identity's public keys from ``UPGESTAO_IDENTITY_JWKS`` (see :func:`pinned_jwks`)."""
    return pinned_jwks(environ, production=settings.production)


class Principals:
    """A service's verifier of access tokens: its own keys (identity's signing keys), the pinned keys, or
    (outside production, unpinned) identity's keys fetched once and cached."""

    def __init__(self, pinned: Mapping[str, Ed25519PublicKey] | None,
                 fetch: Callable[[], Any] | None = None) -> None:
        self._own: dict[str, Ed25519PublicKey] = {}
        self._pinned = dict(pinned) if pinned is not None else None
        self._fetched = PublicKeys(fetch=fetch) if pinned is None and fetch is not None else None
        self.verifier = TokenVerifier(self.key_for)

    def trust(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        """Keys of this service's own (identity verifies what it signed without asking anyone)."""
        self._own.update(keys)

    def key_for(self, kid: str) -> Ed25519PublicKey | None:
        if kid in self._own:
            return self._own[kid]
        if self._pinned is not None:
            return self._pinned.get(kid)
        if self._fetched is not None and not self._own:
            return self._fetched.key_for(kid)
        return None

    def claims(self, token: Any) -> AccessClaims | None:
        """The claims of a token that verifies; ``None`` for no token, a bad one, or keys not to be had."""
        if not token:
            return None
        try:
            return self.verifier.verify(str(token))
        except InvalidAccessToken as exc:
            log.info("principal.token_refused", reason=exc.reason)
        except KeysUnavailable:
            log.warning("principal.keys_unavailable")
        return None


def caller_service(message) -> str | None:
    """The service whose broker user published ``message`` (RabbitMQ checked ``user_id``), or ``None``."""
    properties = getattr(message, "properties", None) or {}
    return service_of_user(properties.get("user_id"))


def stamp_caller(context_data: dict, message) -> dict:
    """``context_data`` unpacked from ``message``'s headers, with the caller written from the message
    itself: whatever the sender said in a reserved header is dropped first."""
    for key in RESERVED_HEADERS:
        context_data.pop(key, None)
    caller = caller_service(message)
    if caller is not None:
        context_data[CALLER_SERVICE] = caller
    return context_data


def request_context(worker_ctx, principals: Principals | None) -> RequestContext:
    """The worker's request context, made once per worker: from the in-process data of a trusted
    entrypoint, else from proof (the verified token, the broker user). A request id is minted once if none
    came in, and stored in the context data so it travels on with outgoing calls."""
    made = getattr(worker_ctx, "upgestao_context", None)
    if made is not None:
        return made
    data = worker_ctx.context_data
    if not data.get("request_id"):
        data["request_id"] = new_id()
    entrypoint = worker_ctx.entrypoint
    if getattr(entrypoint, "trusted_context", False):
        context = RequestContext.from_context_data(data)
    elif getattr(entrypoint, "acts_as_system", False):  # the service's own work because of a fact it heard
        context = RequestContext.from_proof(data, None, data.get(CALLER_SERVICE))
        context = replace(context, actor_id=SYSTEM, actor_role=SYSTEM)
    else:
        claims = principals.claims(data.get(ACCESS_TOKEN)) if principals is not None else None
        context = RequestContext.from_proof(data, claims, data.get(CALLER_SERVICE))
    data["request_id"] = context.request_id  # a malformed one is not sent on either
    worker_ctx.upgestao_context = context
    return context
