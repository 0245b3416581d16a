"""The retry schedule and the endpoint's health: every answer classified, the jittered delays, Retry-After in
both forms, the 5-days-and-12-hours disabling rule and the throttle's back-off."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from upgestao_integrations.domain.schedule import (
    MAX_ATTEMPTS,
    MAX_RETRY_AFTER_S,
    RETRY_DELAYS_S,
    EndpointHealth,
    Outcome,
    classify,
    next_attempt_at,
    parse_retry_after,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_the_schedule_is_svix_s():
    assert RETRY_DELAYS_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert MAX_ATTEMPTS == 8


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_succeeds(status):
    assert classify(status, {}, None) == Outcome("succeeded")
    # an abort header on a success changes nothing
    assert classify(status, {"webhook-delivery": "abort-message"}, None).kind == "succeeded"


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
def test_3xx_fails(status):
    assert classify(status, {"location": "http://169.254.169.254/"}, None) == Outcome("failed")


def test_410_is_gone_even_with_an_abort_header():
    assert classify(410, {}, None).kind == "gone"
    assert classify(410, {"webhook-delivery": "abort-message"}, None).kind == "gone"


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500, 501, 429, 503])
def test_abort_message_on_a_non_2xx_aborts(status):
    assert classify(status, {"Webhook-Delivery": " Abort-Message "}, None) == Outcome("aborted")


def test_another_webhook_delivery_value_does_not_abort():
    assert classify(500, {"webhook-delivery": "retry"}, None).kind == "failed"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_throttling_statuses(status):
    assert classify(status, {}, None) == Outcome("throttled", None)
    assert classify(status, {"Retry-After": "120"}, None) == Outcome("throttled", 120.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 500, 501, 505, 599, 100])
def test_other_statuses_fail(status):
    assert classify(status, {}, None) == Outcome("failed")


def test_no_answer_fails():
    assert classify(None, {}, "timeout") == Outcome("failed")
    assert classify(None, {}, "connection refused").retryable


def test_a_failure_may_carry_retry_after():
    assert classify(500, {"retry-after": "30"}, None) == Outcome("failed", 30.0)


def test_retry_after_in_seconds_and_as_an_http_date():
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 45 ") == 45.0
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90.0
    assert parse_retry_after("Fri, 01 May 2026 12:02:00 GMT", NOW) == 120.0
    assert parse_retry_after("Fri, 01 May 2026 11:00:00 GMT", NOW) == 0.0  # in the past
    assert parse_retry_after(str(10**12)) == MAX_RETRY_AFTER_S
    assert parse_retry_after("Sat, 01 May 2027 12:00:00 GMT", NOW) == MAX_RETRY_AFTER_S
    date_now = classify(503, {"retry-after": "Fri, 01 May 2026 12:00:30 GMT"}, None, now=NOW)
    assert date_now == Outcome("throttled", 30.0)


@pytest.mark.parametrize("bad", [None, "", "soon", "-5", "1.5", "٣", "Fri, 99 Foo 2026"])
def test_bad_retry_after_is_ignored(bad):
    assert parse_retry_after(bad, NOW) is None


def test_the_delays_with_jitter():
    rng = random.Random(7)
    failed = Outcome("failed")
    for attempt in range(1, MAX_ATTEMPTS):
        when = next_attempt_at(attempt, NOW, failed, rng)
        delay = (when - NOW).total_seconds()
        base = RETRY_DELAYS_S[attempt]
        assert base * 0.8 <= delay <= base * 1.2


def test_the_jitter_spreads_and_is_reproducible_with_a_seed():
    delays = {(next_attempt_at(3, NOW, Outcome("failed"), random.Random(seed)) - NOW).total_seconds()
              for seed in range(50)}
    assert len(delays) > 40 and min(delays) < 1800 * 0.9 and max(delays) > 1800 * 1.1
    assert next_attempt_at(3, NOW, Outcome("failed"), random.Random(1)) == \
        next_attempt_at(3, NOW, Outcome("failed"), random.Random(1))


def test_after_the_last_attempt_there_is_none():
    assert next_attempt_at(MAX_ATTEMPTS, NOW, Outcome("failed"), random.Random(1)) is None
    assert next_attempt_at(MAX_ATTEMPTS + 3, NOW, Outcome("throttled", 5.0), random.Random(1)) is None


@pytest.mark.parametrize("kind", ["succeeded", "gone", "aborted"])
def test_final_outcomes_have_no_next_attempt(kind):
    assert next_attempt_at(1, NOW, Outcome(kind), random.Random(1)) is None


def test_attempts_are_numbered_from_one():
    with pytest.raises(ValueError):
        next_attempt_at(0, NOW, Outcome("failed"), random.Random(1))


def test_retry_after_is_a_lower_bound_capped_at_ten_hours():
    rng = random.Random(3)
    assert next_attempt_at(1, NOW, Outcome("throttled", 600.0), rng) == NOW + timedelta(seconds=600)
    # shorter than the schedule: the schedule wins
    later = next_attempt_at(4, NOW, Outcome("throttled", 1.0), rng)
    assert (later - NOW).total_seconds() >= 7200 * 0.8
    capped = next_attempt_at(1, NOW, Outcome("failed", 10**9), rng)
    assert capped == NOW + timedelta(seconds=MAX_RETRY_AFTER_S)


# -- EndpointHealth ------------------------------------------------------------------------------------------

def _fail_every(health: EndpointHealth, start: datetime, hours: float, step_h: float = 1.0) -> datetime:
    moment = start
    while moment <= start + timedelta(hours=hours):
        health.record_failure(moment)
        moment += timedelta(hours=step_h)
    return moment - timedelta(hours=step_h)


def test_a_new_endpoint_is_healthy():
    health = EndpointHealth()
    assert not health.should_disable(NOW + timedelta(days=30))
    assert not health.is_throttled(NOW)


def test_five_days_of_failures_spread_over_twelve_hours_disable():
    health = EndpointHealth()
    _fail_every(health, NOW, hours=13)
    assert not health.should_disable(NOW + timedelta(days=5) - timedelta(seconds=1))
    assert health.should_disable(NOW + timedelta(days=5))
    assert health.failures == 14


def test_failures_bunched_in_less_than_twelve_hours_do_not_disable():
    health = EndpointHealth()
    _fail_every(health, NOW, hours=11.5, step_h=0.5)
    assert not health.should_disable(NOW + timedelta(days=9))
    health.record_failure(NOW + timedelta(hours=12))
    assert health.should_disable(NOW + timedelta(days=5))


def test_a_success_starts_the_count_again():
    health = EndpointHealth()
    _fail_every(health, NOW, hours=24)
    health.record_success(NOW + timedelta(days=2))
    assert not health.should_disable(NOW + timedelta(days=6))
    assert health.failures == 0 and health.last_success_at == NOW + timedelta(days=2)
    _fail_every(health, NOW + timedelta(days=3), hours=12)
    assert not health.should_disable(NOW + timedelta(days=7, hours=23))
    assert health.should_disable(NOW + timedelta(days=8))


def test_throttle_backs_off_exponentially_up_to_a_minute():
    health = EndpointHealth()
    waits = [(health.record_throttle(NOW) - NOW).total_seconds() for _ in range(9)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert health.is_throttled(NOW + timedelta(seconds=59))
    assert not health.is_throttled(NOW + timedelta(seconds=60))


def test_throttle_honours_retry_after_and_never_shortens():
    health = EndpointHealth()
    assert health.record_throttle(NOW, 300.0) == NOW + timedelta(seconds=300)
    assert health.record_throttle(NOW, 10.0) == NOW + timedelta(seconds=300)  # an earlier answer keeps the hold
    assert health.record_throttle(NOW, 10**9) == NOW + timedelta(seconds=MAX_RETRY_AFTER_S)


def test_record_dispatches_each_outcome():
    health = EndpointHealth()
    health.record(NOW, Outcome("failed"))
    assert health.failures == 1 and not health.is_throttled(NOW)
    health.record(NOW, Outcome("throttled", 5.0))
    assert health.failures == 2 and health.throttled_until == NOW + timedelta(seconds=5)
    health.record(NOW, Outcome("aborted"))
    health.record(NOW, Outcome("gone"))
    assert health.failures == 2
    health.record(NOW + timedelta(seconds=1), Outcome("succeeded"))
    assert health.failures == 0 and health.throttle_level == 0 and health.throttled_until is None


def test_health_round_trips_through_a_dict():
    health = EndpointHealth()
    _fail_every(health, NOW, hours=3)
    health.record_throttle(NOW, None)
    raw = health.to_dict()
    assert raw["failing_since"] == NOW.isoformat() and raw["failures"] == 4
    again = EndpointHealth.from_dict(raw)
    assert again == health
    assert EndpointHealth.from_dict(None) == EndpointHealth()
    assert EndpointHealth.from_dict({}) == EndpointHealth()
