"""The integrations settings: each bad value stops the start naming its variable; production requires the
secrets key; the standard schedule unless the tests compress it."""

from __future__ import annotations

import base64

import pytest
from upgestao_integrations.settings import STANDARD_RETRY_DELAYS_S, load_integrations_settings
from upgestao_kernel.config import ConfigError, load_settings

KEY = base64.b64encode(bytes(32)).decode()


def _load(tmp_path, **env):
    environ = {"UPGESTAO_DATA_DIR": str(tmp_path), **env}
    return load_integrations_settings(load_settings("integrations", environ), environ)


def test_defaults_are_the_standard_schedule_and_a_local_key(tmp_path) -> None:
    settings = _load(tmp_path)
    assert settings.retry_delays_s == STANDARD_RETRY_DELAYS_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert (settings.timeout_s, settings.concurrency, settings.allowed_networks) == (15.0, 32, "")
    assert settings.stale_after_s == 15.0 * 2 * 8 + 2 * 15.0 + 30.0 and len(settings.secrets_key) == 32  # 300 s
    assert (settings.per_endpoint, settings.claimed_per_endpoint, settings.rounds, settings.refill) == (8, 64, 8, 32)
    assert (tmp_path / "keys" / "integrations-secrets.key").is_file()
    assert _load(tmp_path, INTEGRATIONS_RETRY_DELAYS_S="0, 0.2,0.5").retry_delays_s == (0.0, 0.2, 0.5)


@pytest.mark.parametrize(("claimed", "refill"), [(64, 32), (32, 16), (16, 8), (12, 8), (8, 8), (4, 4), (1, 1)])
def test_an_endpoint_is_claimed_again_once_half_its_claims_and_at_least_a_wave_are_free(tmp_path, claimed,
                                                                                        refill) -> None:
    assert _load(tmp_path, INTEGRATIONS_CLAIMED_PER_ENDPOINT=str(claimed)).refill == refill


@pytest.mark.parametrize(("variable", "value"), [
    ("UPGESTAO_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/33"),
    ("UPGESTAO_WEBHOOK_ALLOWED_NETWORKS", "localhost"),
    ("INTEGRATIONS_SECRETS_KEY", "not base64!"),
    ("INTEGRATIONS_SECRETS_KEY", base64.b64encode(bytes(16)).decode()),
    ("INTEGRATIONS_TIMEOUT_S", "0"),
    ("INTEGRATIONS_CONCURRENCY", "many"),
    ("INTEGRATIONS_RETRY_DELAYS_S", "0,five"),
    ("INTEGRATIONS_RETRY_DELAYS_S", "-1"),
    ("INTEGRATIONS_DISABLE_AFTER_S", "0"),
    ("INTEGRATIONS_SECRET_OVERLAP_S", "-5"),
])
def test_a_bad_value_names_its_variable(tmp_path, variable, value) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, **{variable: value})
    assert refused.value.variable == variable


def test_production_requires_the_secrets_key(tmp_path) -> None:
    production = {"UPGESTAO_ENV": "production", "INTEGRATIONS_DATABASE_URL": "postgresql://u@db/integrations"}
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, **production)
    assert refused.value.variable == "INTEGRATIONS_SECRETS_KEY"
    assert _load(tmp_path, INTEGRATIONS_SECRETS_KEY=KEY, **production).production is True
