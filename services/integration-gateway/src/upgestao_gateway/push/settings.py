"""The live push's settings, from the environment (validated once, at start; a wrong value is a
``ConfigError`` naming it):

    GATEWAY_STREAM_ORIGINS          origins a browser may open the stream from (comma-separated, such as
                                    ``https://app.example.com``); default: none but the gateway's own host
                                    (the ``Origin`` must name the ``Host`` the request was sent to)
    GATEWAY_STREAM_WINDOW_S         how long an event stays replayable after a reconnection (default 600)
    GATEWAY_STREAM_WINDOW_EVENTS    how many events stay replayable (default 10,000)
    GATEWAY_STREAM_MAX_PER_USER     open sockets per user (default 10: tabs and devices)
    GATEWAY_STREAM_MAX_CONNECTIONS  open sockets per gateway process (default 5,000)
    GATEWAY_STREAM_AUTH_TIMEOUT_S   time for an opened socket to authenticate (default 5)
    GATEWAY_STREAM_PING_S           server ping interval; a socket silent for 2.5 times that is closed (default 25)
    GATEWAY_STREAM_MESSAGE_TIMEOUT_S  time from a client message's first byte to its last (default 10): a client
                                    that stalls or trickles mid-message is closed (1008)
    GATEWAY_STREAM_EVENTS_MAX_AGE   retention of the ``gateway.push-events`` stream (default 1h; at least the window)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from upgestao_kernel.config import ConfigError, float_setting, int_setting

from ..settings import max_age_seconds

ORIGINS_VAR = "GATEWAY_STREAM_ORIGINS"
WINDOW_VAR = "GATEWAY_STREAM_WINDOW_S"
WINDOW_EVENTS_VAR = "GATEWAY_STREAM_WINDOW_EVENTS"
MAX_PER_USER_VAR = "GATEWAY_STREAM_MAX_PER_USER"
MAX_CONNECTIONS_VAR = "GATEWAY_STREAM_MAX_CONNECTIONS"
AUTH_TIMEOUT_VAR = "GATEWAY_STREAM_AUTH_TIMEOUT_S"
PING_VAR = "GATEWAY_STREAM_PING_S"
MESSAGE_TIMEOUT_VAR = "GATEWAY_STREAM_MESSAGE_TIMEOUT_S"
EVENTS_MAX_AGE_VAR = "GATEWAY_STREAM_EVENTS_MAX_AGE"

DEFAULT_EVENTS_MAX_AGE = "1h"
EVENTS_MAX_BYTES = 200_000_000  # ids and field names only: a few hundred bytes an event


@dataclass(frozen=True)
class PushSettings:
    origins: tuple[str, ...] = ()  # empty: the gateway's own host only
    window_s: float = 600.0
    window_events: int = 10_000
    max_per_user: int = 10
    max_connections: int = 5_000
    auth_timeout_s: float = 5.0
    ping_s: float = 25.0
    events_max_age: str = DEFAULT_EVENTS_MAX_AGE
    events_max_bytes: int = EVENTS_MAX_BYTES
    max_message_bytes: int = 16_384  # what a client sends: an auth message (a token is at most 8 KiB), a ping
    message_timeout_s: float = 10.0  # from a client message's first header to its last byte (a stall mid-message)
    outbox_messages: int = 2_000  # frames queued for one socket before it is closed as too slow
    sweep_s: float = 0.5  # how often open sockets' tokens are checked (revoked, expired)
    resume_ahead_wait_s: float = 1.0  # a last_seq beyond what this replica read: how long to wait for it

    @property
    def idle_timeout_s(self) -> float:
        """A socket that sent nothing (not even a pong) for this long is dead."""
        return self.ping_s * 2.5


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case, the default port dropped; ``None`` if it is not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def load_push_settings(environ: Mapping[str, str] | None = None) -> PushSettings:
    environ = os.environ if environ is None else environ
    origins = []
    for raw in (environ.get(ORIGINS_VAR) or "").split(","):
        if not raw.strip():
            continue
        origin = normalise_origin(raw)
        if origin is None:
            raise ConfigError(ORIGINS_VAR, f"expected origins such as https://app.example.com, got {raw.strip()!r}")
        origins.append(origin)
    window_s = float_setting(environ, WINDOW_VAR, 600.0, 10.0, 86_400.0)
    max_age = environ.get(EVENTS_MAX_AGE_VAR) or DEFAULT_EVENTS_MAX_AGE
    try:
        age_s = max_age_seconds(max_age)
    except ValueError:
        raise ConfigError(EVENTS_MAX_AGE_VAR, f"expected a number and a unit (Y, M, D, h, m, s) such as 1h, "
                                              f"got {max_age!r}") from None
    if age_s < window_s:
        raise ConfigError(EVENTS_MAX_AGE_VAR, f"must keep at least the replay window ({window_s:g}s), got {max_age}")
    return PushSettings(
        origins=tuple(origins),
        window_s=window_s,
        window_events=int_setting(environ, WINDOW_EVENTS_VAR, 10_000, 100, 1_000_000),
        max_per_user=int_setting(environ, MAX_PER_USER_VAR, 10, 1, 1_000),
        max_connections=int_setting(environ, MAX_CONNECTIONS_VAR, 5_000, 1, 100_000),
        auth_timeout_s=float_setting(environ, AUTH_TIMEOUT_VAR, 5.0, 0.1, 60.0),
        ping_s=float_setting(environ, PING_VAR, 25.0, 0.5, 300.0),
        message_timeout_s=float_setting(environ, MESSAGE_TIMEOUT_VAR, 10.0, 0.1, 60.0),
        events_max_age=max_age,
    )
