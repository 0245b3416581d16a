"""Configuration from environment variables, validated once at start.

Every problem is reported as :class:`ConfigError` naming the variable, so a
service that cannot start says exactly why. Defaults make the platform start
with no configuration at all: SQLite files under ``UPGESTAO_DATA_DIR`` and a
loopback RabbitMQ.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ENVIRONMENTS = ("local", "test", "production")
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_RETRY_DELAYS_MS = (1_000, 5_000, 30_000)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """A configuration variable is missing or wrong."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        super().__init__(f"configuration error: {variable}: {problem}")


def env_prefix(service: str) -> str:
    """``integration-gateway`` -> ``INTEGRATION_GATEWAY``."""
    return re.sub(r"[^A-Za-z0-9]", "_", service).upper()


def normalise_database_url(variable: str, url: str) -> str:
    """Force psycopg2 for PostgreSQL (green under eventlet via psycogreen).

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which must
    never be used here.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    if scheme == "postgresql+psycopg2" or scheme == "sqlite":
        return url
    raise ConfigError(
        variable, f"unsupported scheme {scheme!r}: use postgresql:// or sqlite:///"
    )


def _int(environ: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {value}")
    return value


int_setting = _int  # for services' own settings


def float_setting(environ: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    """A number of ``name`` in ``[lo, hi]`` (``default`` when unset), or a ``ConfigError`` naming it."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {raw}")
    return value


def _int_list(environ: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(name, f"expected comma-separated integers, got {raw!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ConfigError(name, "every delay must be a positive number of milliseconds")
    return values


@dataclass(frozen=True)
class Settings:
    service: str
    env: str
    data_dir: Path
    amqp_uri: str
    database_url: str
    log_level: str
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
    rpc_timeout_s: int = 10
    # how long the gateway keeps asking again (same idempotency key) for a write whose answer was lost
    rpc_retry_budget_s: int = 30
    relay_batch_size: int = 500
    relay_poll_ms: int = 50
    max_workers: int = 10
    # fault injection (test and local only): the relay process exits after the broker confirmed
    # this many batches, before marking the last one sent (UPGESTAO_RELAY_CRASH_AFTER_CONFIRM)
    relay_crash_after_confirm: int | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def max_attempts(self) -> int:
        """First delivery plus one per retry delay, then parking."""
        return len(self.retry_delays_ms) + 1

    def nameko_config(self) -> dict:
        return {"AMQP_URI": self.amqp_uri, "serializer": "json", "max_workers": self.max_workers}


def load_settings(
    service: str, environ: Mapping[str, str] | None = None, *, default_max_workers: int = 10
) -> Settings:
    """Read and validate the settings of ``service`` from the environment."""
    environ = os.environ if environ is None else environ
    env = environ.get("UPGESTAO_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ConfigError("UPGESTAO_ENV", f"must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    data_dir = Path(environ.get("UPGESTAO_DATA_DIR") or "var").resolve()

    amqp_uri = environ.get("AMQP_URI") or DEFAULT_AMQP_URI
    scheme = urlsplit(amqp_uri).scheme
    if scheme not in ("amqp", "amqps", "pyamqp"):
        raise ConfigError("AMQP_URI", f"expected amqp://user:password@host:port/vhost, got scheme {scheme!r}")

    db_var = f"{env_prefix(service)}_DATABASE_URL"
    raw_db = environ.get(db_var)
    if raw_db:
        database_url = normalise_database_url(db_var, raw_db)
    elif env == "production":
        raise ConfigError(db_var, "required in production (embedded SQLite is for local use)")
    else:
        database_url = f"sqlite:///{data_dir / (service + '.sqlite3')}"

    log_level = (environ.get("UPGESTAO_LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("UPGESTAO_LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")

    return Settings(
        service=service,
        env=env,
        data_dir=data_dir,
        amqp_uri=amqp_uri,
        database_url=database_url,
        log_level=log_level,
        retry_delays_ms=_int_list(environ, "UPGESTAO_RETRY_DELAYS_MS", DEFAULT_RETRY_DELAYS_MS),
        rpc_timeout_s=_int(environ, "UPGESTAO_RPC_TIMEOUT_S", 10, 1, 300),
        rpc_retry_budget_s=_int(environ, "UPGESTAO_RPC_RETRY_BUDGET_S", 30, 0, 600),
        relay_batch_size=_int(environ, "UPGESTAO_RELAY_BATCH_SIZE", 500, 1, 10_000),
        relay_poll_ms=_int(environ, "UPGESTAO_RELAY_POLL_MS", 50, 1, 60_000),
        max_workers=_int(environ, f"{env_prefix(service)}_MAX_WORKERS", default_max_workers, 1, 1000),
        relay_crash_after_confirm=_crash_hook(environ, env),
    )


CRASH_AFTER_CONFIRM = "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM"


def _crash_hook(environ: Mapping[str, str], env: str) -> int | None:
    """The relay's crash hook, for fault-injection tests: refused in production, where a
    process that kills itself on purpose can only be a mistake."""
    if not environ.get(CRASH_AFTER_CONFIRM):
        return None
    if env == "production":
        raise ConfigError(CRASH_AFTER_CONFIRM, "a fault-injection hook: refused in production")
    return _int(environ, CRASH_AFTER_CONFIRM, 0, 1, 1_000_000)
