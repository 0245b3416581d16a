"""Data-subject requests' rules on the aggregate alone: states, due dates, reasons, codes and budgets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.events import Actor as EventActor
from upgestao_kernel.events import EventEnvelope
from upgestao_privacy.domain.contact import (
    MAX_ATTEMPTS,
    Budget,
    CodeExhausted,
    CodeExpired,
    CodeUsed,
    is_code,
    is_email,
    new_code,
)
from upgestao_privacy.domain.requests import (
    CANCELED,
    COMPLETED,
    DENIED,
    ERROR,
    IDENTITY_UNVERIFIED,
    IN_PROGRESS,
    PENDING,
    TYPES,
    Actor,
    DataSubjectRequest,
    InvalidTransition,
    InvalidValue,
    clean_text,
    days_left,
    due_for,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
USER = str(uuid.uuid4())
DPO = Actor(str(uuid.uuid4()), "dpo")
ME = Actor(USER, "attendant")


def filed(type_: str = "access") -> DataSubjectRequest:
    return DataSubjectRequest.file(str(uuid.uuid4()), type=type_, subject_id=USER, by=ME, now=NOW)


def by_contact(code_hash: str = "h-right") -> DataSubjectRequest:
    return DataSubjectRequest.file_by_contact(str(uuid.uuid4()), type="deletion", sealed={"email": "v1:x"},
                                              code_hash=code_hash, code_expires_at=NOW + timedelta(minutes=10),
                                              now=NOW)


def replayed(request: DataSubjectRequest) -> DataSubjectRequest:
    """The request rebuilt from the events it decided on (what a load gives)."""
    history = [EventEnvelope(event_id=str(uuid.uuid4()), stream_id=request.stream_id, version=n, type=e.type,
                             occurred_at=NOW, actor=EventActor(None, None), correlation_id=None, causation_id=None,
                             data=e.data) for n, e in enumerate(request.collect(), start=1)]
    return DataSubjectRequest.replay(request.id, history)


@pytest.mark.parametrize("type_", TYPES)
def test_every_type_is_filed_pending_with_fifteen_days(type_):
    request = filed(type_)
    assert (request.type, request.state, request.subject_id) == (type_, PENDING, USER)
    assert request.due_at == NOW + timedelta(days=15) == due_for(NOW)
    assert request.days_left(NOW) == 15
    assert request.history[0].previous is None and request.history[0].state == PENDING


def test_an_unknown_type_is_refused_naming_the_field():
    with pytest.raises(InvalidValue) as caught:
        DataSubjectRequest.file(str(uuid.uuid4()), type="everything", subject_id=USER, by=ME, now=NOW)
    assert caught.value.field == "type"


def test_the_lifecycle_and_its_history_survive_a_replay():
    request = filed()
    request.start(by=DPO, now=NOW + timedelta(days=1))
    request.complete(by=DPO, now=NOW + timedelta(days=2), answer={"kind": "x"})
    again = replayed(request)
    assert again.state == COMPLETED and again.outcome == COMPLETED and again.answer == {"kind": "x"}
    assert [(t.previous, t.state, t.by_id) for t in again.history] == [
        (None, PENDING, USER), (PENDING, IN_PROGRESS, DPO.id), (IN_PROGRESS, COMPLETED, DPO.id)]


def test_a_denial_needs_a_reason_and_closes_the_request():
    request = filed()
    with pytest.raises(InvalidValue):
        request.deny(sealed_reason="", by=DPO, now=NOW)
    request.deny(sealed_reason="v1:sealed", by=DPO, now=NOW)
    assert request.state == DENIED and request.history[-1].sealed_reason == "v1:sealed"
    with pytest.raises(InvalidTransition):
        request.start(by=DPO, now=NOW)
    with pytest.raises(InvalidTransition):
        request.cancel(by=ME, now=NOW)


def test_only_an_in_progress_request_completes_and_an_error_can_be_started_again():
    request = filed()
    with pytest.raises(InvalidTransition):
        request.complete(by=DPO, now=NOW)
    request.start(by=DPO, now=NOW)
    request.fail("identity export", by=DPO, now=NOW)
    assert request.state == ERROR and request.what_failed == "identity export"
    request.start(by=DPO, now=NOW)
    assert request.state == IN_PROGRESS and request.what_failed is None
    with pytest.raises(InvalidValue):
        request.fail("   ", by=DPO, now=NOW)


def test_cancel_from_any_open_state():
    for prepare in (lambda r: None, lambda r: r.start(by=DPO, now=NOW)):
        request = filed()
        prepare(request)
        request.cancel(by=ME, now=NOW)
        assert request.state == CANCELED and request.closed_at == NOW


def test_extending_moves_the_due_date_later_only_with_a_reason():
    request = filed()
    later = NOW + timedelta(days=30)
    with pytest.raises(InvalidValue) as earlier:
        request.extend(NOW + timedelta(days=10), sealed_reason="v1:r", by=DPO, now=NOW)
    assert earlier.value.field == "due_at"
    with pytest.raises(InvalidValue) as past:
        request.extend(NOW - timedelta(days=1), sealed_reason="v1:r", by=DPO, now=NOW)
    assert past.value.field == "due_at" and "future" in past.value.message
    with pytest.raises(InvalidValue) as no_reason:
        request.extend(later, sealed_reason="", by=DPO, now=NOW)
    assert no_reason.value.field == "reason"
    request.extend(later, sealed_reason="v1:r", by=DPO, now=NOW)
    assert replayed(request).due_at == later and request.history[-1].event == "extended"


def test_days_left_and_overdue():
    request = filed()
    assert days_left(request.due_at, NOW + timedelta(days=14, hours=23)) == 1
    assert not request.overdue(NOW + timedelta(days=14))
    assert request.overdue(NOW + timedelta(days=15))
    assert request.days_left(NOW + timedelta(days=17)) == -2
    request.start(by=DPO, now=NOW)
    request.complete(by=DPO, now=NOW)
    assert not request.overdue(NOW + timedelta(days=20))  # a closed request is never overdue


# -- the contact channel's code


def test_a_right_code_verifies_once():
    request = by_contact()
    assert request.state == IDENTITY_UNVERIFIED and request.subject_id is None
    assert request.verify("h-right", now=NOW + timedelta(minutes=9)) == "verified"
    request.verified(subject_id=USER, subject_kind="customer", now=NOW)
    again = replayed(request)
    assert again.state == PENDING and again.subject_id == USER and again.vault_subject == USER
    with pytest.raises(CodeUsed):
        again.verify("h-right", now=NOW)


def test_three_wrong_codes_kill_it_and_cancel_the_request():
    request = by_contact()
    for attempt in range(1, MAX_ATTEMPTS):
        assert request.verify("h-wrong", now=NOW) == "wrong"
        assert request.verification.attempts_left == MAX_ATTEMPTS - attempt
    assert request.verify("h-wrong", now=NOW) == "wrong"
    assert request.verification.exhausted and request.state == CANCELED
    again = replayed(request)
    with pytest.raises(CodeExhausted):
        again.verify("h-right", now=NOW)  # even the right one


def test_an_expired_code_is_refused_even_when_right():
    request = by_contact()
    with pytest.raises(CodeExpired):
        request.verify("h-right", now=NOW + timedelta(minutes=10))
    assert request.state == IDENTITY_UNVERIFIED and request.verification.attempts == 0


def test_codes_are_six_digits_and_vary():
    codes = {new_code() for _ in range(200)}
    assert all(is_code(c) for c in codes) and len(codes) > 150
    assert not is_code("12345") and not is_code("1234567") and not is_code("12a456") and not is_code(123456)


def test_email_shapes():
    assert is_email("ana@example.com") and not is_email("ana") and not is_email("a@b") and not is_email(None)


def test_budget_windows():
    budget = Budget(2, 60)
    assert budget.window_start(NOW, None) == NOW
    assert budget.window_start(NOW + timedelta(seconds=59), NOW) == NOW
    assert budget.window_start(NOW + timedelta(seconds=60), NOW) == NOW + timedelta(seconds=60)
    assert budget.allows(1) and not budget.allows(2)
    assert budget.retry_after(NOW, NOW + timedelta(seconds=30)) == 30


def test_free_texts_are_trimmed_and_an_optional_blank_one_is_absent():
    assert clean_text("reason", "  porque sim ", 20) == "porque sim"
    assert clean_text("message", " \n ", 20, required=False) is None
    for bad in ("", "   ", None, 7):
        with pytest.raises(InvalidValue) as caught:
            clean_text("reason", bad, 20)
        assert caught.value.field == "reason"
    with pytest.raises(InvalidValue):
        clean_text("reason", "x" * 21, 20)
