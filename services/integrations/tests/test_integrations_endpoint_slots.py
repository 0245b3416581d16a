"""A batch claims up to ``claimed_per_endpoint`` messages of one endpoint, yet no more than ``per_endpoint`` (8)
POSTs run at once to it, while another endpoint's POSTs go on beside them."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import eventlet
import eventlet.event
from eventlet.semaphore import Semaphore
from upgestao_integrations.adapters.http_sender import SendResult
from upgestao_integrations.adapters.projections import projections
from upgestao_integrations.adapters.secret_box import SecretBox
from upgestao_integrations.adapters.sql_repositories import with_sql_repositories
from upgestao_integrations.service_layer import fanout
from upgestao_integrations.service_layer.delivery import Deliverer
from upgestao_integrations.service_layer.registry import Registry
from upgestao_integrations.settings import IntegrationsSettings
from upgestao_kernel.context import system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.events import Actor, EventEnvelope, new_id
from upgestao_kernel.unit_of_work import UnitOfWork

KEY = bytes(range(32))


class CountingReceiver:
    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()

    def post(self, url: str, body: bytes, headers: dict) -> SendResult:
        self.now[url] += 1
        self.most[url] = max(self.most[url], self.now[url])
        eventlet.sleep(0.005)
        self.now[url] -= 1
        self.ids[headers["webhook-id"]] += 1
        return SendResult(200, {}, 5.0)


def test_a_large_claim_posts_at_most_eight_at_once_per_endpoint(database_factory) -> None:
    engine = create_engine(database_factory("integrations", "upgestao_integrations:migrations"))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    registry = Registry(uow, lambda role: frozenset(), SecretBox(KEY), production=False, overlap_s=60, now=now)
    for name in ("a", "b"):
        registry.register(name, f"http://{name}.test/hook", ["*"], [], "https://x.example/p")
    for _ in range(40):
        envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type="identity.customer_registered.v1",
                                 occurred_at=now(), actor=Actor("system", "system"), correlation_id=None,
                                 causation_id=None, data={"customer_id": new_id(), "fields": []})
        with uow() as unit:
            fanout.accept(unit, envelope)
    settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY, batch=200,
                                    claimed_per_endpoint=32)
    receiver = CountingReceiver()
    deliverer = Deliverer(unit_of_work=uow, owners=None, sender=receiver, box=SecretBox(KEY), settings=settings,
                          now=now, rng=random.Random(3), concurrently=eventlet.GreenPool(32).imap,
                          semaphore=Semaphore)
    first = deliverer.run_once()
    rest = deliverer.run_once()
    engine.dispose()
    assert (first, rest) == (64, 16)  # 32 of each endpoint, then the 8 left of each
    assert receiver.most == {"http://a.test/hook": 8, "http://b.test/hook": 8}
    assert len(receiver.ids) == 80 and set(receiver.ids.values()) == {1}


class GatedReceiver:
    """Answers the first ``free`` POSTs at once; the others wait until :meth:`let` lets them through."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.started = 0
        self.gate = eventlet.event.Event()
        self.ids: Counter[str] = Counter()

    def post(self, url: str, body: bytes, headers: dict) -> SendResult:
        self.started += 1
        ticket = self.started
        while ticket > self.free:
            self.gate.wait()
        self.ids[headers["webhook-id"]] += 1
        return SendResult(200, {}, 1.0)

    def let(self, free: int) -> None:
        self.free = free
        gate, self.gate = self.gate, eventlet.event.Event()
        gate.send()


def test_the_next_claim_comes_once_half_the_claims_are_free_while_a_batch_still_posts(database_factory) -> None:
    """A message leaves the in-flight count when its POST ends: once half the endpoint's claims are free
    (``refill``, 16 of 32 here), the next messages of the endpoint are claimed (and could be opened) while the
    batch's other POSTs are in flight -- never more than ``claimed_per_endpoint`` claimed and unposted, and
    not one wave of 8 at a time (each claim a transaction and two owners' RPCs)."""
    engine = create_engine(database_factory("integrations", "upgestao_integrations:migrations"))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    registry = Registry(uow, lambda role: frozenset(), SecretBox(KEY), production=False, overlap_s=60, now=now)
    registry.register("a", "http://a.test/hook", ["*"], [], "https://x.example/p")
    for _ in range(40):
        envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type="identity.customer_registered.v1",
                                 occurred_at=now(), actor=Actor("system", "system"), correlation_id=None,
                                 causation_id=None, data={"customer_id": new_id(), "fields": []})
        with uow() as unit:
            fanout.accept(unit, envelope)
    settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY, batch=200,
                                    claimed_per_endpoint=32)
    assert settings.refill == 16
    receiver = GatedReceiver(free=8)
    deliverer = Deliverer(unit_of_work=uow, owners=None, sender=receiver, box=SecretBox(KEY), settings=settings,
                          now=now, rng=random.Random(3), concurrently=eventlet.GreenPool(32).imap,
                          semaphore=Semaphore)
    first = deliverer.claim()
    assert len(first) == 32 and deliverer.claim() == []  # the endpoint's claims are all in flight
    batch = eventlet.spawn(deliverer.deliver, first)
    try:
        with eventlet.Timeout(10):
            while sum(receiver.ids.values()) < 8 or receiver.started < 16:
                eventlet.sleep(0.005)  # the first wave answered, the second waits at the gate
        assert deliverer.in_flight == {first[0].integration["id"]: 24}
        assert deliverer.claim() == []  # 8 free: not yet
        receiver.let(16)
        with eventlet.Timeout(10):
            while sum(receiver.ids.values()) < 16 or receiver.started < 24:
                eventlet.sleep(0.005)  # the second wave answered, the third waits at the gate
        assert deliverer.in_flight == {first[0].integration["id"]: 16}
        second = deliverer.claim()
        assert len(second) == 8  # the rest (40 in all), while 16 are still claimed: 32 at most
        assert deliverer.in_flight == {first[0].integration["id"]: 24}
    finally:
        receiver.let(10_000)
    with eventlet.Timeout(10):
        batch.wait()
        deliverer.deliver(second)
    assert deliverer.in_flight == {} and deliverer.claim() == []
    engine.dispose()
    assert len(receiver.ids) == 40 and set(receiver.ids.values()) == {1}


def test_an_endpoint_at_its_cap_does_not_hide_the_others_due_messages(database_factory) -> None:
    """Endpoint a has 200 older messages due and its claims all in flight; b's 5 newer ones are claimed at once.
    The claim's page of due messages used to be the oldest (twice the room): all a's, all skipped, nothing
    claimed, and b waited behind a's whole backlog."""
    engine = create_engine(database_factory("integrations", "upgestao_integrations:migrations"))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    registry = Registry(uow, lambda role: frozenset(), SecretBox(KEY), production=False, overlap_s=60, now=now)

    def queue(count: int) -> None:
        for _ in range(count):
            envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1,
                                     type="identity.customer_registered.v1", occurred_at=now(),
                                     actor=Actor("system", "system"), correlation_id=None, causation_id=None,
                                     data={"customer_id": new_id(), "fields": []})
            with uow() as unit:
                fanout.accept(unit, envelope)

    a = registry.register("a", "http://a.test/hook", ["*"], [], "https://x.example/p")
    queue(200)  # a's backlog
    b = registry.register("b", "http://b.test/hook", ["*"], [], "https://x.example/p")
    queue(5)  # 5 more for a, 5 for b
    settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY, batch=40,
                                    claimed_per_endpoint=32)  # a claim's room: 40 (the old page: 80, all a's)
    deliverer = Deliverer(unit_of_work=uow, owners=None, sender=CountingReceiver(), box=SecretBox(KEY),
                          settings=settings, now=now, rng=random.Random(3), concurrently=eventlet.GreenPool(32).imap,
                          semaphore=Semaphore)
    first = deliverer.claim()
    assert {c.integration["id"] for c in first} == {a["id"]} and len(first) == 32  # a's oldest, up to its cap
    second = deliverer.claim()
    assert {c.integration["id"] for c in second} == {b["id"]} and len(second) == 5
    assert deliverer.claim() == []  # a still at its cap, b's all claimed
    deliverer.deliver(first)
    assert {c.integration["id"] for c in deliverer.claim()} == {a["id"]}  # a's turn again
    engine.dispose()
