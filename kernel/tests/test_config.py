"""Configuration: validated at start, every error names its variable."""

from __future__ import annotations

import subprocess
import sys

import pytest
from upgestao_kernel.config import ConfigError, load_settings


def test_defaults_need_no_configuration(tmp_path):
    settings = load_settings("identity", {"UPGESTAO_DATA_DIR": str(tmp_path)})
    assert settings.env == "local"
    assert settings.amqp_uri == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.database_url == f"sqlite:///{tmp_path / 'identity.sqlite3'}"


def test_postgres_url_is_forced_onto_psycopg2():
    settings = load_settings("integration-gateway", {"INTEGRATION_GATEWAY_DATABASE_URL": "postgresql://u@h/db"})
    assert settings.database_url == "postgresql+psycopg2://u@h/db"


@pytest.mark.parametrize(
    "environ, variable",
    [
        ({"UPGESTAO_ENV": "staging"}, "UPGESTAO_ENV"),
        ({"AMQP_URI": "http://rabbit"}, "AMQP_URI"),
        ({"IDENTITY_DATABASE_URL": "mysql://x/y"}, "IDENTITY_DATABASE_URL"),
        ({"UPGESTAO_ENV": "production"}, "IDENTITY_DATABASE_URL"),
        ({"UPGESTAO_LOG_LEVEL": "LOUD"}, "UPGESTAO_LOG_LEVEL"),
        ({"UPGESTAO_RETRY_DELAYS_MS": "1,x"}, "UPGESTAO_RETRY_DELAYS_MS"),
        ({"UPGESTAO_RELAY_BATCH_SIZE": "0"}, "UPGESTAO_RELAY_BATCH_SIZE"),
        ({"UPGESTAO_RELAY_CRASH_AFTER_CONFIRM": "0"}, "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM"),
        ({"UPGESTAO_ENV": "production", "IDENTITY_DATABASE_URL": "postgresql://u@h/db",
          "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM": "1"}, "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM"),
    ],
)
def test_wrong_values_name_the_variable(environ, variable):
    with pytest.raises(ConfigError) as err:
        load_settings("identity", environ)
    assert err.value.variable == variable
    assert variable in str(err.value)


def test_the_relay_crash_hook_is_for_test_and_local_only():
    for env in ("test", "local"):
        settings = load_settings("identity", {"UPGESTAO_ENV": env, "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM": "3"})
        assert settings.relay_crash_after_confirm == 3
    assert load_settings("identity", {}).relay_crash_after_confirm is None
    with pytest.raises(ConfigError, match="refused in production"):
        load_settings("identity", {"UPGESTAO_ENV": "production", "IDENTITY_DATABASE_URL": "postgresql://u@h/db",
                                   "UPGESTAO_RELAY_CRASH_AFTER_CONFIRM": "3"})


def test_service_refuses_to_start_and_says_why(tmp_path):
    """The real command: production without a master key stops with a clear message."""
    env = {"PATH": "/usr/bin:/bin", "UPGESTAO_ENV": "production", "UPGESTAO_DATA_DIR": str(tmp_path),
           "IDENTITY_DATABASE_URL": "postgresql://postgres@127.0.0.1/none"}
    result = subprocess.run([sys.executable, "-m", "upgestao_identity", "check-config"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "UPGESTAO_MASTER_KEY" in result.stderr
    assert "Traceback" not in result.stderr
