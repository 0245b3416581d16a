"""The delivery log's read models after batched claims and outcomes (``save_many``: the projection's
``apply_many``) are exactly what replaying the log event by event (``rebuild``) gives back."""

from __future__ import annotations

import random
from datetime import UTC, datetime

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
from upgestao_kernel.projections import rebuild, snapshot
from upgestao_kernel.unit_of_work import UnitOfWork

KEY = bytes(range(32))


class Owners:
    def share_subjects(self, subject_ids: list, fields: list, recipient: str, purpose: str) -> dict:
        return {"subjects": {sid: {f: f"{f}-of-{sid[:4]}" for f in fields} for sid in subject_ids}}

    def share_messages(self, message_ids: list, include_body: bool, recipient: str, purpose: str) -> dict:
        return {"messages": {}}


class MixedReceiver:
    """Succeeds, fails (retried), aborts, in turn."""

    def __init__(self) -> None:
        self.n = 0

    def post(self, url: str, body: bytes, headers: dict) -> SendResult:
        self.n += 1
        return [SendResult(200, {}, 3.0), SendResult(500, {}, 4.0),
                SendResult(409, {"webhook-delivery": "abort-message"}, 5.0)][self.n % 3]


def test_batched_claims_and_outcomes_project_as_a_replay_does(database_factory) -> None:
    engine = create_engine(database_factory("integrations", "upgestao_integrations:migrations"))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    registry = Registry(uow, lambda role: frozenset(), SecretBox(KEY), production=False, overlap_s=60, now=now)
    registry.register("CRM", "http://crm.test/hook", ["*"], ["email", "name"], "https://crm.example/privacy")
    customers = [new_id() for _ in range(2)]  # each shared several times: within a batch and across batches
    for n in range(12):
        envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type="identity.customer_registered.v1",
                                 occurred_at=now(), actor=Actor("system", "system"), correlation_id=None,
                                 causation_id=None, data={"customer_id": customers[n % 2], "fields": []})
        with uow() as unit:
            fanout.accept(unit, envelope)
    settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY, batch=8,
                                    retry_delays_s=(0.0, 0.0))
    deliverer = Deliverer(unit_of_work=uow, owners=Owners(), sender=MixedReceiver(), box=SecretBox(KEY),
                          settings=settings, now=now, rng=random.Random(1))
    attempts = sum(deliverer.run_once() for _ in range(12))  # batches of 8 at most (per endpoint)
    with engine.connect() as conn:
        delivered = snapshot(conn, projections())
    rebuild(engine, projections())
    with engine.connect() as conn:
        replayed = snapshot(conn, projections())
    engine.dispose()
    statuses = sorted(row[8] for row in delivered["webhook_messages"])
    assert attempts > 12 and {"succeeded", "aborted", "failed"} <= set(statuses), statuses
    assert len(delivered["webhook_attempts"]) == attempts and len(delivered["shared_subjects"]) == 2
    assert all(row[5] is not None for row in delivered["webhook_attempts"])  # every attempt has its outcome
    assert replayed == delivered


def test_an_event_queued_again_adds_only_the_missing_messages(database_factory) -> None:
    """The messages of one event are queued in one statement; when one of them exists (the same event and
    integration), the others are still queued, the existing one left as it is."""
    engine = create_engine(database_factory("integrations", "upgestao_integrations:migrations"))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type="identity.customer_registered.v1",
                             occurred_at=now(), actor=Actor("system", "system"), correlation_id=None,
                             causation_id=None, data={"customer_id": new_id(), "fields": []})
    def queue(integration_ids: list[str]) -> None:
        with uow() as unit:
            pending = fanout._Pending(unit)
            pending.add(envelope, "customer.created", integration_ids, None, {"customer_id": "c"})
            pending.save()

    queue(["int_a"])
    queue(["int_a", "int_b", "int_c"])
    with engine.connect() as conn:
        delivered = snapshot(conn, projections())
    rebuild(engine, projections())
    with engine.connect() as conn:
        replayed = snapshot(conn, projections())
    engine.dispose()
    assert sorted((row[1], row[14]) for row in delivered["webhook_messages"]) == [
        ("int_a", 1), ("int_b", 1), ("int_c", 1)]
    assert replayed == delivered
