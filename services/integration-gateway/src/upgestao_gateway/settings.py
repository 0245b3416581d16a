"""The gateway's own settings beyond the kernel's: its access control, from the environment.

    GATEWAY_ACCESS_EVENTS_MAX_AGE    retention of the access-events stream (default 2h)
    GATEWAY_ACCESS_EVENTS_MAX_BYTES  size bound of that stream (default 100 MB)
    UPGESTAO_IDENTITY_JWKS           identity's public keys, pinned (a JWKS document or a file holding one;
                                     required in production); when unset the keys come from identity

and its edge (:class:`EdgeSettings`, :func:`load_edge_settings`):

    GATEWAY_TRUSTED_PROXIES          networks (CIDR, comma-separated) whose X-Forwarded-For is believed
                                     (default: none; see :mod:`upgestao_gateway.domain.client_address`)
    GATEWAY_OPS_NETWORKS             networks whose direct requests see readiness details (default:
                                     loopback, 127.0.0.0/8 and ::1; empty: nobody)

and the rate limits per principal (:class:`RateLimitSettings`, :func:`load_rate_limit_settings`; per
gateway process, see :mod:`upgestao_gateway.domain.rate_limits`):

    GATEWAY_RATE_LIMIT_USER_PER_MIN  requests a minute of one signed-in user (default 6000; 0: no limit)
    GATEWAY_RATE_LIMIT_KEY_PER_MIN   requests a minute of one API key (default 1200; 0: no limit)
    GATEWAY_RATE_LIMIT_BURST         requests one principal may send at once (default 1000)

and the web session of the privacy centre (:class:`WebSessionSettings`, :func:`load_web_session_settings`;
see :mod:`upgestao_gateway.access.web_session`):

    UPGESTAO_WEB_SESSION_KEY         the key the CSRF tokens of web sessions are derived under (at least 32
                                     characters, one value for every gateway replica; required in
                                     production). Unset outside production: a random key kept in
                                     ``<UPGESTAO_DATA_DIR>/web-session.key`` (made by the first gateway
                                     process, read by the others of the same platform)
    IDENTITY_REFRESH_TOKEN_TTL_S     identity's refresh-token lifetime (read, not owned, here: the
                                     refresh cookie's Max-Age; default 14 days)

Each is validated once, at start; a wrong value is a ``ConfigError`` naming it.

There is one token lifetime to think of, not two: a revoked session is remembered for the longest
lifetime identity may ever be configured to issue (:data:`upgestao_kernel.limits.MAX_ACCESS_TOKEN_TTL_S`)
plus a margin, whatever identity's current ``IDENTITY_ACCESS_TOKEN_TTL_S``. A gateway setting of its own
(``GATEWAY_ACCESS_TOKEN_TTL_S``, gone) could be shorter than identity's, and a revoked token was accepted
again once the gateway forgot it (issue 11, finding 10); an old deployment still setting it is refused at
start rather than silently ignored.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from upgestao_kernel.config import ConfigError
from upgestao_kernel.config import int_setting as _int
from upgestao_kernel.jwks import JWKS_VAR, pinned_jwks
from upgestao_kernel.limits import MAX_ACCESS_TOKEN_TTL_S

from .domain.client_address import InvalidNetworks, Network, parse_networks
from .domain.rate_limits import Quota

REMOVED_TOKEN_TTL_VAR = "GATEWAY_ACCESS_TOKEN_TTL_S"  # gone: the lifetime is identity's maximum
MAX_AGE_VAR = "GATEWAY_ACCESS_EVENTS_MAX_AGE"
MAX_BYTES_VAR = "GATEWAY_ACCESS_EVENTS_MAX_BYTES"
PUBLIC_KEYS_VAR = JWKS_VAR  # UPGESTAO_IDENTITY_JWKS, read by every service that verifies tokens
RENAMED_KEYS_VAR = "GATEWAY_JWT_PUBLIC_KEYS"
TRUSTED_PROXIES_VAR = "GATEWAY_TRUSTED_PROXIES"
OPS_NETWORKS_VAR = "GATEWAY_OPS_NETWORKS"
DEFAULT_OPS_NETWORKS = "127.0.0.0/8,::1/128"

DEFAULT_MAX_AGE = "2h"
DEFAULT_MAX_BYTES = 100_000_000
# A token is accepted up to LEEWAY_S after its exp; a revocation is kept
# RETENTION_MARGIN_S beyond the longest token lifetime (leeway plus clock skew).
LEEWAY_S = 30
RETENTION_MARGIN_S = 60
REVOCATION_RETENTION_S = MAX_ACCESS_TOKEN_TTL_S + RETENTION_MARGIN_S

# RabbitMQ's x-max-age units (Y and M as RabbitMQ counts them: 365 and 30 days).
_AGE = re.compile(r"^(?P<n>[1-9][0-9]{0,6})(?P<unit>[YMDhms])$")
_UNIT_S = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class AccessSettings:
    events_max_age: str = DEFAULT_MAX_AGE
    events_max_bytes: int = DEFAULT_MAX_BYTES
    static_keys: Mapping[str, Ed25519PublicKey] | None = field(default=None, repr=False)

    @property
    def revocation_retention_s(self) -> int:
        """How long a revoked session is remembered (and how far back the stream is replayed): the
        longest token lifetime identity may issue, plus the margin."""
        return REVOCATION_RETENTION_S


def max_age_seconds(value: str) -> int:
    match = _AGE.match(value)
    if match is None:
        raise ValueError(value)
    return int(match["n"]) * _UNIT_S[match["unit"]]


def load_access_settings(environ: Mapping[str, str] | None = None) -> AccessSettings:
    environ = os.environ if environ is None else environ
    if environ.get(REMOVED_TOKEN_TTL_VAR):
        raise ConfigError(REMOVED_TOKEN_TTL_VAR, "is no longer read: revoked sessions are kept for the longest "
                                                 f"lifetime identity may issue ({MAX_ACCESS_TOKEN_TTL_S}s) + "
                                                 f"{RETENTION_MARGIN_S}s; remove it")
    max_bytes = _int(environ, MAX_BYTES_VAR, DEFAULT_MAX_BYTES, 1_000_000, 100_000_000_000)

    max_age = environ.get(MAX_AGE_VAR) or DEFAULT_MAX_AGE
    try:
        age_s = max_age_seconds(max_age)
    except ValueError:
        problem = f"expected a number and a unit (Y, M, D, h, m, s) such as 1h, got {max_age!r}"
        raise ConfigError(MAX_AGE_VAR, problem) from None
    if age_s < REVOCATION_RETENTION_S:
        raise ConfigError(MAX_AGE_VAR, f"must keep at least the longest token lifetime plus {RETENTION_MARGIN_S}s "
                                       f"({REVOCATION_RETENTION_S}s), got {max_age} ({age_s}s)")

    if environ.get(RENAMED_KEYS_VAR):
        raise ConfigError(RENAMED_KEYS_VAR, f"renamed {PUBLIC_KEYS_VAR} (one pin of identity's keys for every "
                                            "service): set that instead")
    # pinned (required in production: no consumer of rpc-identity can hand the gateway keys of its own),
    # else fetched from identity.public_keys() at first need
    static_keys = pinned_jwks(environ, production=environ.get("UPGESTAO_ENV") == "production")
    return AccessSettings(max_age, max_bytes, static_keys)


@dataclass(frozen=True)
class EdgeSettings:
    """Who the gateway believes about a client's address, and who may see readiness details.

    ``trusted_proxies``: the peers whose ``X-Forwarded-For`` is walked for the client's address (none by
    default: without a proxy in front, the peer is the client, and a header anyone can write means
    nothing). Name the ingress's networks here, and a sidecar proxy's if the pod has one.

    ``ops_networks``: a request whose TCP peer is in one of them, and is not a trusted proxy (a request an
    ingress relays is a public one, whatever it says), gets readiness details on ``/readyz``: each
    dependency and the depth of the broker's ``upgestao.unrouted`` queue. By default loopback only (an
    operator's ``kubectl exec``/``port-forward``, a local ``curl``); everyone else gets ready / not ready.
    """

    trusted_proxies: tuple[Network, ...] = ()
    ops_networks: tuple[Network, ...] = field(default_factory=lambda: parse_networks(DEFAULT_OPS_NETWORKS))


def _networks(environ: Mapping[str, str], variable: str, default: str) -> tuple[Network, ...]:
    raw = environ.get(variable)
    try:
        return parse_networks(default if raw is None else raw)
    except InvalidNetworks as exc:
        raise ConfigError(variable, str(exc)) from None


def load_edge_settings(environ: Mapping[str, str] | None = None) -> EdgeSettings:
    environ = os.environ if environ is None else environ
    return EdgeSettings(_networks(environ, TRUSTED_PROXIES_VAR, ""),
                        _networks(environ, OPS_NETWORKS_VAR, DEFAULT_OPS_NETWORKS))


RATE_LIMIT_USER_VAR = "GATEWAY_RATE_LIMIT_USER_PER_MIN"
RATE_LIMIT_KEY_VAR = "GATEWAY_RATE_LIMIT_KEY_PER_MIN"
RATE_LIMIT_BURST_VAR = "GATEWAY_RATE_LIMIT_BURST"
# generous: the fuzz run and the end-to-end tests (thousands of requests as one user) stay far below;
# the benchmarks, which measure the gateway flat out as one user, turn it off
DEFAULT_USER_PER_MIN = 6000
DEFAULT_KEY_PER_MIN = 1200
DEFAULT_BURST = 1000
MAX_PER_MIN = 10_000_000
MAX_BURST = 1_000_000


@dataclass(frozen=True)
class RateLimitSettings:
    """The quota of each kind of principal; ``None``: that kind is not limited."""

    user: Quota | None = Quota(DEFAULT_USER_PER_MIN, DEFAULT_BURST)
    api_key: Quota | None = Quota(DEFAULT_KEY_PER_MIN, DEFAULT_BURST)


def load_rate_limit_settings(environ: Mapping[str, str] | None = None) -> RateLimitSettings:
    environ = os.environ if environ is None else environ
    user = _int(environ, RATE_LIMIT_USER_VAR, DEFAULT_USER_PER_MIN, 0, MAX_PER_MIN)
    key = _int(environ, RATE_LIMIT_KEY_VAR, DEFAULT_KEY_PER_MIN, 0, MAX_PER_MIN)
    burst = _int(environ, RATE_LIMIT_BURST_VAR, DEFAULT_BURST, 1, MAX_BURST)
    return RateLimitSettings(Quota(user, burst) if user else None, Quota(key, burst) if key else None)


WEB_SESSION_KEY_VAR = "UPGESTAO_WEB_SESSION_KEY"
WEB_SESSION_KEY_FILE = "web-session.key"
WEB_SESSION_KEY_MIN = 32  # characters
REFRESH_TTL_VAR = "IDENTITY_REFRESH_TOKEN_TTL_S"  # identity's; the same environment reaches every process
DEFAULT_REFRESH_TTL_S = 14 * 24 * 3600


@dataclass(frozen=True)
class WebSessionSettings:
    """The web session's CSRF key (empty when only checked: ``check-config`` makes no file) and the
    refresh cookie's lifetime."""

    key: bytes = field(default=b"", repr=False)
    refresh_max_age_s: int = DEFAULT_REFRESH_TTL_S


def load_web_session_settings(environ: Mapping[str, str] | None = None, *, make_key: bool = True) -> WebSessionSettings:
    """The web session's settings; ``make_key=False`` validates without reading or making the local key file."""
    environ = os.environ if environ is None else environ
    refresh_ttl = _int(environ, REFRESH_TTL_VAR, DEFAULT_REFRESH_TTL_S, 60, 90 * 24 * 3600)
    raw = environ.get(WEB_SESSION_KEY_VAR) or ""
    if raw:
        if len(raw.strip()) < WEB_SESSION_KEY_MIN:
            raise ConfigError(WEB_SESSION_KEY_VAR, f"must be at least {WEB_SESSION_KEY_MIN} characters of a random "
                                                   "secret (e.g. `openssl rand -hex 32`)")
        return WebSessionSettings(raw.strip().encode("utf-8"), refresh_ttl)
    if (environ.get("UPGESTAO_ENV") or "local") == "production":
        raise ConfigError(WEB_SESSION_KEY_VAR, "required in production: one random secret of at least "
                                               f"{WEB_SESSION_KEY_MIN} characters shared by every gateway replica")
    if not make_key:
        return WebSessionSettings(b"", refresh_ttl)
    data_dir = Path(environ.get("UPGESTAO_DATA_DIR") or "var").resolve()
    try:
        key = local_web_session_key(data_dir)
    except OSError as exc:
        raise ConfigError(WEB_SESSION_KEY_VAR, f"unset, and no local key could be kept in {data_dir}: "
                                               f"{exc.strerror or exc}") from None
    return WebSessionSettings(key, refresh_ttl)


def local_web_session_key(data_dir: Path) -> bytes:
    """The key in ``<data_dir>/web-session.key``, made (random, readable by its owner only) when missing: every
    gateway process of one local platform shares the data directory, hence the key. Made whole or not at
    all (written aside, then linked into place), so a concurrent start never reads half of it."""
    path = data_dir / WEB_SESSION_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        aside = data_dir / f".{WEB_SESSION_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            try:
                os.link(aside, path)
            except FileExistsError:  # another process made it first: theirs it is
                pass
        finally:
            aside.unlink(missing_ok=True)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < WEB_SESSION_KEY_MIN:
        raise OSError(f"{path} holds no key (delete it to make a new one)")
    return key.encode("ascii")
