"""Configuration errors surface before anything starts (issue 9, defect 3).

``python -m upgestao_<svc> check-config`` validates everything the service's ``run``
validates, and ``Platform.start()`` runs every service's ``check-config`` before it
migrates or spawns anything, reporting one line per problem, without a traceback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from upgestao_kernel.testing_tokens import token_jwks_json

GOOD_PASSWORD = "Quartzo-Azul-Girassol-42"
ADMIN_UNSET = {"UPGESTAO_ADMIN_EMAIL": "", "UPGESTAO_ADMIN_PASSWORD": "", "UPGESTAO_ADMIN_BIRTH_DATE": "",
               "UPGESTAO_ADMIN_NAME": ""}


def check_config(service: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "UPGESTAO_DATA_DIR": str(tmp_path), "UPGESTAO_ENV": "local", **env}
    return subprocess.run([sys.executable, "-m", f"upgestao_{service}", "check-config"], env=environ,
                          capture_output=True, text=True, timeout=60)


def error_line(result: subprocess.CompletedProcess, service: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"upgestao-{service}: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(("env", "variable", "says"), [
    ({"UPGESTAO_ADMIN_EMAIL": "admin@example.com"}, "UPGESTAO_ADMIN_PASSWORD", "together"),
    ({"UPGESTAO_ADMIN_EMAIL": "admin@example.com", "UPGESTAO_ADMIN_PASSWORD": GOOD_PASSWORD},
     "UPGESTAO_ADMIN_BIRTH_DATE", "together"),
    ({"UPGESTAO_ADMIN_EMAIL": "admin@example.com", "UPGESTAO_ADMIN_PASSWORD": "short",
      "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15"}, "UPGESTAO_ADMIN_PASSWORD", "at least"),
    ({"UPGESTAO_ADMIN_EMAIL": "admin@example.com", "UPGESTAO_ADMIN_PASSWORD": GOOD_PASSWORD,
      "UPGESTAO_ADMIN_BIRTH_DATE": "2020-01-15"}, "UPGESTAO_ADMIN_BIRTH_DATE", "18 years"),
    ({"UPGESTAO_ADMIN_EMAIL": "admin@example.com", "UPGESTAO_ADMIN_PASSWORD": GOOD_PASSWORD,
      "UPGESTAO_ADMIN_BIRTH_DATE": "15/01/1980"}, "UPGESTAO_ADMIN_BIRTH_DATE", ""),
    ({"UPGESTAO_ADMIN_EMAIL": "not-an-address", "UPGESTAO_ADMIN_PASSWORD": GOOD_PASSWORD,
      "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15"}, "UPGESTAO_ADMIN_EMAIL", ""),
    ({"IDENTITY_JWT_SIGNING_KEYS": "not base64!"}, "IDENTITY_JWT_SIGNING_KEYS", ""),
    ({"IDENTITY_BCRYPT_COST": "99"}, "IDENTITY_BCRYPT_COST", ""),
], ids=["admin-email-alone", "admin-without-birth-date", "weak-admin-password", "admin-under-18",
        "admin-birth-date-format", "admin-email-invalid", "bad-signing-key", "bcrypt-cost-out-of-range"])
def test_identity_check_config_refuses_what_run_refuses(tmp_path, env, variable, says):
    result = check_config("identity", tmp_path, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = error_line(result, "identity")
    assert line.startswith(f"upgestao-identity: configuration error: {variable}: "), line
    assert says in line
    assert "configuration ok" not in result.stdout


def test_identity_check_config_accepts_a_complete_first_admin(tmp_path):
    result = check_config("identity", tmp_path, UPGESTAO_ADMIN_EMAIL="admin@example.com",
                          UPGESTAO_ADMIN_PASSWORD=GOOD_PASSWORD, UPGESTAO_ADMIN_BIRTH_DATE="1980-01-15")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "identity: configuration ok (local)"


def test_identity_run_refuses_the_same_environment_before_starting(tmp_path):
    """``run`` goes through the same check: it stops at once with the message, no traceback."""
    environ = {"PATH": "/usr/bin:/bin", "UPGESTAO_DATA_DIR": str(tmp_path), "UPGESTAO_ADMIN_EMAIL": "a@example.com",
               "AMQP_URI": "amqp://guest:guest@127.0.0.1:1/"}  # never reached
    result = subprocess.run([sys.executable, "-m", "upgestao_identity", "run"], env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert error_line(result, "identity").startswith(
        "upgestao-identity: configuration error: UPGESTAO_ADMIN_PASSWORD: ")


@pytest.mark.parametrize(("env", "variable"), [
    ({"PRIVACY_AUDIT_STREAM_MAX_AGE": "ninety days"}, "PRIVACY_AUDIT_STREAM_MAX_AGE"),
    ({"PRIVACY_AUDIT_SIGNING_KEY": "c2hvcnQ="}, "PRIVACY_AUDIT_SIGNING_KEY"),
    ({"PRIVACY_AUDIT_CHECKPOINT_EVERY": "0"}, "PRIVACY_AUDIT_CHECKPOINT_EVERY"),
    ({"UPGESTAO_IDENTITY_JWKS": '{"keys": []}'}, "UPGESTAO_IDENTITY_JWKS"),
    ({"PRIVACY_CONTACT_CODE_TTL_S": "0"}, "PRIVACY_CONTACT_CODE_TTL_S"),
    ({"PRIVACY_EXPORT_LINK_TTL_S": "forever"}, "PRIVACY_EXPORT_LINK_TTL_S"),
    ({"UPGESTAO_ENV": "production", "PRIVACY_DATABASE_URL": "postgresql://u@h/db",
      "PRIVACY_AUDIT_SIGNING_KEY": "A" * 43 + "=", "UPGESTAO_MASTER_KEY": "B" * 43 + "=",
      "UPGESTAO_BLIND_INDEX_KEY": "C" * 43 + "="}, "UPGESTAO_IDENTITY_JWKS"),
], ids=["stream-max-age", "short-signing-key", "checkpoint-every", "bad-identity-jwks", "contact-code-ttl",
     "export-link-ttl", "production-unpinned"])
def test_privacy_check_config_refuses_what_run_refuses(tmp_path, env, variable):
    result = check_config("privacy", tmp_path, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert error_line(result, "privacy").startswith(f"upgestao-privacy: configuration error: {variable}: ")


@pytest.mark.parametrize(("env", "variable"), [
    ({"UPGESTAO_WEB_SESSION_KEY": "too short"}, "UPGESTAO_WEB_SESSION_KEY"),
    ({"UPGESTAO_ENV": "production", "GATEWAY_DATABASE_URL": "postgresql://u@h/db",
      "UPGESTAO_IDENTITY_JWKS": token_jwks_json()}, "UPGESTAO_WEB_SESSION_KEY"),
], ids=["short-web-session-key", "production-without-web-session-key"])
def test_gateway_check_config_refuses_what_run_refuses(tmp_path, env, variable):
    result = check_config("gateway", tmp_path, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert error_line(result, "gateway").startswith(f"upgestao-gateway: configuration error: {variable}: ")
    assert not (tmp_path / "web-session.key").exists()  # a check makes nothing


def test_gateway_check_config_accepts_a_web_session_key_in_production(tmp_path):
    result = check_config("gateway", tmp_path, UPGESTAO_ENV="production", GATEWAY_DATABASE_URL="postgresql://u@h/db",
                          UPGESTAO_IDENTITY_JWKS=token_jwks_json(), UPGESTAO_WEB_SESSION_KEY="k" * 64)
    assert result.returncode == 0, result.stderr


def test_platform_start_fails_fast_with_just_the_message(platform_module, tmp_path):
    """Only UPGESTAO_ADMIN_EMAIL set: no migration, no process, one line naming the variable."""
    module = platform_module
    platform = module.Platform(
        data_dir=tmp_path, http_address=module.free_address(),
        env={**ADMIN_UNSET, "UPGESTAO_ADMIN_EMAIL": "admin@example.com", "PRIVACY_AUDIT_STREAM_MAX_AGE": "forever"},
    )
    started = time.monotonic()
    with pytest.raises(module.PlatformError) as err:
        platform.start(timeout=60)
    elapsed = time.monotonic() - started
    message = str(err.value)
    assert message.splitlines() == [
        "identity: configuration error: UPGESTAO_ADMIN_PASSWORD: the first admin needs UPGESTAO_ADMIN_EMAIL, "
        "UPGESTAO_ADMIN_PASSWORD, UPGESTAO_ADMIN_BIRTH_DATE together (or none of them)",
        "privacy: configuration error: PRIVACY_AUDIT_STREAM_MAX_AGE: expected a number and a unit "
        "(Y, M, D, h, m, s), got 'forever'",
    ], message
    assert platform.children == {}
    assert not list((tmp_path / "logs").glob("*-migrate.log"))
    assert not list(tmp_path.glob("*.sqlite3"))  # nothing migrated
    assert elapsed < 30, elapsed
    # and the data directory is free again
    assert module.DataDirLock(tmp_path).owner() is None


def test_platformctl_up_prints_the_message_and_exits_non_zero(platform_module, tmp_path):
    environ = {"PATH": "/usr/bin:/bin", **ADMIN_UNSET, "UPGESTAO_ADMIN_EMAIL": "admin@example.com"}
    result = subprocess.run(
        [sys.executable, str(platform_module.ROOT / "scripts" / "platformctl.py"), "up", "--data-dir", str(tmp_path),
         "--http-address", platform_module.free_address(), "--python", sys.executable],
        env=environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "upgestao: could not start:\nidentity: configuration error: UPGESTAO_ADMIN_PASSWORD: " in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "migrated" not in result.stdout


@pytest.mark.parametrize(("command", "env", "variable"), [
    ("check-config", {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ("relay", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL"),
], ids=["check-config-endpoint-not-a-url", "relay-grpc-protocol"])
def test_a_wrong_tracing_setting_stops_the_process_naming_the_variable(tmp_path, command, env, variable):
    """Issue 18: traces are exported over OTLP/HTTP only; a setting that cannot work stops the process at start."""
    environ = {"PATH": "/usr/bin:/bin", "UPGESTAO_DATA_DIR": str(tmp_path), "UPGESTAO_ENV": "local", **env}
    result = subprocess.run([sys.executable, "-m", "upgestao_notifier", command], env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert error_line(result, "notifier").startswith(f"upgestao-notifier: configuration error: {variable}: ")
