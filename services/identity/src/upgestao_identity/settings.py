"""The identity service's own settings, from the environment, validated at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from upgestao_kernel.config import ConfigError, Settings
from upgestao_kernel.config import int_setting as _int
from upgestao_kernel.limits import MAX_ACCESS_TOKEN_TTL_S

ADMIN_EMAIL_VAR = "UPGESTAO_ADMIN_EMAIL"
ADMIN_PASSWORD_VAR = "UPGESTAO_ADMIN_PASSWORD"
ADMIN_BIRTH_DATE_VAR = "UPGESTAO_ADMIN_BIRTH_DATE"
ADMIN_NAME_VAR = "UPGESTAO_ADMIN_NAME"


@dataclass(frozen=True)
class IdentitySettings:
    access_ttl_s: int = 900
    refresh_ttl_s: int = 14 * 24 * 3600
    bcrypt_cost: int = 12
    bcrypt_concurrency: int = 2  # hashes at once (default: the number of cores)
    bcrypt_max_waiting: int = 8  # queued beyond that: 503 at once (default: 2 per hashing slot)
    bcrypt_nice: int = 8  # CPU priority of the hashing threads (0: normal)
    lockout_threshold: int = 5  # login attempts of one account within the window before the first delay
    lockout_window_s: int = 900
    lockout_base_s: int = 60  # the first delay; doubles with every further attempt
    lockout_max_s: int = 3600
    ip_failure_limit: int = 50  # login attempts from one address within the window before the first delay
    reset_ttl_s: int = 3600
    reset_account_limit: int = 3  # reset requests for one account within the reset window before a delay
    reset_address_limit: int = 20  # reset requests from one address within the reset window before a delay
    reset_window_s: int = 3600
    photo_concurrency: int = 2  # photos decoded at once (off the hub); beyond that: 503 at once
    known_network_days: int = 90  # a login from a network not seen for a user this long is told to them
    minimum_age: int = 18
    admin_email: str | None = None
    admin_password: str | None = None
    admin_birth_date: str | None = None
    admin_name: str = "Administrator"


PRODUCTION_MAX_IP_FAILURES = 500


def load_identity_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> IdentitySettings:
    env = os.environ if environ is None else environ
    cost = _int(env, "IDENTITY_BCRYPT_COST", 12, 4, 16)
    if cost < 12 and settings.production:
        raise ConfigError("IDENTITY_BCRYPT_COST", "must be at least 12 in production (R1.2)")
    concurrency = _int(env, "IDENTITY_BCRYPT_CONCURRENCY", os.cpu_count() or 1, 1, 256)
    # Tests and fuzzers log in many times from one address; production may not open that hole.
    ip_failure_limit = _int(env, "IDENTITY_IP_FAILURE_LIMIT", 50, 1, 100000)
    if ip_failure_limit > PRODUCTION_MAX_IP_FAILURES and settings.production:
        raise ConfigError("IDENTITY_IP_FAILURE_LIMIT",
                          f"must be at most {PRODUCTION_MAX_IP_FAILURES} in production (brute-force limit)")
    email = (env.get(ADMIN_EMAIL_VAR) or "").strip() or None
    password = env.get(ADMIN_PASSWORD_VAR) or None
    birth_date = (env.get(ADMIN_BIRTH_DATE_VAR) or "").strip() or None
    given = {ADMIN_EMAIL_VAR: email, ADMIN_PASSWORD_VAR: password, ADMIN_BIRTH_DATE_VAR: birth_date}
    if any(given.values()) and not all(given.values()):
        missing = next(name for name, value in given.items() if not value)
        raise ConfigError(missing, f"the first admin needs {', '.join(given)} together (or none of them)")
    return IdentitySettings(
        # the gateway remembers a revoked token MAX_ACCESS_TOKEN_TTL_S: a longer-lived one would come back
        access_ttl_s=_int(env, "IDENTITY_ACCESS_TOKEN_TTL_S", 900, 30, MAX_ACCESS_TOKEN_TTL_S),
        refresh_ttl_s=_int(env, "IDENTITY_REFRESH_TOKEN_TTL_S", 14 * 24 * 3600, 60, 90 * 24 * 3600),
        bcrypt_cost=cost,
        bcrypt_concurrency=concurrency,
        bcrypt_max_waiting=_int(env, "IDENTITY_BCRYPT_MAX_WAITING", 2 * concurrency, 0, 10000),
        bcrypt_nice=_int(env, "IDENTITY_BCRYPT_NICE", 8, 0, 19),
        lockout_threshold=_int(env, "IDENTITY_LOCKOUT_THRESHOLD", 5, 1, 100),
        lockout_window_s=_int(env, "IDENTITY_LOCKOUT_WINDOW_S", 900, 1, 86400),
        lockout_base_s=_int(env, "IDENTITY_LOCKOUT_BASE_S", 60, 1, 86400),
        lockout_max_s=_int(env, "IDENTITY_LOCKOUT_MAX_S", 3600, 1, 7 * 86400),
        ip_failure_limit=ip_failure_limit,
        reset_ttl_s=_int(env, "IDENTITY_RESET_TOKEN_TTL_S", 3600, 60, 86400),
        reset_account_limit=_int(env, "IDENTITY_RESET_ACCOUNT_LIMIT", 3, 1, 100),
        reset_address_limit=_int(env, "IDENTITY_RESET_ADDRESS_LIMIT", 20, 1, 100000),
        reset_window_s=_int(env, "IDENTITY_RESET_WINDOW_S", 3600, 60, 86400),
        photo_concurrency=_int(env, "IDENTITY_PHOTO_CONCURRENCY", 2, 1, 64),
        known_network_days=_int(env, "IDENTITY_KNOWN_NETWORK_DAYS", 90, 1, 3650),
        admin_email=email,
        admin_password=password,
        admin_birth_date=birth_date,
        admin_name=(env.get(ADMIN_NAME_VAR) or "").strip() or "Administrator",
    )


ADMIN_FIELD_VARS = {"email": ADMIN_EMAIL_VAR, "password": ADMIN_PASSWORD_VAR, "birth_date": ADMIN_BIRTH_DATE_VAR,
                    "full_name": ADMIN_NAME_VAR}


def check_config(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Everything identity's ``run`` validates (``check-config`` and ``run`` call it before anything
    starts): its settings, its token signing keys and the first admin of the environment (the password
    policy, the e-mail, an adult's birth date), which ``run`` would otherwise refuse only once started.
    Raises ``ConfigError`` naming the variable."""
    from upgestao_kernel.errors import ServiceError

    from .adapters.tokens import load_signing_keys
    from .entrypoints.dependencies import today
    from .service_layer.auth import checked_password
    from .service_layer.bootstrap import ADMIN_REQUIRED
    from .service_layer.profiles import clean_fields

    env = os.environ if environ is None else environ
    identity = load_identity_settings(settings, env)
    load_signing_keys(settings, env)
    if not identity.admin_email:
        return
    admin = {"full_name": identity.admin_name, "email": identity.admin_email, "birth_date": identity.admin_birth_date}
    try:
        clean_fields(admin, allowed=ADMIN_REQUIRED, required=ADMIN_REQUIRED, today=today(),
                     minimum_age=identity.minimum_age)
        checked_password(identity.admin_password, identity.admin_email)
    except ServiceError as exc:
        errors = exc.extensions.get("errors") or [{"field": "", "message": exc.detail}]
        first = errors[0]
        variable = ADMIN_FIELD_VARS.get(first.get("field"), ADMIN_EMAIL_VAR)
        others = "; ".join(f"{ADMIN_FIELD_VARS.get(e.get('field'), e.get('field'))}: {e.get('message')}"
                           for e in errors[1:])
        raise ConfigError(variable, f"the first admin: {first.get('message')}" + (f" (and {others})" if others else "")
                          ) from None
