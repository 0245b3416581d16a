"""Two dispatchers (two replicas) on one PostgreSQL database never both attempt a message: each claims its
batch with ``SKIP LOCKED`` and a version-checked claim event, and every message is POSTed exactly once."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import eventlet
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


class SlowReceiver:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()

    def post(self, url: str, body: bytes, headers: dict) -> SendResult:
        eventlet.sleep(0.01)  # the other dispatcher runs meanwhile
        self.ids[headers["webhook-id"]] += 1
        return SendResult(200, {}, 10.0)


def test_two_dispatchers_deliver_every_message_once(database_factory) -> None:
    engine = create_engine(database_factory("integrations", "upgestao_integrations:migrations"))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    registry = Registry(uow, lambda role: frozenset(), SecretBox(KEY), production=False, overlap_s=60, now=now)
    for name in ("A", "B"):
        registry.register(name, f"http://{name.lower()}.test/hook", ["*"], [], "https://x.example/p")
    for _ in range(30):
        envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type="identity.customer_registered.v1",
                                 occurred_at=now(), actor=Actor("system", "system"), correlation_id=None,
                                 causation_id=None, data={"customer_id": new_id(), "fields": []})
        with uow() as unit:
            fanout.accept(unit, envelope)
    settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY, batch=10)
    receiver = SlowReceiver()

    def replica(seed: int) -> int:
        deliverer = Deliverer(unit_of_work=uow, owners=None, sender=receiver, box=SecretBox(KEY),
                              settings=settings, now=now, rng=random.Random(seed),
                              concurrently=eventlet.GreenPool(8).imap)
        attempted = 0
        for _ in range(50):
            n = deliverer.run_once()
            attempted += n
            if n == 0:
                break
        return attempted

    threads = [eventlet.spawn(replica, seed) for seed in (1, 2)]
    attempted = [t.wait() for t in threads]
    engine.dispose()
    assert sum(attempted) == 60 and all(attempted), attempted  # both worked, 60 attempts in all
    assert len(receiver.ids) == 60 and set(receiver.ids.values()) == {1}
