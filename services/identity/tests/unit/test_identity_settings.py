"""Identity's settings: what tests may loosen, production may not (issue 9, defect 7)."""

from __future__ import annotations

import pytest
from upgestao_identity.settings import PRODUCTION_MAX_IP_FAILURES, load_identity_settings
from upgestao_kernel.config import ConfigError, load_settings

PRODUCTION = {
    "UPGESTAO_ENV": "production",
    "UPGESTAO_MASTER_KEY": "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=",
    "UPGESTAO_BLIND_INDEX_KEY": "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=",
    "IDENTITY_DATABASE_URL": "postgresql://u@127.0.0.1:5432/identity",
}


def test_a_fuzzer_may_raise_the_per_address_limit_outside_production(tmp_path):
    env = {"UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(tmp_path), "IDENTITY_IP_FAILURE_LIMIT": "100000"}
    settings = load_identity_settings(load_settings("identity", env), env)
    assert settings.ip_failure_limit == 100000


def test_production_refuses_a_per_address_limit_that_is_no_limit(tmp_path):
    env = {**PRODUCTION, "UPGESTAO_DATA_DIR": str(tmp_path), "IDENTITY_IP_FAILURE_LIMIT": "100000"}
    with pytest.raises(ConfigError) as refused:
        load_identity_settings(load_settings("identity", env), env)
    assert "IDENTITY_IP_FAILURE_LIMIT" in str(refused.value)
    env["IDENTITY_IP_FAILURE_LIMIT"] = str(PRODUCTION_MAX_IP_FAILURES)
    assert load_identity_settings(load_settings("identity", env), env).ip_failure_limit == PRODUCTION_MAX_IP_FAILURES


def test_identity_never_issues_a_token_the_gateway_would_forget_the_revocation_of(tmp_path):
    """Finding 10: the gateway remembers a revoked token MAX_ACCESS_TOKEN_TTL_S; a longer lifetime is refused."""
    from upgestao_kernel.limits import MAX_ACCESS_TOKEN_TTL_S

    env = {"UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(tmp_path),
           "IDENTITY_ACCESS_TOKEN_TTL_S": str(MAX_ACCESS_TOKEN_TTL_S)}
    assert load_identity_settings(load_settings("identity", env), env).access_ttl_s == MAX_ACCESS_TOKEN_TTL_S
    env["IDENTITY_ACCESS_TOKEN_TTL_S"] = str(MAX_ACCESS_TOKEN_TTL_S + 1)
    with pytest.raises(ConfigError) as refused:
        load_identity_settings(load_settings("identity", env), env)
    assert "IDENTITY_ACCESS_TOKEN_TTL_S" in str(refused.value) and str(MAX_ACCESS_TOKEN_TTL_S) in str(refused.value)


def test_bcrypt_cost_is_12_in_production_and_only_tests_may_lower_it(tmp_path):
    """The tests' platforms and harnesses run bcrypt at cost 4 where the cost is not what they test
    (IDENTITY_BCRYPT_COST): production keeps 12 by default and refuses anything lower."""
    env = {**PRODUCTION, "UPGESTAO_DATA_DIR": str(tmp_path)}
    assert load_identity_settings(load_settings("identity", env), env).bcrypt_cost == 12
    for cost in ("4", "11"):
        with pytest.raises(ConfigError) as refused:
            load_identity_settings(load_settings("identity", env), {**env, "IDENTITY_BCRYPT_COST": cost})
        assert "IDENTITY_BCRYPT_COST" in str(refused.value)
    test = {"UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(tmp_path), "IDENTITY_BCRYPT_COST": "4"}
    assert load_identity_settings(load_settings("identity", test), test).bcrypt_cost == 4
