"""The notifier's own settings, from the environment, validated at start (``check-config`` runs them)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from upgestao_kernel.config import ConfigError, Settings
from upgestao_kernel.config import float_setting as _float
from upgestao_kernel.config import int_setting as _int
from upgestao_kernel.keys import decode_key, local_key_file

from .domain.deliveries import RetryPolicy

SMTP_URL_VAR = "SMTP_URL"
LOCAL_SMTP_URL = "smtp://127.0.0.1:1025"  # the sink `make up` starts (python -m upgestao_notifier sink)
SUPPRESSION_KEY_VAR = "NOTIFIER_SUPPRESSION_KEY"
POLICY_DPO_CONTACT = "contato@virtux.com.br"  # the policy's contact for privacy questions (its last section)
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]{1,200}$")


@dataclass(frozen=True)
class NotifierSettings:
    smtp_url: str
    sender: str  # the From header: "UpGestão <no-reply@…>"
    message_id_domain: str
    public_url: str  # where the links in the messages point (the gateway's public address)
    dpo_contact: str
    suppression_key: bytes  # HMAC key of the suppression list's address hashes
    retry: RetryPolicy
    smtp_timeout_s: float = 10.0
    smtp_connections: int = 4  # SMTP connections kept open and reused, at most
    sweep_interval_s: float = 1.0  # how often due retries and interrupted claims are looked for
    stale_after_s: float = 120.0  # a claim older than this is a process that died inside SMTP
    accepted_lookup_dir: Path | None = None  # the local sink's directory: it says which Message-IDs it accepted
    batch: int = 100  # deliveries claimed per transaction, at most

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]


def load_notifier_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> NotifierSettings:
    env = os.environ if environ is None else environ
    from .adapters.smtp import parse_smtp_url

    smtp_url = (env.get(SMTP_URL_VAR) or "").strip()
    if not smtp_url:
        if settings.production:
            raise ConfigError(SMTP_URL_VAR, "required in production: smtp://, smtps:// or smtp+starttls:// with "
                                            "the server's user and password")
        smtp_url = LOCAL_SMTP_URL
    timeout = _float(env, "SMTP_TIMEOUT_S", 10.0, 0.1, 300.0)
    parse_smtp_url(smtp_url, timeout_s=timeout)  # a bad URL stops the start, naming SMTP_URL
    sender = (env.get("NOTIFIER_FROM") or "UpGestão <no-reply@upgestao.local>").strip()
    address = parseaddr(sender)[1]
    if "@" not in address or any(c in sender for c in "\r\n"):
        raise ConfigError("NOTIFIER_FROM", "expected an address, optionally with a name: "
                                           "'UpGestão <no-reply@example.com>'")
    domain = (env.get("NOTIFIER_MESSAGE_ID_DOMAIN") or address.rpartition("@")[2]).strip()
    if not _DOMAIN.match(domain):
        raise ConfigError("NOTIFIER_MESSAGE_ID_DOMAIN", "expected a domain name")
    public_url = (env.get("NOTIFIER_PUBLIC_URL") or "http://127.0.0.1:8000").strip().rstrip("/")
    if not public_url.startswith(("https://", "http://")):
        raise ConfigError("NOTIFIER_PUBLIC_URL", "expected an http(s) URL: the address people open the links at")
    if settings.production and not public_url.startswith("https://"):
        raise ConfigError("NOTIFIER_PUBLIC_URL", "must be https:// in production (reset links carry a token)")
    raw_key = (env.get(SUPPRESSION_KEY_VAR) or "").strip()
    if raw_key:
        key = decode_key(SUPPRESSION_KEY_VAR, raw_key)
    elif settings.production:
        raise ConfigError(SUPPRESSION_KEY_VAR, "required in production: base64 of 32 random bytes")
    else:
        key = local_key_file(settings, SUPPRESSION_KEY_VAR, "notifier-suppression.key")
    lookup = (env.get("NOTIFIER_ACCEPTED_LOOKUP_DIR") or "").strip()
    retry = RetryPolicy(base_s=_float(env, "NOTIFIER_RETRY_BASE_S", 300.0, 0.01, 86_400.0),
                        factor=_float(env, "NOTIFIER_RETRY_FACTOR", 1.3, 1.0, 10.0),
                        max_attempts=_int(env, "NOTIFIER_MAX_ATTEMPTS", 18, 1, 100))
    return NotifierSettings(
        smtp_url=smtp_url, sender=sender, message_id_domain=domain, public_url=public_url,
        dpo_contact=(env.get("NOTIFIER_DPO_CONTACT") or POLICY_DPO_CONTACT).strip(),
        suppression_key=key, retry=retry, smtp_timeout_s=timeout,
        smtp_connections=_int(env, "NOTIFIER_SMTP_CONNECTIONS", 4, 1, 64),
        sweep_interval_s=_float(env, "NOTIFIER_SWEEP_INTERVAL_S", 1.0, 0.05, 3600.0),
        stale_after_s=_float(env, "NOTIFIER_STALE_AFTER_S", max(120.0, 4 * timeout + 30), 1.0, 86_400.0),
        accepted_lookup_dir=Path(lookup).absolute() if lookup else None,
        batch=_int(env, "NOTIFIER_BATCH", 100, 1, 1000),
    )


def check_config(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Everything the notifier's ``run`` validates: SMTP_URL, the sender, the links' address, the
    suppression key, the retry schedule. Raises ``ConfigError``."""
    load_notifier_settings(settings, environ)
