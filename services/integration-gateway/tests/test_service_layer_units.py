"""The gateway's service layer on fakes: readiness and the audit of a refused request, without a broker
or a database."""

from __future__ import annotations

import time
from contextlib import contextmanager

import eventlet
import pytest
from upgestao_gateway.domain.permissions import PURPOSE
from upgestao_gateway.entrypoints.http.spec import declare_route
from upgestao_gateway.service_layer.denials import record_denial
from upgestao_gateway.service_layer.readiness import (
    DOWN,
    OK,
    SKIPPED,
    ReadinessCache,
    Report,
    assess,
    unavailable,
)


def ok() -> None:
    return None


def refused() -> None:
    raise ConnectionRefusedError("broker")


def hangs() -> None:
    eventlet.sleep(10)


def test_readiness_checks_everything_when_the_broker_answers():
    results = assess(ok, ok, {"revocations": ok, "identity": refused, "privacy": hangs}, timeout_s=0.2)
    assert results == {"broker": OK, "database": OK, "revocations": OK, "identity": DOWN, "privacy": DOWN}
    assert list(results) == ["broker", "database", "revocations", "identity", "privacy"]  # the answer's order
    assert unavailable(results) == ["identity", "privacy"]


def test_a_down_broker_skips_what_goes_through_it_and_waits_for_nothing():
    called = []
    started = time.monotonic()
    results = assess(refused, ok, {"identity": lambda: called.append("identity") or hangs()}, timeout_s=2.0)
    assert time.monotonic() - started < 1.0
    assert results == {"broker": DOWN, "database": OK, "identity": SKIPPED}
    assert called == []
    assert unavailable(results) == ["broker"]


class FakeUnitOfWork:
    def __init__(self, fail: bool = False) -> None:
        self.denials: list[dict] = []
        self.committed = 0
        self.fail = fail

    @contextmanager
    def __call__(self):
        if self.fail:
            raise ConnectionError("database unreachable")
        pending = FakeUnitOfWork()
        yield pending
        self.denials.extend(pending.denials)
        self.committed += 1

    def deny(self, **record) -> None:
        self.denials.append(record)


def test_a_refusal_is_recorded_with_ids_and_the_resource_only():
    spec = declare_route("PATCH", "/v1/users/<uuid:user_id>", personal_data=True, auth="required",
                         permission="users.update", response={"type": "object"})
    uow = FakeUnitOfWork()
    record_denial(uow, spec, spec.template, "users.update", {"user_id": "u-1"}, role="attendant")
    assert uow.committed == 1
    assert uow.denials == [{"action": "update", "resource_type": "user", "resource_id": None, "subject_id": "u-1",
                            "fields": (), "purpose": PURPOSE}]


def test_a_refusal_whose_record_cannot_be_written_is_refused_all_the_same():
    spec = declare_route("GET", "/v1/customers", personal_data=True, auth="required", permission="customers.list",
                         response={"type": "object"})
    uow = FakeUnitOfWork(fail=True)
    record_denial(uow, spec, spec.template, "customers.list", {}, role=None)  # logged, never raised
    assert uow.denials == []


@pytest.mark.parametrize("options, message", [
    ({"auth": "required"}, "needs permission="),
    ({"permission": "users.read"}, "a permission needs auth='required'"),
    ({"auth": "required", "permission": "users.read", "roles": ("admin",)}, "roles= is gone"),
    ({"personal_data": None}, "must declare personal_data"),
])
def test_a_route_declaration_is_checked_without_nameko(options, message):
    declaration = {"personal_data": False, "response": {"type": "object"}, **options}
    with pytest.raises(ValueError, match=message):
        declare_route("GET", "/v1/things", **declaration)


# -- the readiness cache (issue 11, finding 12) ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_readiness_questions_makes_one_check():
    """200 concurrent /readyz used to make 200 broker connections and 800 RPCs: one check now, shared
    by everyone who asked while it ran, then reused while younger than max_age_s."""
    clock = Clock()
    cache = ReadinessCache(max_age_s=2.0, clock=clock)
    made = []

    def check() -> Report:
        made.append(1)
        eventlet.sleep(0.05)  # waiting for answers: everyone else arrives meanwhile
        return Report({"broker": OK, "identity": OK}, unrouted_depth=3)

    pool = eventlet.GreenPool(200)
    reports = list(pool.imap(lambda _: cache.get(check), range(200)))
    assert len(made) == 1 == cache.checks_run
    assert all(report.ready and report.unrouted_depth == 3 for report in reports)
    clock.now += 1.9
    cache.get(check)
    assert len(made) == 1
    clock.now += 0.2  # older than max_age_s: checked again, once
    list(pool.imap(lambda _: cache.get(check), range(50)))
    assert len(made) == 2


def test_an_operator_gets_a_fresh_check_and_a_failure_reaches_every_waiter():
    clock = Clock()
    cache = ReadinessCache(max_age_s=60.0, clock=clock)
    first = cache.get(lambda: Report({"broker": OK}))
    assert first.ready and cache.get(lambda: Report({"broker": DOWN})) is first
    fresh = cache.get(lambda: Report({"broker": DOWN, "identity": SKIPPED}), fresh=True)
    assert not fresh.ready and fresh.down == ["broker"]
    assert cache.get(lambda: Report({"broker": OK})) is fresh  # the fresh one is now the cached one

    def broken() -> Report:
        eventlet.sleep(0.05)
        raise RuntimeError("bug")

    waiters = [eventlet.spawn(cache.get, broken, True) for _ in range(3)]
    for waiter in waiters:
        with pytest.raises(RuntimeError):
            waiter.wait()
    assert cache.checks_run == 3  # the broken one ran once for the three
    assert cache.get(lambda: Report({"broker": OK}), fresh=True).ready  # and does not stay stuck
