"""The rate limiter (GCRA) on an injected clock, its settings, and the in-flight Idempotency-Key registry:
a burst is allowed at once and the next request refused with the seconds until one is allowed again; a
refused request consumes nothing; tokens come back at the quota's rate; the reset is the time until the
bucket is full; idle principals are forgotten and the number kept is bounded."""

from __future__ import annotations

import pytest
from upgestao_gateway.domain.in_flight import InFlightKeys
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.domain.rate_limits import Decision, Quota, RateLimiter
from upgestao_gateway.entrypoints.dependencies import RateLimiting
from upgestao_gateway.entrypoints.http.guards import claim_idempotency_key
from upgestao_gateway.entrypoints.http.problems import Problem
from upgestao_gateway.settings import (
    DEFAULT_BURST,
    DEFAULT_KEY_PER_MIN,
    DEFAULT_USER_PER_MIN,
    RateLimitSettings,
    load_rate_limit_settings,
)
from upgestao_kernel.config import ConfigError


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_burst_is_allowed_at_once_then_refused_with_the_time_until_one_token_is_back():
    clock = Clock()
    limiter = RateLimiter(clock)
    quota = Quota(per_minute=60, burst=3)  # one token a second
    answers = [limiter.check("user:a", quota) for _ in range(3)]
    assert [a.allowed for a in answers] == [True, True, True]
    assert [a.remaining for a in answers] == [2, 1, 0]
    assert [a.reset_s for a in answers] == [1, 2, 3]  # until the bucket is full again
    refused = limiter.check("user:a", quota)
    assert refused == Decision(False, limit=3, remaining=0, reset_s=3, retry_after_s=1)
    assert refused.headers() == {"RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "3",
                                 "Retry-After": "1"}
    assert "Retry-After" not in answers[0].headers()


def test_a_refused_request_consumes_nothing_and_tokens_come_back_at_the_quota_rate():
    clock = Clock()
    limiter = RateLimiter(clock)
    quota = Quota(per_minute=60, burst=2)
    assert limiter.check("k", quota).allowed and limiter.check("k", quota).allowed
    for _ in range(50):  # hammering while refused does not push the next token further away
        assert not limiter.check("k", quota).allowed
    clock.advance(0.999)
    assert not limiter.check("k", quota).allowed
    clock.advance(0.001)
    back = limiter.check("k", quota)
    assert back.allowed and back.remaining == 0
    clock.advance(2.0)  # the whole bucket back, and no more than the bucket
    full = limiter.check("k", quota)
    assert full.allowed and full.remaining == 1 and full.reset_s == 1


def test_a_steady_client_at_the_quota_rate_is_never_refused():
    clock = Clock()
    limiter = RateLimiter(clock)
    quota = Quota(per_minute=6000, burst=5)  # 100 a second
    for _ in range(10_000):
        assert limiter.check("user:steady", quota).allowed
        clock.advance(0.01)


def test_the_retry_after_and_reset_are_whole_seconds_rounded_up():
    clock = Clock()
    limiter = RateLimiter(clock)
    quota = Quota(per_minute=1, burst=1)  # one a minute
    first = limiter.check("p", quota)
    assert first.allowed and first.remaining == 0 and first.reset_s == 60
    clock.advance(59.5)
    refused = limiter.check("p", quota)
    assert (refused.allowed, refused.retry_after_s, refused.reset_s) == (False, 1, 1)


def test_principals_are_limited_apart():
    limiter = RateLimiter(Clock())
    quota = Quota(per_minute=60, burst=1)
    assert limiter.check("user:a", quota).allowed
    assert not limiter.check("user:a", quota).allowed
    assert limiter.check("user:b", quota).allowed


def test_idle_principals_are_forgotten_as_the_limiter_is_used():
    clock = Clock()
    limiter = RateLimiter(clock)
    quota = Quota(per_minute=60, burst=10)
    for n in range(100):
        limiter.check(f"user:{n}", quota)
    assert len(limiter) == 100
    clock.advance(1.0)  # each bucket (one token spent) is full again
    limiter.check("user:new", quota)
    assert len(limiter) == 1
    assert limiter.evicted_busy == 0


def test_sweep_forgets_every_full_bucket_and_keeps_the_others():
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.check("slow", Quota(per_minute=1, burst=5))  # full again in 60 s
    limiter.check("fast", Quota(per_minute=600, burst=5))  # in 0.1 s
    clock.advance(1.0)
    assert limiter.sweep() == 1
    assert len(limiter) == 1
    refused_soon = [limiter.check("slow", Quota(per_minute=1, burst=5)) for _ in range(5)]
    assert [d.allowed for d in refused_soon] == [True, True, True, True, False]  # "slow" was remembered


def test_the_number_of_principals_kept_is_bounded():
    clock = Clock()
    limiter = RateLimiter(clock, max_principals=50)
    quota = Quota(per_minute=1, burst=10)  # nobody's bucket is full again within the test
    for n in range(500):
        limiter.check(f"user:{n}", quota)
    assert len(limiter) == 50
    assert limiter.evicted_busy == 450
    # the most recent are the ones kept
    assert limiter.check("user:499", quota).remaining == 8


@pytest.mark.parametrize("per_minute, burst", [(0, 1), (1, 0), (-5, 10)])
def test_a_quota_needs_a_rate_and_a_burst(per_minute, burst):
    with pytest.raises(ValueError):
        Quota(per_minute, burst)


def test_settings_default_generously_and_zero_turns_a_kind_off():
    settings = load_rate_limit_settings({})
    assert settings == RateLimitSettings(Quota(DEFAULT_USER_PER_MIN, DEFAULT_BURST),
                                         Quota(DEFAULT_KEY_PER_MIN, DEFAULT_BURST))
    assert (DEFAULT_USER_PER_MIN, DEFAULT_KEY_PER_MIN) == (6000, 1200)
    off = load_rate_limit_settings({"GATEWAY_RATE_LIMIT_USER_PER_MIN": "0", "GATEWAY_RATE_LIMIT_KEY_PER_MIN": "30",
                                    "GATEWAY_RATE_LIMIT_BURST": "5"})
    assert off == RateLimitSettings(None, Quota(30, 5))


@pytest.mark.parametrize("variable, value", [
    ("GATEWAY_RATE_LIMIT_USER_PER_MIN", "lots"),
    ("GATEWAY_RATE_LIMIT_USER_PER_MIN", "-1"),
    ("GATEWAY_RATE_LIMIT_KEY_PER_MIN", "1.5"),
    ("GATEWAY_RATE_LIMIT_BURST", "0"),
    ("GATEWAY_RATE_LIMIT_BURST", "99999999"),
])
def test_a_wrong_setting_is_a_config_error_naming_it(variable, value):
    with pytest.raises(ConfigError) as raised:
        load_rate_limit_settings({variable: value})
    assert raised.value.variable == variable


def test_users_and_api_keys_have_quotas_of_their_own():
    limits = RateLimiting()
    limits.settings = RateLimitSettings(Quota(60, 2), Quota(6, 2))
    limits.limiter = RateLimiter(Clock())
    user = Principal(actor_id="same-id", role="attendant")
    key = Principal(actor_id="same-id", role="apikey:key-1")
    assert limits.check(user).reset_s == 1  # 60 a minute
    assert limits.check(key).reset_s == 10  # 6 a minute, counted apart from the user's
    limits.settings = RateLimitSettings(None, Quota(6, 2))
    assert limits.check(user) is None  # users not limited: no decision, no headers


def test_an_idempotency_key_in_flight_is_refused_until_released():
    keys = InFlightKeys()
    assert claim_idempotency_key(keys, "user-a:key-00000001") == "user-a:key-00000001"
    with pytest.raises(Problem) as raised:
        claim_idempotency_key(keys, "user-a:key-00000001")
    problem = raised.value
    assert (problem.status, problem.type.rsplit("/", 1)[1]) == (409, "idempotency-key-in-use")
    assert problem.headers == {"Retry-After": "1"}
    assert problem.extensions["errors"][0]["field"] == "Idempotency-Key"
    assert claim_idempotency_key(keys, "user-b:key-00000001")  # another caller's key of the same name
    keys.release("user-a:key-00000001")
    assert "user-a:key-00000001" not in keys and len(keys) == 1
    assert claim_idempotency_key(keys, "user-a:key-00000001")


def test_the_openapi_document_declares_the_quota_headers_of_signed_in_routes():
    from upgestao_gateway.entrypoints.http.openapi import openapi_document
    from upgestao_gateway.service import GatewayService

    paths = openapi_document(GatewayService)["paths"]
    teams = paths["/v1/teams"]["post"]["responses"]
    assert set(teams["201"]["headers"]) >= {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    assert "Retry-After" in teams["429"]["headers"] and "RateLimit-Remaining" in teams["429"]["headers"]
    assert "RateLimit-Limit" not in teams["401"]["headers"]  # who is not known has no quota
    ping = paths["/v1/ping"]["get"]["responses"]
    assert "429" not in ping and not any(h.startswith("RateLimit-") for h in ping["200"]["headers"])


@pytest.mark.parametrize("variable, value", [
    ("GATEWAY_RATE_LIMIT_USER_PER_MIN", "many"),
    ("GATEWAY_RATE_LIMIT_BURST", "0"),
])
def test_check_config_refuses_a_wrong_rate_limit_before_anything_starts(tmp_path, variable, value):
    import subprocess
    import sys

    environ = {"PATH": "/usr/bin:/bin", "UPGESTAO_DATA_DIR": str(tmp_path), "UPGESTAO_ENV": "local", variable: value}
    result = subprocess.run([sys.executable, "-m", "upgestao_gateway", "check-config"], env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"configuration error: {variable}: " in result.stderr and "Traceback" not in result.stderr
