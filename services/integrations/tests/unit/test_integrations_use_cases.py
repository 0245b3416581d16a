"""The integrations use cases on a real unit of work over SQLite (this service's migrated tables), fake owners
(identity's and messaging's shares) and a fake HTTP sender: who gets which webhook (private notes and staff
chats never, subscriptions, subject.updated only to past recipients, erasures), what a payload carries, the
retry schedule, 410, abort, data gone, rotation, permissions. Every delivery is verified with the
``standardwebhooks`` package."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from upgestao_integrations.adapters.http_sender import SendResult
from upgestao_integrations.adapters.projections import projections
from upgestao_integrations.adapters.secret_box import SecretBox
from upgestao_integrations.adapters.sql_repositories import with_sql_repositories
from upgestao_integrations.adapters.tables import metadata
from upgestao_integrations.domain.events import IntegrationDisabled, SubjectErased
from upgestao_integrations.service_layer import fanout
from upgestao_integrations.service_layer.delivery import Deliverer
from upgestao_integrations.service_layer.messages import Messages
from upgestao_integrations.service_layer.registry import Registry
from upgestao_integrations.settings import IntegrationsSettings
from upgestao_kernel.context import RequestContext, system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import Actor, EventEnvelope, new_id
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.schema import events as events_table

KEY = bytes(range(32))
CUSTOMER = "5d7c3c9e-8f0a-4b55-9a57-0b7c2a1d9e11"
OTHER = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
EMAIL, NAME, PHONE, BODY = "ana.souza@example.com.br", "Ana Souza", "+5511987654321", "meu pedido 4411 atrasou"


class Clock:
    """The real time moved by an offset: the event log stamps events with the real time (a message is due
    from its queuing), and the tests move the dispatcher's time on past a retry's due time."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @now.setter
    def now(self, value: datetime) -> None:
        self.offset = value - datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeOwners:
    subjects: dict[str, dict | None] = field(default_factory=dict)
    messages: dict[str, dict | None] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)

    def share_subjects(self, subject_ids, fields, recipient, purpose) -> dict:
        self.calls.append(("share_subjects", tuple(subject_ids), tuple(fields), recipient))
        out = {}
        for sid in subject_ids:
            person = self.subjects.get(sid)
            out[sid] = None if person is None else {f: person.get(f) for f in fields}
        return {"subjects": out}

    def share_messages(self, message_ids, include_body, recipient, purpose) -> dict:
        self.calls.append(("share_messages", tuple(message_ids), include_body, recipient))
        out = {}
        for mid in message_ids:
            m = self.messages.get(mid)
            out[mid] = None if m is None else {k: v for k, v in m.items() if include_body or k != "body"}
        return {"messages": out}


@dataclass
class FakeSender:
    answers: list[SendResult] = field(default_factory=list)  # consumed in order; then 200
    sent: list[tuple[str, bytes, dict]] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: dict) -> SendResult:
        self.sent.append((url, body, dict(headers)))
        return self.answers.pop(0) if self.answers else SendResult(200, {}, 3.0)


@dataclass
class World:
    engine: Any
    clock: Clock
    owners: FakeOwners
    sender: FakeSender
    settings: IntegrationsSettings

    def uow(self, context: RequestContext | None = None):
        from upgestao_kernel.unit_of_work import UnitOfWork

        return with_sql_repositories(UnitOfWork(self.engine, "integrations", context or system_context(),
                                                projections=projections()))

    def registry(self, context: RequestContext | None = None, permissions=frozenset()) -> Registry:
        return Registry(lambda: self.uow(context), lambda role: permissions, SecretBox(KEY),
                        production=False, overlap_s=self.settings.secret_overlap_s, now=self.clock)

    def messages(self) -> Messages:
        return Messages(self.uow, lambda role: frozenset(), now=self.clock)

    def deliverer(self) -> Deliverer:
        return Deliverer(unit_of_work=self.uow, owners=self.owners, sender=self.sender, box=SecretBox(KEY),
                         settings=self.settings, now=self.clock, rng=random.Random(7))

    def register(self, events=("*",), fields=("email", "name", "phone", "conversations"), name="CRM") -> dict:
        return self.registry().register(name, "http://receiver.test/hook", list(events), list(fields),
                                        "https://crm.example/privacy")

    def publish(self, event_type: str, data: dict) -> fanout.Queued:
        envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type=event_type,
                                 occurred_at=self.clock(), actor=Actor("system", "system"), correlation_id=None,
                                 causation_id=None, data=data)
        with self.uow() as uow:
            return fanout.accept(uow, envelope)

    def rows(self, table: str) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(metadata.tables[table]))]

    def events_of(self, event_type: str) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(events_table)
                                                           .where(events_table.c.type == event_type))]

    def message(self, integration_id: str) -> dict:
        [row] = [r for r in self.rows("webhook_messages") if r["integration_id"] == integration_id]
        return row


@pytest.fixture
def world(tmp_path) -> World:
    url = f"sqlite:///{tmp_path / 'integrations.sqlite3'}"
    upgrade("upgestao_integrations:migrations", url)
    settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY,
                                    retry_delays_s=(0.0, 5.0, 300.0))
    owners = FakeOwners(subjects={CUSTOMER: {"email": EMAIL, "name": NAME, "phone": PHONE}})
    return World(create_engine(url), Clock(), owners, FakeSender(), settings)


def _message_created(world: World, mid: str = "m1", *, private: bool = False, chat: bool = False) -> fanout.Queued:
    world.owners.messages[mid] = {"message_id": mid, "conversation_id": "c1", "customer_id": CUSTOMER,
                                  "direction": "incoming", "created_at": world.clock().isoformat(),
                                  "edited_at": None, "deleted": False, "attachment_count": 0, "body": BODY}
    return world.publish("messaging.message_created.v1", {
        "message_id": mid, "conversation_id": None if chat else "c1", "chat_id": "chat1" if chat else None,
        "customer_id": None if chat else CUSTOMER, "author_id": None, "direction": "incoming",
        "private": private, "attachment_count": 0})


def _verified(secret: str, sent: tuple[str, bytes, dict]) -> dict:
    _, body, headers = sent
    return Webhook(secret).verify(body, headers)


def _deliver_all(world: World) -> None:
    for _ in range(10):
        if not world.deliverer().run_once():
            return


# -- the registry ---------------------------------------------------------------------------------


def test_register_shows_the_secret_once_and_refuses_a_never_shareable_field(world: World) -> None:
    created = world.register()
    assert created["id"].startswith("int_") and created["secret"].startswith("whsec_")
    assert "secret" not in world.registry().integration(created["id"])
    stored = world.rows("integration_secrets")
    assert len(stored) == 1 and created["secret"] not in json.dumps(stored, default=str)
    for name, value in world.events_of("integrations.integration_registered.v1")[0].items():
        assert created["secret"] not in str(value), name
    with pytest.raises(ServiceError) as refused:
        world.registry().register("X", "http://a.test/h", ["*"], ["email", "address"], "https://x.test/p")
    assert refused.value.status == 422 and "address" in json.dumps(refused.value.extensions)


def test_a_role_without_integrations_manage_is_refused_and_the_refusal_audited(world: World) -> None:
    agent = RequestContext(request_id=new_id(), actor_id=new_id(), actor_role="agent")
    with pytest.raises(ServiceError) as refused:
        world.registry(agent).integrations()
    assert refused.value.status == 403
    admin = RequestContext(request_id=new_id(), actor_id=new_id(), actor_role="admin")
    assert world.registry(admin, frozenset({"integrations.manage"})).integrations()["items"] == []


# -- fan-out ----------------------------------------------------------------------------------------


def test_private_notes_and_staff_chats_never_become_webhooks(world: World) -> None:
    world.register()
    assert _message_created(world, "m1", private=True).messages == 0
    assert _message_created(world, "m2", chat=True).messages == 0
    assert world.publish("messaging.message_edited.v1", {"message_id": "m2", "conversation_id": None,
                                                         "chat_id": "chat1"}).messages == 0
    assert world.rows("webhook_messages") == []


def test_only_enabled_subscribed_integrations_get_a_type(world: World) -> None:
    everything = world.register()["id"]
    only_customers = world.register(events=["customer.created"])["id"]
    disabled = world.register()["id"]
    world.registry().update(disabled, {"status": "disabled"})
    queued = _message_created(world)
    assert queued.integrations == [everything]
    assert set(world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER,
                                                                 "fields": ["email"]}).integrations) \
        == {everything, only_customers}


def test_a_redelivered_event_queues_nothing_twice(world: World) -> None:
    world.register()
    envelope = EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type="identity.customer_registered.v1",
                             occurred_at=world.clock(), actor=Actor("system", "system"), correlation_id=None,
                             causation_id=None, data={"customer_id": CUSTOMER, "fields": ["email"]})
    for _ in range(2):
        with world.uow() as uow:
            fanout.accept(uow, envelope)
    assert len(world.rows("webhook_messages")) == 1


def _envelope(world: World, event_type: str, data: dict, correlation_id: str | None = None) -> EventEnvelope:
    return EventEnvelope(event_id=new_id(), stream_id="x-1", version=1, type=event_type, occurred_at=world.clock(),
                         actor=Actor("system", "system"), correlation_id=correlation_id, causation_id=None, data=data)


def _caused_by(envelope: EventEnvelope) -> RequestContext:
    return replace(system_context(), correlation_id=envelope.correlation_id, causation_id=envelope.event_id)


def test_a_batch_queues_each_event_once_each_caused_by_its_own_event(world: World) -> None:
    """One unit of work for a batch: an event twice in it, or redelivered in a later batch, queues nothing more;
    each queued message's event is caused by (and correlated with) its own source event."""
    world.register()
    registered = [_envelope(world, "identity.customer_registered.v1", {"customer_id": c, "fields": ["email"]},
                            correlation_id=f"req-{i}") for i, c in enumerate((CUSTOMER, OTHER))]
    with world.uow() as uow:
        first = fanout.accept_many(uow, "integrations.on_identity_event", [registered[0], registered[1],
                                                                           registered[0]], _caused_by)
    assert (first.handled, first.duplicates, first.messages) == (2, 1, 2)
    again = _envelope(world, "identity.customer_registered.v1", {"customer_id": OTHER, "fields": ["email"]})
    with world.uow() as uow:
        second = fanout.accept_many(uow, "integrations.on_identity_event", [registered[1], again], _caused_by)
    assert (second.handled, second.duplicates, second.messages) == (1, 1, 1)
    assert sorted(r["event_id"] for r in world.rows("webhook_messages")) \
        == sorted([registered[0].event_id, registered[1].event_id, again.event_id])
    queued = {e["data"]["event_id"]: e for e in world.events_of("integrations.webhook_message_queued.v1")}
    for envelope in (*registered, again):
        assert queued[envelope.event_id]["causation_id"] == envelope.event_id
        assert queued[envelope.event_id]["actor_id"] == "system"
    assert [queued[e.event_id]["correlation_id"] for e in registered] == ["req-0", "req-1"]


def test_a_batch_is_handled_in_its_order_an_erasure_cancels_what_came_before_it(world: World) -> None:
    world.register(fields=["email"])
    world.owners.messages["m1"] = {"message_id": "m1", "conversation_id": "c1", "customer_id": CUSTOMER}
    created = _envelope(world, "messaging.message_created.v1", {
        "message_id": "m1", "conversation_id": "c1", "chat_id": None, "customer_id": CUSTOMER, "private": False})
    erased = _envelope(world, "privacy.erasure_requested.v1", {
        "request_id": new_id(), "subject_id": CUSTOMER, "mode": "deletion", "recipients": []})
    with world.uow() as uow:
        accepted = fanout.accept_many(uow, "integrations.test", [created, erased], _caused_by)
    assert accepted.handled == 2
    assert {r["event_type"]: r["status"] for r in world.rows("webhook_messages")} == {"message.created": "canceled"}


def test_the_messages_of_a_batch_are_delivered_in_their_events_order(world: World) -> None:
    """A batch's messages are queued at one time (one save_many): the dispatcher takes them in their source
    events' order, as it took the messages of events handled one by one."""
    world.register(fields=["email"])
    customers = [new_id() for _ in range(8)]
    for customer in customers:
        world.owners.subjects[customer] = {"email": EMAIL}
    events = [_envelope(world, "identity.customer_registered.v1", {"customer_id": c, "fields": ["email"]})
              for c in customers]
    with world.uow() as uow:
        fanout.accept_many(uow, "integrations.on_identity_event", events, _caused_by)
    assert len({r["next_attempt_at"] for r in world.rows("webhook_messages")}) == 1
    _deliver_all(world)
    assert [json.loads(body)["data"]["customer_id"] for _, body, _ in world.sender.sent] == customers


def test_a_batch_that_fails_leaves_nothing_claimed(world: World) -> None:
    """Nothing of a batch is kept when one of its events fails: taken again, all of it is handled."""
    world.register()
    good = _envelope(world, "identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    bad = _envelope(world, "identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})

    def failing(envelope: EventEnvelope) -> RequestContext:
        if envelope is bad:
            raise RuntimeError("the database went away")
        return _caused_by(envelope)

    with pytest.raises(RuntimeError), world.uow() as uow:
        fanout.accept_many(uow, "integrations.on_identity_event", [good, bad], failing)
    assert world.rows("webhook_messages") == []
    with world.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM processed_events")).scalar() == 0
    with world.uow() as uow:
        assert fanout.accept_many(uow, "integrations.on_identity_event", [good, bad], _caused_by).messages == 2


# -- delivery ---------------------------------------------------------------------------------------


def test_a_delivery_carries_only_the_allowed_fields_signed_and_records_who_received_whose_data(world: World) -> None:
    created = world.register(fields=["email"])
    _message_created(world)
    _deliver_all(world)
    [sent] = world.sender.sent
    payload = _verified(created["secret"], sent)
    assert payload["type"] == "message.created"
    assert payload["data"]["customer"] == {"id": CUSTOMER, "email": EMAIL}
    assert "body" not in payload["data"] and NAME not in sent[1].decode() and PHONE not in sent[1].decode()
    assert ("share_messages", ("m1",), False, f"integration:{created['id']}") in world.owners.calls
    assert ("share_subjects", (CUSTOMER,), ("email",), f"integration:{created['id']}") in world.owners.calls
    assert world.message(created["id"])["status"] == "succeeded"
    [shared] = world.rows("shared_subjects")
    assert (shared["integration_id"], shared["subject_id"], shared["fields"]) == (created["id"], CUSTOMER, ["email"])


def test_the_body_goes_only_with_conversations(world: World) -> None:
    created = world.register(fields=["conversations"])
    _message_created(world)
    _deliver_all(world)
    payload = _verified(created["secret"], world.sender.sent[0])
    assert payload["data"]["body"] == BODY and payload["data"]["customer"] == {"id": CUSTOMER}


def test_subject_updated_goes_only_to_past_recipients_allowed_the_changed_field(world: World) -> None:
    got_email = world.register(fields=["email"])
    got_name_only = world.register(fields=["name"])
    world.register(events=["customer.created"], fields=["email"])  # never received this person's data
    _message_created(world)
    _deliver_all(world)
    world.sender.sent.clear()
    world.owners.subjects[CUSTOMER] = {"email": "ana.nova@example.com.br", "name": NAME, "phone": PHONE}
    queued = world.publish("identity.customer_changed.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    assert queued.integrations == [got_email["id"]]
    _deliver_all(world)
    [sent] = world.sender.sent
    payload = _verified(got_email["secret"], sent)
    assert payload["type"] == "subject.updated"
    assert payload["data"] == {"subject_id": CUSTOMER, "changed": {"email": "ana.nova@example.com.br"}}
    assert got_name_only["id"] not in queued.integrations


def test_an_erasure_reaches_every_past_recipient_and_cancels_the_persons_pending_messages(world: World) -> None:
    received = world.register(fields=["email"])
    named_by_privacy = world.register(events=["conversation.assigned"], fields=["name"])
    _message_created(world, "m1")
    _deliver_all(world)
    _message_created(world, "m2")  # pending when the erasure comes
    request_id = new_id()
    queued = world.publish("privacy.erasure_requested.v1", {
        "request_id": request_id, "subject_id": CUSTOMER, "mode": "deletion", "participants": ["integrations"],
        "recipients": [f"integration:{named_by_privacy['id']}", "someone-else"]})
    assert set(queued.integrations) == {received["id"], named_by_privacy["id"]}
    statuses = {r["event_type"]: r["status"] for r in world.rows("webhook_messages")
                if r["data"].get("message_id") == "m2"}
    assert statuses == {"message.created": "canceled"}
    [confirmation] = world.events_of(SubjectErased.type)
    assert confirmation["stream_id"] == f"erasure-{request_id}"
    world.sender.sent.clear()
    _deliver_all(world)
    types = sorted(json.loads(body)["type"] for _, body, _ in world.sender.sent)
    assert types == ["subject.erased", "subject.erased"]
    assert all(EMAIL not in body.decode() for _, body, _ in world.sender.sent)


def test_a_failing_receiver_gets_the_same_webhook_id_on_each_retry(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(500, {}, 2.0), SendResult(None, {}, 15000.0, error="timeout")]
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    world.deliverer().run_once()
    row = world.message(created["id"])
    assert row["status"] == "failed" and row["next_attempt_at"] is not None
    world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
    world.deliverer().run_once()
    row = world.message(created["id"])
    world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
    world.deliverer().run_once()
    ids = {headers["webhook-id"] for _, _, headers in world.sender.sent}
    assert len(world.sender.sent) == 3 and ids == {row["id"]}
    detail = world.messages().webhook_message(created["id"], row["id"])
    assert detail["status"] == "succeeded"
    assert [(a["number"], a["outcome"], a["status_code"]) for a in detail["attempts"]] == [
        (1, "failed", 500), (2, "timeout", None), (3, "succeeded", 200)]


def test_the_last_scheduled_attempt_fails_for_good_then_resend_and_recover_deliver(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(500, {}, 1.0)] * 3
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    for _ in range(3):
        world.deliverer().run_once()
        row = world.message(created["id"])
        if row["next_attempt_at"]:
            world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
    row = world.message(created["id"])
    assert (row["status"], row["next_attempt_at"], row["attempts"]) == ("failed", None, 3)
    world.messages().resend(created["id"], row["id"])
    _deliver_all(world)
    assert world.message(created["id"])["status"] == "succeeded"
    with pytest.raises(ServiceError) as refused:
        world.messages().resend(created["id"], "msg_" + "0" * 32)
    assert refused.value.status == 404
    # recover: every message failed for good since a time is queued again, by a job with progress
    world.sender.answers = [SendResult(500, {}, 1.0)] * 3
    world.publish("identity.customer_registered.v1", {"customer_id": OTHER, "fields": ["email"]})
    world.owners.subjects[OTHER] = {"email": "b@example.com", "name": "B", "phone": None}
    for _ in range(3):
        world.deliverer().run_once()
        due = [r["next_attempt_at"] for r in world.rows("webhook_messages") if r["next_attempt_at"]]
        if due:
            world.clock.now = max(due) + timedelta(seconds=1)
    job = world.messages().recover(created["id"], (world.clock() - timedelta(hours=1)).isoformat())
    assert (job["status"], job["total"]) == ("running", 1)
    world.messages().run_recovery(job["id"])
    assert world.messages().recovery(created["id"], job["id"])["status"] == "completed"
    _deliver_all(world)
    assert {r["status"] for r in world.rows("webhook_messages")} == {"succeeded"}


def test_410_disables_the_endpoint_at_once(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(410, {}, 1.0)]
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    world.deliverer().run_once()
    integration = world.registry().integration(created["id"])
    assert (integration["status"], integration["disabled_reason"]) == ("disabled", "gone")
    assert [e["data"]["reason"] for e in world.events_of(IntegrationDisabled.type)] == ["gone"]
    assert world.message(created["id"])["next_attempt_at"] is None


def test_abort_message_stops_the_retries(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(422, {"webhook-delivery": "abort-message"}, 1.0)]
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    world.deliverer().run_once()
    row = world.message(created["id"])
    assert (row["status"], row["next_attempt_at"]) == ("aborted", None)
    world.clock.now += timedelta(hours=1)
    assert world.deliverer().run_once() == 0


def test_a_refused_address_is_a_refused_attempt(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(None, {}, 0.1, refused="127.0.0.1 is a loopback address")]
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    world.deliverer().run_once()
    row = world.message(created["id"])
    [attempt] = world.messages().webhook_message(created["id"], row["id"])["attempts"]
    assert attempt["outcome"] == "refused" and "loopback" in attempt["error"]


def test_a_message_whose_data_is_gone_is_canceled_not_sent(world: World) -> None:
    created = world.register()
    world.publish("identity.customer_registered.v1", {"customer_id": OTHER, "fields": ["email"]})  # unknown
    world.deliverer().run_once()
    assert world.message(created["id"])["status"] == "canceled" and world.sender.sent == []


def test_a_claim_left_by_a_dead_process_is_retried_with_the_same_id(world: World) -> None:
    created = world.register()
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    deliverer = world.deliverer()
    claimed = deliverer.claim()  # the process dies after its claim committed
    assert len(claimed) == 1 and world.message(created["id"])["status"] == "delivering"
    world.clock.now += timedelta(seconds=world.settings.stale_after_s + 1)
    world.deliverer().run_once()  # settled: a failed attempt, retried on schedule
    row = world.message(created["id"])
    assert (row["status"], row["attempts"]) == ("failed", 1) and row["next_attempt_at"] is not None
    world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
    _deliver_all(world)
    row = world.message(created["id"])
    assert row["status"] == "succeeded" and row["attempts"] == 2
    assert world.sender.sent[0][2]["webhook-id"] == row["id"]


def test_a_claim_is_a_lease_and_the_attempt_enters_the_log_once_with_its_outcome(world: World) -> None:
    """A claim appends nothing (the row is leased); the attempt is one event, with its start and its end."""
    created = world.register()
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    queued = world.message(created["id"])
    deliverer = world.deliverer()
    [claimed] = deliverer.claim()
    leased = world.message(created["id"])
    assert (leased["status"], leased["attempts"], leased["version"]) == ("delivering", 1, queued["version"])
    assert leased["claimed_at"] is not None and leased["next_attempt_at"] is None
    assert world.events_of("integrations.webhook_attempt_started.v1") == []
    assert world.rows("webhook_attempts") == []  # recorded when it ends
    deliverer.deliver([claimed])
    [finished] = world.events_of("integrations.webhook_attempt_finished.v1")
    assert (finished["version"], finished["data"]["attempt"]) == (queued["version"] + 1, 1)
    [attempt] = world.rows("webhook_attempts")
    assert attempt["started_at"].replace(tzinfo=UTC) == leased["claimed_at"].replace(tzinfo=UTC)
    assert (attempt["number"], attempt["outcome"], attempt["status_code"]) == (1, "succeeded", 200)
    assert attempt["finished_at"] is not None
    row = world.message(created["id"])
    assert (row["status"], row["attempts"], row["claimed_at"]) == ("succeeded", 1, None)


def test_a_lease_takes_only_messages_still_waiting_for_an_attempt(world: World) -> None:
    """What another transaction settled between the due read and the lease is not leased: canceled, succeeded,
    failed for good, or already delivering."""
    created = world.register()
    for _ in range(5):
        world.publish("identity.customer_registered.v1", {"customer_id": new_id(), "fields": ["email"]})
    ids = sorted(r["id"] for r in world.rows("webhook_messages") if r["integration_id"] == created["id"])
    with world.engine.begin() as conn:
        table = metadata.tables["webhook_messages"]
        for message_id, status in zip(ids, ("canceled", "succeeded", "failed", "delivering"), strict=False):
            conn.execute(table.update().where(table.c.id == message_id).values(status=status, next_attempt_at=None))
    with world.uow() as uow:
        leased = uow.messages.lease(ids, world.clock())
    assert list(leased) == [ids[4]] and leased[ids[4]]["attempts"] == 1


def test_a_message_canceled_under_its_claim_leaves_the_batchs_other_outcomes_recorded(world: World) -> None:
    """An erasure that read a message as pending just before a claim leased it cancels it at the version the
    lease left unchanged: that message's outcome conflicts, the rest of the batch is recorded (not left claimed
    for the stale window and POSTed again)."""
    from upgestao_integrations.domain.messages import WebhookMessage

    created = world.register()
    for _ in range(3):
        world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    before_lease = {r["id"]: r for r in world.rows("webhook_messages")}
    victim = sorted(before_lease)[1]
    posting = world.sender.post

    def post_and_cancel(url: str, body: bytes, headers: dict) -> SendResult:
        if not world.events_of("integrations.webhook_message_canceled.v1"):
            row = before_lease[victim]  # as the erasure read it, before the lease
            stale = WebhookMessage.at(victim, version=row["version"], status=row["status"], attempts=0,
                                      integration_id=created["id"], next_attempt_at=row["next_attempt_at"])
            assert stale.cancel("the person's data was erased")
            with world.uow() as uow:
                uow.save(stale)
        return posting(url, body, headers)

    world.sender.post = post_and_cancel
    assert world.deliverer().run_once() == 3
    statuses = {r["id"]: r["status"] for r in world.rows("webhook_messages")}
    assert statuses.pop(victim) == "canceled"
    assert set(statuses.values()) == {"succeeded"}
    assert len(world.events_of("integrations.webhook_attempt_finished.v1")) == 2


def test_a_log_written_when_claims_were_events_replays_and_its_claim_still_ends(world: World) -> None:
    """A message claimed by the code before leases (its ``webhook_attempt_started`` appended, its attempt's row
    opened) is settled by today's dispatcher; the read models equal a replay of the whole log."""
    from upgestao_integrations.domain.events import WebhookAttemptStarted
    from upgestao_integrations.domain.messages import WebhookMessage
    from upgestao_kernel.projections import rebuild, snapshot

    created = world.register()
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    queued = world.message(created["id"])
    started = world.clock()
    old_claim = WebhookMessage.at(queued["id"], version=queued["version"], status=queued["status"], attempts=0,
                                  integration_id=created["id"])
    old_claim.trigger(WebhookAttemptStarted(attempt=1, started_at=started.isoformat()))
    with world.uow() as uow:  # what the old claim appended
        uow.save(old_claim)
    row = world.message(created["id"])
    assert (row["status"], row["attempts"]) == ("delivering", 1)
    assert [a["finished_at"] for a in world.rows("webhook_attempts")] == [None]
    world.clock.now += timedelta(seconds=world.settings.stale_after_s + 1)
    world.deliverer().run_once()  # settled as interrupted, at the version the old claim left
    row = world.message(created["id"])
    assert (row["status"], row["attempts"]) == ("failed", 1)
    [attempt] = world.rows("webhook_attempts")
    assert attempt["outcome"] == "error" and attempt["finished_at"] is not None
    world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
    _deliver_all(world)  # attempt 2: a lease
    assert world.message(created["id"])["status"] == "succeeded"
    assert sorted(a["number"] for a in world.rows("webhook_attempts")) == [1, 2]
    with world.engine.connect() as conn:
        delivered = snapshot(conn, projections())
    rebuild(world.engine, projections())
    with world.engine.connect() as conn:
        assert snapshot(conn, projections()) == delivered


def test_during_a_rotation_both_secrets_sign_and_both_verify(world: World) -> None:
    created = world.register()
    rotated = world.registry().rotate_secret(created["id"])
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    _deliver_all(world)
    [sent] = world.sender.sent
    assert len(sent[2]["webhook-signature"].split()) == 2
    assert _verified(created["secret"], sent) == _verified(rotated["secret"], sent)
    world.clock.now += timedelta(seconds=world.settings.secret_overlap_s + 1)
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["name"]})
    _deliver_all(world)
    assert len(world.sender.sent[-1][2]["webhook-signature"].split()) == 1


def test_an_endpoint_failing_long_enough_over_a_spread_is_disabled_as_failing(world: World) -> None:
    world.settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=KEY,
                                          retry_delays_s=(0.0, 5.0, 5.0, 5.0), disable_after_s=8.0,
                                          failure_spread_s=4.0)
    created = world.register()
    world.sender.answers = [SendResult(500, {}, 1.0)] * 4
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    for _ in range(4):
        world.deliverer().run_once()
        row = world.message(created["id"])
        if row["next_attempt_at"]:
            world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
        if world.registry().integration(created["id"])["status"] == "disabled":
            break
    integration = world.registry().integration(created["id"])
    assert (integration["status"], integration["disabled_reason"]) == ("disabled", "failing")
    assert [e["data"]["reason"] for e in world.events_of(IntegrationDisabled.type)] == ["failing"]


def test_a_throttled_endpoint_is_held_back_until_its_time(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(429, {"retry-after": "30"}, 1.0)]
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    world.deliverer().run_once()
    row = world.message(created["id"])
    assert row["status"] == "failed" and row["next_attempt_at"] >= world.clock() + timedelta(seconds=29)
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["name"]})
    assert world.deliverer().run_once() == 0  # a new message to the same endpoint waits too
    world.clock.now += timedelta(seconds=31)
    _deliver_all(world)
    assert {r["status"] for r in world.rows("webhook_messages")} == {"succeeded"}


def test_a_claimed_message_is_not_claimed_again_by_another_dispatcher(world: World) -> None:
    world.register()
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    first, second = world.deliverer(), world.deliverer()
    assert len(first.claim()) == 1
    assert second.claim() == []


def test_a_recovery_left_running_by_a_stopped_process_is_resumed(world: World) -> None:
    created = world.register()
    world.sender.answers = [SendResult(500, {}, 1.0)] * 3
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    for _ in range(3):
        world.deliverer().run_once()
        row = world.message(created["id"])
        if row["next_attempt_at"]:
            world.clock.now = row["next_attempt_at"] + timedelta(seconds=1)
    job = world.messages().recover(created["id"], (world.clock() - timedelta(hours=1)).isoformat())  # not spawned
    assert world.messages().recovery(created["id"], job["id"])["status"] == "running"
    assert world.messages().resume_recoveries() == 1  # the next start
    done = world.messages().recovery(created["id"], job["id"])
    assert (done["status"], done["queued"]) == ("completed", 1)


@dataclass
class FakeIdentity:
    staff: list[str]
    contacts_asked: list[list[str]] = field(default_factory=list)

    def staff_ids(self, permission: str) -> dict:
        assert permission == "integrations.manage"
        return {"ids": list(self.staff)}

    def contacts(self, ids: list[str]) -> dict:
        self.contacts_asked.append(list(ids))
        return {"items": {sid: {"to": f"{sid[:4]}@example.com", "name": None, "locale": "pt-BR"} for sid in ids}}


def test_the_notice_of_a_disabling_names_the_admins_for_the_notifier_only(world: World) -> None:
    from upgestao_integrations.service_layer import notices

    created = world.register(name="CRM Acme")
    world.sender.answers = [SendResult(410, {}, 1.0)]
    world.publish("identity.customer_registered.v1", {"customer_id": CUSTOMER, "fields": ["email"]})
    world.deliverer().run_once()
    [disabled] = world.events_of(IntegrationDisabled.type)
    admins = FakeIdentity([new_id(), new_id()])
    notifier = RequestContext(request_id=new_id(), caller_service="notifier")
    with world.uow(notifier) as uow:
        answer = notices.notice(uow, admins, disabled["event_id"])
    assert answer["kind"] == "integration_disabled" and answer["next"] is None
    assert answer["data"] == {"integration_id": created["id"], "integration_name": "CRM Acme", "reason": "gone"}
    assert sorted(r["id"] for r in answer["recipients"]) == sorted(admins.staff)
    with world.uow(notifier) as uow, pytest.raises(ServiceError) as missing:
        notices.notice(uow, admins, new_id())
    assert missing.value.status == 404
    someone = RequestContext(request_id=new_id(), caller_service="messaging")
    with pytest.raises(ServiceError) as refused, world.uow(someone) as uow:
        notices.notice(uow, admins, disabled["event_id"])
    assert refused.value.status == 403


def test_in_production_an_endpoint_must_be_https(world: World) -> None:
    production = Registry(world.uow, lambda role: frozenset(), SecretBox(KEY), production=True, overlap_s=60,
                          now=world.clock)
    with pytest.raises(ServiceError) as refused:
        production.register("CRM", "http://crm.example/hook", ["*"], ["email"], "https://crm.example/privacy")
    assert refused.value.status == 422 and "url" in json.dumps(refused.value.extensions)
    assert production.register("CRM", "https://crm.example/hook", ["*"], ["email"],
                               "https://crm.example/privacy")["url"] == "https://crm.example/hook"


SOURCES = {  # a source event of each routed type, with the ids the owners know
    "messaging.conversation_opened.v1": {"conversation_id": "c1", "customer_id": CUSTOMER, "channel": "email",
                                         "team_id": None, "assignee_id": None},
    "messaging.conversation_status_changed.v1": {"conversation_id": "c1", "customer_id": CUSTOMER,
                                                 "status": "resolved", "previous": "open", "snoozed_until": None},
    "messaging.message_created.v1": {"message_id": "m1", "conversation_id": "c1", "chat_id": None,
                                     "customer_id": CUSTOMER, "private": False},
    "messaging.message_edited.v1": {"message_id": "m1", "conversation_id": "c1", "chat_id": None},
    "identity.customer_registered.v1": {"customer_id": CUSTOMER, "fields": ["email"]},
    "identity.customer_changed.v1": {"customer_id": CUSTOMER, "fields": ["email", "full_name", "phone"]},
}
VALUES = {"email": EMAIL, "name": NAME, "phone": PHONE, "conversations": BODY}


@given(fields=st.sets(st.sampled_from(sorted(VALUES))), source=st.sampled_from(sorted(SOURCES)))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_field_the_integration_may_not_receive_is_in_no_payload(world: World, fields, source) -> None:
    for row in world.rows("integrations"):  # only this example's integration is enabled
        if row["status"] == "enabled":
            world.registry().update(row["id"], {"status": "disabled"})
    world.sender.sent.clear()
    created = world.register(fields=sorted(fields))
    world.owners.messages["m1"] = {"message_id": "m1", "conversation_id": "c1", "customer_id": CUSTOMER,
                                   "direction": "incoming", "created_at": world.clock().isoformat(),
                                   "edited_at": None, "deleted": False, "attachment_count": 0, "body": BODY}
    _message_created(world, "seed")  # the person's data reaches it first (subject.updated needs a past share)
    _deliver_all(world)
    world.publish(source, SOURCES[source])
    _deliver_all(world)
    bodies = [body.decode() for _, body, headers in world.sender.sent]
    assert len(bodies) == 1 + (source != "identity.customer_changed.v1" or bool(fields & {"email", "name", "phone"})
                               and bool(fields))
    for _, body, headers in world.sender.sent:
        Webhook(created["secret"]).verify(body, headers)
    for name, value in VALUES.items():
        if name not in fields:
            assert all(value not in body for body in bodies), (name, source, bodies)
