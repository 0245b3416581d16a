"""What the kernel needs to know to run, migrate and rebuild this service."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from upgestao_kernel.cli import ServiceDefinition
from upgestao_kernel.config import ConfigError, Settings

HTTP_ADDRESS_VAR = "GATEWAY_HTTP_ADDRESS"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8000"
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>[0-9]{1,5})$")


def http_address(environ: Mapping[str, str] | None = None) -> str:
    """``host:port`` the gateway listens on (IPv4 address or host name)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(HTTP_ADDRESS_VAR) or DEFAULT_HTTP_ADDRESS
    match = _HOST_PORT.match(raw)
    if match is None:
        raise ConfigError(HTTP_ADDRESS_VAR, f"expected host:port such as {DEFAULT_HTTP_ADDRESS}, got {raw!r}")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ConfigError(HTTP_ADDRESS_VAR, f"port must be between 1 and 65535, got {port}")
    return raw


def nameko_config(settings: Settings) -> dict:
    # Validated here so that `check-config` and `run` name a wrong variable before anything starts.
    from .push.settings import load_push_settings
    from .settings import load_access_settings, load_edge_settings, load_rate_limit_settings, load_web_session_settings

    load_access_settings()
    load_edge_settings()
    load_rate_limit_settings()  # GATEWAY_RATE_LIMIT_*
    load_push_settings()  # the live push's (GATEWAY_STREAM_*)
    load_web_session_settings(make_key=False)  # UPGESTAO_WEB_SESSION_KEY (required in production)
    return {"WEB_SERVER_ADDRESS": http_address()}


DEFINITION = ServiceDefinition(
    name="gateway",
    service_class="upgestao_gateway.service:GatewayService",
    migrations="upgestao_gateway:migrations",
    publishes_events=False,
    default_max_workers=64,
    nameko_config=nameko_config,
)
