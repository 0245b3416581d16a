"""The integrations service's own settings, from the environment, validated at start (``check-config``).

Each bad value stops the start with a ``ConfigError`` naming its variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from upgestao_kernel.config import ConfigError, Settings
from upgestao_kernel.config import float_setting as _float
from upgestao_kernel.config import int_setting as _int
from upgestao_kernel.keys import decode_key, local_key_file

ALLOWED_NETWORKS_VAR = "UPGESTAO_WEBHOOK_ALLOWED_NETWORKS"
SECRETS_KEY_VAR = "INTEGRATIONS_SECRETS_KEY"
RETRY_DELAYS_VAR = "INTEGRATIONS_RETRY_DELAYS_S"
# Standard Webhooks' schedule (Svix's): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
STANDARD_RETRY_DELAYS_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
PER_ENDPOINT_IN_FLIGHT = 8  # POSTs to one endpoint at once (per process)
CLAIMED_PER_ENDPOINT = 64  # messages of one endpoint claimed at once (per process), POSTed 8 at a time
OWNERS_TIMEOUT_S = 15.0  # each owner's RPC (identity.share_subjects, messaging.share_messages)


@dataclass(frozen=True)
class IntegrationsSettings:
    production: bool
    allowed_networks: str  # CIDRs, comma- or space-separated (validated here, parsed by the sender)
    secrets_key: bytes  # AES-256-GCM key sealing the signing secrets
    timeout_s: float = 15.0
    concurrency: int = 32
    retry_delays_s: tuple[float, ...] = STANDARD_RETRY_DELAYS_S
    disable_after_s: float = 5 * 86_400.0
    failure_spread_s: float = 12 * 3_600.0
    secret_overlap_s: float = 86_400.0
    poll_s: float = 0.5
    batch: int = 100
    events_batch: int = 200  # events in (another service's) taken and handled in one transaction
    per_endpoint: int = PER_ENDPOINT_IN_FLIGHT
    claimed_per_endpoint: int = CLAIMED_PER_ENDPOINT
    owners_timeout_s: float = OWNERS_TIMEOUT_S

    @property
    def rounds(self) -> int:
        """Waves of POSTs a claimed message may wait through: its endpoint's claimed messages go ``per_endpoint``
        at a time, and a process claims no more in all than ``concurrency x rounds`` (POSTed ``concurrency`` at a
        time)."""
        return max(1, math.ceil(self.claimed_per_endpoint / self.per_endpoint))

    @property
    def refill(self) -> int:
        """An endpoint with messages claimed is claimed again once this many of its claims are free: half of
        ``claimed_per_endpoint`` (at least a wave of ``per_endpoint`` POSTs). Its POSTs never wait for claims
        (half are still claimed and ready), and a claim, its owners' calls and its record each take 32 messages
        at a time, not 8: the costs of a transaction and of two RPCs (and of their audit records at the
        owners) are shared by four times as many deliveries."""
        return min(self.claimed_per_endpoint, max(self.per_endpoint, self.claimed_per_endpoint // 2))

    @property
    def stale_after_s(self) -> float:
        """A claim older than this was left by a process that died: a live one's claim ends within the owners'
        answers (two RPCs) and at most ``2 x rounds`` POST timeouts (waiting for a POST slot of the process,
        then for one of its endpoint), plus its recording: within this window."""
        return self.timeout_s * 2 * self.rounds + 2 * self.owners_timeout_s + 30.0


def _networks(raw: str) -> str:
    """Validated by the sender's own parser (the same one the dispatcher uses)."""
    from .domain.network import AllowedNetworks

    try:
        AllowedNetworks.parse(raw)
    except ValueError as exc:
        raise ConfigError(ALLOWED_NETWORKS_VAR, str(exc).removeprefix(f"{ALLOWED_NETWORKS_VAR}: ")) from None
    return raw.strip()


def _delays(raw: str) -> tuple[float, ...]:
    delays: list[float] = []
    for item in raw.split(","):
        try:
            value = float(item.strip())
        except ValueError:
            raise ConfigError(RETRY_DELAYS_VAR, "expected comma-separated seconds: 0,5,300") from None
        if not 0 <= value <= 7 * 86_400:
            raise ConfigError(RETRY_DELAYS_VAR, "each delay must be 0 to 604800 seconds")
        delays.append(value)
    if not delays:
        raise ConfigError(RETRY_DELAYS_VAR, "at least one delay")
    return tuple(delays)


def load_integrations_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> IntegrationsSettings:
    env = os.environ if environ is None else environ
    raw_key = (env.get(SECRETS_KEY_VAR) or "").strip()
    if raw_key:
        key = decode_key(SECRETS_KEY_VAR, raw_key)
    elif settings.production:
        raise ConfigError(SECRETS_KEY_VAR, "required in production: base64 of 32 random bytes")
    else:
        key = local_key_file(settings, SECRETS_KEY_VAR, "integrations-secrets.key")
    raw_delays = (env.get(RETRY_DELAYS_VAR) or "").strip()
    return IntegrationsSettings(
        production=settings.production,
        allowed_networks=_networks(env.get(ALLOWED_NETWORKS_VAR) or ""),
        secrets_key=key,
        timeout_s=_float(env, "INTEGRATIONS_TIMEOUT_S", 15.0, 0.1, 60.0),
        concurrency=_int(env, "INTEGRATIONS_CONCURRENCY", 32, 1, 1024),
        retry_delays_s=_delays(raw_delays) if raw_delays else STANDARD_RETRY_DELAYS_S,
        disable_after_s=_float(env, "INTEGRATIONS_DISABLE_AFTER_S", 5 * 86_400.0, 1.0, 90 * 86_400.0),
        failure_spread_s=_float(env, "INTEGRATIONS_FAILURE_SPREAD_S", 12 * 3_600.0, 0.0, 90 * 86_400.0),
        secret_overlap_s=_float(env, "INTEGRATIONS_SECRET_OVERLAP_S", 86_400.0, 0.0, 30 * 86_400.0),
        poll_s=_float(env, "INTEGRATIONS_POLL_S", 0.5, 0.01, 60.0),
        batch=_int(env, "INTEGRATIONS_BATCH", 100, 1, 200),
        events_batch=_int(env, "INTEGRATIONS_EVENTS_BATCH", 200, 1, 1000),
        claimed_per_endpoint=_int(env, "INTEGRATIONS_CLAIMED_PER_ENDPOINT", CLAIMED_PER_ENDPOINT, 1, 200),
    )


def check_config(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Everything ``run`` validates: the allowed networks, the secrets key, timeouts, the retry schedule."""
    load_integrations_settings(settings, environ)
