"""The notifier's use cases on the in-memory unit of work, a fake owner and a fake SMTP server:
exactly one e-mail per (event, recipient), retries, permanent failures, suppression, interrupted claims."""

from __future__ import annotations

import email
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.context import RequestContext, system_context
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import new_id
from upgestao_kernel.leaks import LeakScanner
from upgestao_notifier.adapters.memory_repositories import memory_units
from upgestao_notifier.adapters.ports import ACCEPTED, Notice, NoticeGone, Recipient
from upgestao_notifier.adapters.projections import DELIVERIES, SUPPRESSIONS
from upgestao_notifier.adapters.smtp import SendOutcome
from upgestao_notifier.adapters.templates import Templates
from upgestao_notifier.domain.deliveries import RetryPolicy, delivery_id_for
from upgestao_notifier.service_layer.dispatch import Attempt, Dispatcher
from upgestao_notifier.service_layer.queries import DeliveryQueries
from upgestao_notifier.settings import NotifierSettings

RESET = "identity.password_reset_requested.v1"
COMPLETED = "privacy.request_completed.v1"
BREACH = "privacy.breach_notice_requested.v1"
ADDRESS = "ana.souza@example.com.br"
TOKEN = "tok-Zx9_reset-secret-value-0123456789"
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Clock:
    """Starts at the real time: the event log stamps events with it, and the sweeper compares."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Owner:
    """A service answering ``notice``: one recipient per notice unless told otherwise."""

    notices: dict[str, Notice] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    down: bool = False

    def add(self, event_id: str, kind: str, recipients: list[Recipient], data: dict | None = None,
            campaign_id: str | None = None) -> None:
        self.notices[event_id] = Notice(id=event_id, kind=kind, campaign_id=campaign_id, data=data or {},
                                        recipients=recipients, next=None)

    def fetch(self, source: str, notice_id: str, *, recipient_id: str | None = None,
              cursor: str | None = None) -> Notice:
        self.calls.append((source, notice_id, recipient_id))
        if self.down:
            raise ServiceError("service-unavailable", "down", 503)
        notice = self.notices.get(notice_id)
        if notice is None:
            raise NoticeGone(notice_id)
        if recipient_id is not None:
            return replace(notice, recipients=[r for r in notice.recipients if r.id == recipient_id])
        return notice


@dataclass
class Server:
    """An SMTP server: accepts unless told to answer something else for the next sends."""

    sent: list[tuple[str, email.message.EmailMessage]] = field(default_factory=list)
    replies: list[SendOutcome] = field(default_factory=list)

    def send(self, message, *, sender: str, to: str) -> SendOutcome:
        if self.replies:
            return self.replies.pop(0)
        self.sent.append((to, message))
        return SendOutcome("sent", 250, None)


def settings(**over) -> NotifierSettings:
    base = dict(smtp_url="smtp://127.0.0.1:1025", sender="UpGestão <no-reply@upgestao.test>",
                message_id_domain="upgestao.test", public_url="https://upgestao.test",
                dpo_contact="dpo@upgestao.test", suppression_key=b"k" * 32,
                retry=RetryPolicy(base_s=300, factor=1.3, max_attempts=3), stale_after_s=120)
    base.update(over)
    return NotifierSettings(**base)


class World:
    def __init__(self, **over) -> None:
        self.store, self.make = memory_units()
        self.owner = Owner()
        self.server = Server()
        self.clock = Clock()
        self.t0 = self.clock.now
        self.verdict: bool | None = None
        self.dispatcher = Dispatcher(
            unit_of_work=lambda: self.make(system_context()), notices=self.owner, mailer=self.server,
            renderer=Templates(), settings=settings(**over), now=self.clock,
            accepted=lambda message_id: self.verdict)

    def deliveries(self) -> list[dict]:
        return sorted(self.store.rows(DELIVERIES), key=lambda r: r["created_at"])

    def reset_event(self, user_id: str | None = None, to: str = ADDRESS, locale: str = "pt-BR") -> tuple[str, str]:
        event_id, user_id = new_id(), user_id or new_id()
        self.owner.add(event_id, "password_reset",
                       [Recipient(id=user_id, to=to, locale=locale, name="Ana Souza", vars={"reset_token": TOKEN})],
                       {"expires_at": (self.t0 + timedelta(hours=1)).isoformat()})
        return event_id, user_id


@pytest.fixture
def world() -> World:
    return World()


def test_an_event_gives_one_email_with_its_message_id_and_one_audited_use_of_the_address(world):
    event_id, user_id = world.reset_event()
    assert world.dispatcher.accept(event_id, RESET) == 1
    [(to, message)] = world.server.sent
    assert to == ADDRESS and message["To"] == ADDRESS
    assert TOKEN in message.get_body(("plain",)).get_content()
    [row] = world.deliveries()
    assert (row["status"], row["attempts"], row["recipient_id"], row["kind"]) == ("sent", 1, user_id,
                                                                                   "password_reset")
    assert row["id"] == delivery_id_for(event_id, user_id) and message["Message-ID"] == row["message_id"]
    assert "List-Unsubscribe" not in message  # security mail
    [audit] = world.store.audit_records(action="notify")
    assert (audit["subject_id"], audit["resource_id"], audit["purpose"]) == (user_id, row["id"],
                                                                             "notification: password_reset")
    assert audit["fields"] == ["email", "full_name"]
    leaks = LeakScanner([ADDRESS, TOKEN, "Ana Souza"])
    assert leaks.scan({"outbox": world.store.outbox, "events": [e.data for e in world.store.events],
                       "rows": world.deliveries()}) == []


def test_the_same_event_delivered_again_sends_nothing_more(world):
    event_id, _ = world.reset_event()
    world.dispatcher.accept(event_id, RESET)
    assert world.dispatcher.accept(event_id, RESET) == 0
    assert len(world.server.sent) == 1 and len(world.deliveries()) == 1


def test_an_event_redelivered_after_a_crash_before_its_claim_finds_its_deliveries(world):
    event_id, _ = world.reset_event()
    world.dispatcher.accept(event_id, RESET)
    with world.make(system_context()) as uow:  # as if the process died before the accept claim was stored
        uow.conn.delete("processed_events", (ACCEPTED, event_id))
    assert world.dispatcher.accept(event_id, RESET) == 0
    assert len(world.server.sent) == 1 and len(world.deliveries()) == 1


def test_a_temporary_failure_is_retried_after_its_delay_with_the_notice_asked_again(world):
    event_id, user_id = world.reset_event()
    world.server.replies = [SendOutcome("soft_failed", 421, "421 try again later")]
    world.dispatcher.accept(event_id, RESET)
    [row] = world.deliveries()
    assert (row["status"], row["attempts"], row["last_code"]) == ("soft_failed", 1, 421)
    assert row["next_attempt_at"] == world.t0 + timedelta(seconds=300)
    assert world.dispatcher.sweep() == 0 and world.server.sent == []  # not yet due
    world.clock.now = world.t0 + timedelta(seconds=301)
    world.dispatcher.sweep()
    [row] = world.deliveries()
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert world.owner.calls[-1] == ("identity", event_id, user_id)
    [(_, first)] = world.server.sent
    assert first["Message-ID"] == row["message_id"]
    assert len(world.store.audit_records(action="notify")) == 2  # each use of the address


def test_retries_back_off_by_the_factor_and_the_last_attempt_is_final(world):
    event_id, _ = world.reset_event()
    world.server.replies = [SendOutcome("soft_failed", None, "connection refused")] * 3
    world.dispatcher.accept(event_id, RESET)
    world.clock.now = world.t0 + timedelta(seconds=300)
    world.dispatcher.sweep()
    [row] = world.deliveries()
    assert row["next_attempt_at"] == world.t0 + timedelta(seconds=300 + 390)  # 5 min × 1.3
    world.clock.now = world.t0 + timedelta(seconds=690)
    world.dispatcher.sweep()
    [row] = world.deliveries()
    assert (row["status"], row["attempts"]) == ("hard_failed", 3)
    assert row["last_error"].startswith("every attempt failed")
    world.clock.now += timedelta(days=1)
    assert world.dispatcher.sweep() == 0 and world.server.sent == []


def test_a_permanent_failure_is_final_and_suppresses_the_address_for_later_ordinary_mail(world):
    event_id, user_id = world.reset_event()
    world.server.replies = [SendOutcome("hard_failed", 550, "550 mailbox unavailable")]
    world.dispatcher.accept(event_id, RESET)
    [row] = world.deliveries()
    assert (row["status"], row["last_code"]) == ("hard_failed", 550)
    [suppression] = world.store.rows(SUPPRESSIONS)
    assert ADDRESS not in str(suppression) and len(suppression["address_hash"]) == 64
    world.clock.now += timedelta(days=1)
    assert world.dispatcher.sweep() == 0  # never retried
    # ordinary mail to that address is not sent ...
    answer = new_id()
    world.owner.add(answer, "privacy_request_completed",
                    [Recipient(id=user_id, to=ADDRESS.upper(), locale="en", name=None, vars={})],
                    {"request_id": new_id(), "request_type": "access", "outcome": "completed", "reason": None,
                     "download_url": None, "completed_at": T0.isoformat(), "due_at": T0.isoformat()})
    assert world.dispatcher.accept(answer, COMPLETED) == 0
    assert [r["status"] for r in world.deliveries()] == ["hard_failed", "suppressed"]
    # ... security mail still is
    again, _ = world.reset_event(user_id=user_id)
    assert world.dispatcher.accept(again, RESET) == 1
    assert len(world.server.sent) == 1


def test_ordinary_mail_carries_list_unsubscribe_and_the_recipients_language(world):
    answer, user_id = new_id(), new_id()
    world.owner.add(answer, "privacy_request_completed",
                    [Recipient(id=user_id, to=ADDRESS, locale="en", name="Ana", vars={})],
                    {"request_id": new_id(), "request_type": "access", "outcome": "completed", "reason": None,
                     "download_url": None, "completed_at": T0.isoformat(), "due_at": T0.isoformat()})
    world.dispatcher.accept(answer, COMPLETED)
    [(_, message)] = world.server.sent
    assert message["List-Unsubscribe"] == "<https://upgestao.test/privacy/preferences>"
    assert message["Content-Language"] in (None, "en")
    assert "Ana" in message.get_body(("plain",)).get_content()


def test_a_notice_the_owner_no_longer_holds_is_recorded_and_the_event_done(world):
    event_id = new_id()
    assert world.dispatcher.accept(event_id, RESET) == 0
    assert world.deliveries() == [] and world.server.sent == []
    assert "notifier.notice_unavailable.v1" in world.store.event_types()
    assert world.dispatcher.accept(event_id, RESET) == 0
    assert world.store.event_types().count("notifier.notice_unavailable.v1") == 1


def test_an_owner_that_cannot_answer_leaves_the_event_unacked(world):
    event_id, _ = world.reset_event()
    world.owner.down = True
    with pytest.raises(ServiceError):
        world.dispatcher.accept(event_id, RESET)
    assert world.deliveries() == []
    world.owner.down = False
    assert world.dispatcher.accept(event_id, RESET) == 1


def test_a_retry_whose_notice_expired_is_given_up(world):
    event_id, _ = world.reset_event()
    world.server.replies = [SendOutcome("soft_failed", 451, "451 local error")]
    world.dispatcher.accept(event_id, RESET)
    del world.owner.notices[event_id]
    world.clock.now = world.t0 + timedelta(hours=2)
    world.dispatcher.sweep()
    [row] = world.deliveries()
    assert (row["status"], row["last_error"]) == ("hard_failed",
                                                  "the notice is no longer available (expired or withdrawn)")


@pytest.mark.parametrize(("verdict", "status", "confirmed"), [(True, "sent", True), (None, "sent", False),
                                                               (False, "soft_failed", None)])
def test_a_claim_left_by_a_dead_process_is_settled_by_the_sinks_word_or_at_most_once(world, verdict, status,
                                                                                       confirmed):
    event_id, _ = world.reset_event()
    # queued and claimed, then the process died inside SMTP
    world.dispatcher._queue_and_claim(*_reset_kind(), event_id, RESET, world.owner.notices[event_id], last=True)
    world.verdict = verdict
    world.clock.now = world.t0 + timedelta(seconds=60)
    assert world.dispatcher.sweep() == 0  # a live claim is left alone
    world.clock.now = world.t0 + timedelta(seconds=125)  # the claim was stamped by the real clock
    world.dispatcher.sweep()
    [row] = world.deliveries()
    assert (row["status"], row["confirmed"]) == (status, confirmed)
    assert world.server.sent == []  # never sent again by the settlement itself


def test_two_workers_claiming_one_due_retry_attempt_it_once(world):
    event_id, _ = world.reset_event()
    world.server.replies = [SendOutcome("soft_failed", 421, "421 later")]
    world.dispatcher.accept(event_id, RESET)
    kind = _reset_kind()[0]
    with world.make(system_context()) as uow:
        due = uow.deliveries.due(world.t0 + timedelta(hours=1), 10)
    recipient = world.owner.notices[event_id].recipients[0]
    attempts = [Attempt(r, recipient, {}) for r in due]
    assert len(world.dispatcher._claim(kind, attempts)) == 1
    assert world.dispatcher._claim(kind, attempts) == []  # the second saw the stale version


def test_two_workers_handling_one_event_at_once_queue_it_once(world):
    event_id, _ = world.reset_event()
    kind, = _reset_kind()
    notice = world.owner.notices[event_id]
    first = world.dispatcher._queue_and_claim(kind, event_id, RESET, notice, last=True)
    second = world.dispatcher._queue_and_claim(kind, event_id, RESET, notice, last=True)
    assert len(first) == 1 and second == [] and len(world.deliveries()) == 1


def _reset_kind():
    from upgestao_notifier.domain.kinds import BY_EVENT_TYPE

    return (BY_EVENT_TYPE[RESET],)


# -- queries ------------------------------------------------------------------------------------


def _queries(world: World, role: str, granted=frozenset({"notifications.read"})) -> DeliveryQueries:
    ctx = RequestContext(request_id=new_id(), actor_id=new_id(), actor_role=role)
    return DeliveryQueries(lambda: world.make(ctx), lambda r: granted if r == "admin" else frozenset())


def test_deliveries_are_listed_for_notifications_read_only_and_each_query_is_audited(world):
    first, user_id = world.reset_event()
    world.dispatcher.accept(first, RESET)
    second, _ = world.reset_event()
    world.dispatcher.accept(second, RESET)
    with pytest.raises(ServiceError) as refused:
        _queries(world, "attendant").deliveries({"event_id": first})
    assert refused.value.status == 403
    assert world.store.audit_records(resource_type="delivery", outcome="denied")
    page = _queries(world, "admin").deliveries({"event_id": first})
    [item] = page["items"]
    assert (item["event_id"], item["recipient_id"], item["status"]) == (first, user_id, "sent")
    assert ADDRESS not in str(page) and TOKEN not in str(page)
    both = _queries(world, "admin").deliveries({}, limit=1)
    assert both["next_cursor"] and len(both["items"]) == 1
    rest = _queries(world, "admin").deliveries({}, limit=1, cursor=both["next_cursor"])
    assert {both["items"][0]["id"], rest["items"][0]["id"]} == {r["id"] for r in world.deliveries()}
    assert world.store.audit_records(resource_type="delivery", action="list", outcome="success")


def test_privacy_gathers_one_persons_deliveries_for_their_access_request_and_nothing_wider(world):
    first, user_id = world.reset_event()
    world.dispatcher.accept(first, RESET)

    def as_privacy(role: str | None = None) -> DeliveryQueries:
        ctx = RequestContext(request_id=new_id(), actor_id="system", actor_role=role, caller_service="privacy")
        return DeliveryQueries(lambda: world.make(ctx), lambda r: frozenset())

    [item] = as_privacy().deliveries({"recipient_id": user_id})["items"]
    assert item["recipient_id"] == user_id
    [record] = [r for r in world.store.audit_records(resource_type="delivery", action="list", outcome="success")
                if r["subject_id"] == user_id]
    assert record["purpose"] == "data subject access"
    for wider in ({}, {"event_id": first}, {"recipient_id": user_id, "status": "sent"}):
        with pytest.raises(ServiceError) as refused:  # only one person's deliveries, never a list of everyone's
            as_privacy().deliveries(wider)
        assert refused.value.status == 403
    with pytest.raises(ServiceError) as forged:  # a caller that is not privacy's broker user gets nothing
        ctx = RequestContext(request_id=new_id(), actor_id=new_id(), actor_role="attendant", caller_service="gateway")
        DeliveryQueries(lambda: world.make(ctx), lambda r: frozenset()).deliveries({"recipient_id": user_id})
    assert forged.value.status == 403


@pytest.mark.parametrize(("filters", "field"), [({"event_id": "x"}, "event_id"), ({"status": "lost"}, "status"),
                                                 ({"address": "a@b"}, "address")])
def test_a_bad_filter_is_a_422_naming_it(world, filters, field):
    with pytest.raises(ServiceError) as bad:
        _queries(world, "admin").deliveries(filters)
    assert bad.value.status == 422 and bad.value.extensions["errors"][0]["field"] == field


def test_a_campaigns_counts_per_status(world):
    campaign = new_id()
    breach = new_id()
    people = [Recipient(id=new_id(), to=f"p{n}@example.com", locale="pt-BR", name=None, vars={}) for n in range(3)]
    world.owner.add(breach, "breach_notice", people, _breach_data(), campaign_id=campaign)
    world.server.replies = [SendOutcome("hard_failed", 550, "550 no such user")]
    world.dispatcher.accept(breach, BREACH)
    answer = _queries(world, "admin").campaign(campaign)
    assert answer["total"] == 3 and answer["counts"]["sent"] == 2 and answer["counts"]["hard_failed"] == 1
    assert answer["counts"]["queued"] == 0
    with pytest.raises(ServiceError) as missing:
        _queries(world, "admin").campaign(new_id())
    assert missing.value.status == 404


def _breach_data() -> dict:
    return {"incident_id": new_id(), "occurred_at": T0.isoformat(), "detected_at": T0.isoformat(),
            "nature_of_data": ["e-mail"], "people_affected": "clientes", "technical_measures": "criptografia",
            "risks": "phishing", "delay_reasons": None, "measures_taken": "senhas redefinidas",
            "what_to_do": ["troque sua senha"]}


def test_a_notice_of_another_kind_than_its_event_announces_is_refused_and_nothing_sent(world):
    from upgestao_notifier.service_layer.dispatch import NoticeMismatch

    event_id, _ = world.reset_event()
    with pytest.raises(NoticeMismatch):
        world.dispatcher.accept(event_id, "identity.user_email_changed.v1")
    assert world.server.sent == [] and world.deliveries() == []


def test_a_message_the_template_cannot_make_is_a_final_failure_not_a_stuck_claim(world):
    event_id, user_id = world.reset_event()
    world.owner.notices[event_id] = replace(world.owner.notices[event_id], data={})  # expires_at missing
    assert world.dispatcher.accept(event_id, RESET) == 1
    [row] = world.deliveries()
    assert row["status"] == "hard_failed" and row["last_error"].startswith("the message could not be made")
    assert world.store.rows(SUPPRESSIONS) == [] and world.server.sent == []  # the address did nothing wrong


def test_a_retry_while_the_owner_is_away_stays_due(world):
    event_id, _ = world.reset_event()
    world.server.replies = [SendOutcome("soft_failed", 421, "421 later")]
    world.dispatcher.accept(event_id, RESET)
    world.owner.down = True
    world.clock.now = world.t0 + timedelta(seconds=301)
    assert world.dispatcher.sweep() == 0
    assert world.deliveries()[0]["status"] == "soft_failed"
    world.owner.down = False
    world.dispatcher.sweep()
    assert world.deliveries()[0]["status"] == "sent"
