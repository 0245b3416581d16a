"""Erasure orchestration (H6) on the fake unit of work: the aggregate, starting, confirmations (repeated,
concurrent, of another person), completion (privacy's own records shredded, the request completed once),
blocking (nothing shredded), the progress view, and the published views (ids, names and modes only)."""

from __future__ import annotations

import json
import uuid

import pytest
from upgestao_kernel.context import RequestContext, system_context
from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryStore
from upgestao_kernel.unit_of_work import is_erased
from upgestao_privacy.adapters.erasure_tables import MemoryExportParts
from upgestao_privacy.domain.erasures import Erasure, ErasureConfirmed, ErasureRequested
from upgestao_privacy.service_layer import erasures

A, B = str(uuid.uuid4()), str(uuid.uuid4())


class World:
    def __init__(self) -> None:
        self.store = MemoryStore(service="privacy")
        self.vault = FakeVault()
        self.completed: list[tuple[str, dict]] = []

    def uow(self, context: RequestContext | None = None) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, context or system_context(), vault=self.vault)

    def complete(self, uow, request_id: str, **kwargs) -> None:
        self.completed.append((request_id, kwargs))

    def start(self, mode: str = "deletion", subject: str = A, recipients=()) -> str:
        request_id = str(uuid.uuid4())
        with self.uow() as uow:
            assert erasures.start_erasure(uow, request_id, subject, mode, ("identity", "messaging"),
                                          list(recipients)) is not None
        return request_id

    def confirm(self, service: str, request_id: str, subject: str = A, event_id: str | None = None) -> str:
        with self.uow() as uow:
            return erasures.confirm_erasure(uow, service, {"request_id": request_id, "subject_id": subject,
                                                           "mode": "deletion"}, event_id or str(uuid.uuid4()),
                                            complete=self.complete)

    def seal(self, subject: str, value: str) -> str:
        with self.uow() as uow:
            return uow.personal.seal(subject_id=subject, resource_type="t", resource_id=None,
                                     values={"v": value}, purpose="test")["v"]

    def opened(self, subject: str, sealed: str):
        with self.uow() as uow:
            return uow.personal.open(subject_id=subject, resource_type="t", resource_id=None,
                                     sealed={"v": sealed}, purpose="test")["v"]


@pytest.fixture
def world() -> World:
    return World()


# -- the aggregate


def test_an_erasure_waits_for_every_participant_and_completes_once():
    erasure = Erasure.start("r1", A, "deletion", ["messaging", "identity", "identity"], ["crm"])
    assert erasure.participants == {"identity": "pending", "messaging": "pending"}
    assert erasure.confirm("identity", A, "e1") is True
    assert erasure.confirm("identity", A, "e2") is False  # repeated: nothing recorded
    assert erasure.confirm("billing", A, "e3") is False  # not a participant
    assert erasure.confirm("messaging", B, "e4") is False  # another person
    assert erasure.pending == ["messaging"] and not erasure.all_confirmed
    with pytest.raises(ValueError):
        erasure.complete()
    assert erasure.confirm("messaging", A, "e5") is True
    erasure.complete()
    with pytest.raises(ValueError):
        erasure.complete()
    again = Erasure.replay("r1", [_envelope(e, n) for n, e in enumerate(erasure.collect(), start=1)])
    assert again.progress() == erasure.progress()
    assert again.progress()["participants"] == {"identity": "confirmed", "messaging": "confirmed"}
    assert again.completed and again.privacy_shredded


def test_modes_and_participants_are_checked():
    with pytest.raises(ValueError):
        Erasure.start("r", A, "forget", ["identity"], [])
    with pytest.raises(ValueError):
        Erasure.start("r", A, "deletion", [], [])


def test_participants_come_from_the_environment():
    assert erasures.participants({}) == ("identity", "integrations", "messaging")  # integrations: issue 15
    assert erasures.participants({"PRIVACY_ERASURE_PARTICIPANTS": " messaging, integrations,identity "}) == (
        "identity", "integrations", "messaging")


def test_published_views_hold_ids_names_and_modes_only():
    view = ErasureRequested(subject_id=A, mode="deletion", participants=["identity"], recipients=["crm"]
                            ).published_view("r1")
    assert view == {"request_id": "r1", "subject_id": A, "mode": "deletion", "participants": ["identity"],
                    "recipients": ["crm"]}
    assert ErasureConfirmed(participant="identity", subject_id=A, confirmation="e").published_view("r1") == {
        "request_id": "r1", "participant": "identity", "subject_id": A}


# -- the use cases


def test_starting_twice_begins_one_erasure(world):
    request_id = world.start(recipients=["crm", "crm", "erp"])
    with world.uow() as uow:
        assert erasures.start_erasure(uow, request_id, A, "deletion", ("identity",), []) is None
    published = world.store.published("privacy.erasure_requested.v1")
    assert len(published) == 1
    assert published[0]["data"] == {"request_id": request_id, "subject_id": A, "mode": "deletion",
                                    "participants": ["identity", "messaging"], "recipients": ["crm", "erp"]}


def test_the_last_confirmation_shreds_privacys_records_and_completes_the_request(world):
    own = world.seal(A, "Maria da Silva")  # e.g. a correction's new value, sealed under the person
    other = world.seal(B, "Outra Pessoa")
    contact_request = str(uuid.uuid4())  # an earlier request of A's through the contact channel
    contact_sealed = world.seal(contact_request, "maria@example.com")
    others = str(uuid.uuid4())
    others_sealed = world.seal(others, "outra@example.com")
    with world.uow() as uow:
        uow.record(f"request-{contact_request}", 0, [_filed(None, contact_sealed)])  # unverified yet: nobody's
        uow.record(f"request-{contact_request}", 1, [_verified(A)])  # verified: A's
        uow.record(f"request-{others}", 0, [_filed(B, others_sealed)])
        MemoryExportParts(uow.conn).put("old-bundle", 0, A, world.seal(A, '{"x":1}'), _now())
        MemoryExportParts(uow.conn).put("b-bundle", 0, B, other, _now())
    request_id = world.start()
    assert world.confirm("identity", request_id) == "recorded"
    assert world.completed == []
    with world.uow() as uow:
        assert erasures.erasure_progress(uow, request_id)["participants"] == {"identity": "confirmed",
                                                                             "messaging": "pending"}
    assert world.confirm("messaging", request_id) == "completed"
    assert [rid for rid, _ in world.completed] == [request_id]
    assert world.completed[0][1]["answer"]["erasure"]["mode"] == "deletion"
    assert is_erased(world.opened(A, own)) and is_erased(world.opened(contact_request, contact_sealed))
    assert world.opened(B, other) == "Outra Pessoa"
    assert world.opened(others, others_sealed) == "outra@example.com"
    assert [k[0] for k in world.store.tables["export_parts"]] == ["b-bundle"]
    # a confirmation delivered again, or late, changes nothing and completes nothing twice
    assert world.confirm("messaging", request_id) == "repeated"
    assert len(world.completed) == 1
    with world.uow() as uow:
        progress = erasures.erasure_progress(uow, request_id)
    assert progress["completed"] and progress["pending"] == [] and progress["privacy_shredded"]
    assert world.store.audit_records(action="erase", subject_id=A)
    steps = world.store.audit_records(resource_type="data_subject_erasure", resource_id=request_id)
    assert [r["purpose"] for r in steps] == ["deletion requested", "deletion confirmed by identity",
                                             "deletion confirmed by messaging"]
    assert len(world.store.published("privacy.erasure_completed.v1")) == 1


def test_blocking_completes_without_shredding_anything(world):
    own = world.seal(A, "Maria da Silva")
    request_id = world.start("blocking")
    world.confirm("identity", request_id)
    assert world.confirm("messaging", request_id) == "completed"
    assert world.opened(A, own) == "Maria da Silva"
    assert world.completed[0][1]["answer"]["erasure"]["privacy_shredded"] is False


def test_confirmations_of_no_erasure_of_privacys_are_ignored(world):
    request_id = world.start()
    assert world.confirm("identity", str(uuid.uuid4())) == "ignored"  # an erasure asked by RPC, say
    assert world.confirm("identity", request_id, subject=B) == "ignored"  # another person
    with world.uow() as uow:
        assert erasures.confirm_erasure(uow, "identity", {"subject_id": A}, "e", complete=world.complete) == "ignored"
        assert erasures.erasure_progress(uow, str(uuid.uuid4())) is None


def test_two_confirmations_at_once_are_both_recorded(world):
    """Identity's and messaging's confirmations in two units at once: one commit refuses (the stream moved),
    the handler's retry records it on the new version, and the request completes."""
    request_id = world.start()
    first, second = world.uow(), world.uow()
    with pytest.raises(ConcurrencyError):
        with first:
            erasures.confirm_erasure(first, "identity", {"request_id": request_id, "subject_id": A}, "e1",
                                     complete=world.complete)
            with second:
                erasures.confirm_erasure(second, "messaging", {"request_id": request_id, "subject_id": A}, "e2",
                                         complete=world.complete)
    assert world.confirm("identity", request_id) == "completed"
    assert len(world.completed) == 1


def test_no_personal_value_leaves_in_the_erasures_events(world):
    world.seal(A, "Maria da Silva")
    request_id = world.start()
    world.confirm("identity", request_id)
    world.confirm("messaging", request_id)
    text = json.dumps([m["body"] for m in world.store.outbox], default=str)
    assert "Maria" not in text


# -- helpers


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _envelope(new_event, version: int):
    from upgestao_kernel.events import SYSTEM_ACTOR, EventEnvelope

    return EventEnvelope(event_id=str(uuid.uuid4()), stream_id="erasure-r1", version=version, type=new_event.type,
                         occurred_at=_now(), actor=SYSTEM_ACTOR, correlation_id=None, causation_id=None,
                         data=new_event.data)


def _verified(subject_id: str):
    from upgestao_kernel.events import NewEvent

    return NewEvent(type="privacy.request_verified.v1", data={"type": "access", "subject_id": subject_id})


def _filed(subject_id: str | None, sealed_email: str):
    from upgestao_kernel.events import NewEvent

    return NewEvent(type="privacy.request_filed.v1", data={"type": "access", "subject_id": subject_id,
                                                           "channel": "contact", "sealed": {"email": sealed_email}})


def test_the_dpo_lifts_a_completed_blocking_once(world):
    from upgestao_privacy.domain.erasures import NotBlocked

    deletion = world.start("deletion")
    blocking = world.start("blocking")
    unblocked: list[tuple[str, str]] = []
    with world.uow() as uow, pytest.raises(NotBlocked):  # not completed yet
        erasures.lift_blocking(uow, blocking, lambda *a: unblocked.append(a))
    for request_id in (deletion, blocking):
        world.confirm("identity", request_id)
        world.confirm("messaging", request_id)
    with world.uow() as uow, pytest.raises(NotBlocked):  # a deletion is for good
        erasures.lift_blocking(uow, deletion, lambda *a: unblocked.append(a))
    with world.uow() as uow, pytest.raises(LookupError):
        erasures.lift_blocking(uow, str(uuid.uuid4()), lambda *a: unblocked.append(a))
    with world.uow() as uow:
        progress = erasures.lift_blocking(uow, blocking, lambda *a: unblocked.append(a))
    assert progress["lifted"] and unblocked == [(A, blocking)]
    with world.uow() as uow, pytest.raises(NotBlocked):  # once
        erasures.lift_blocking(uow, blocking, lambda *a: unblocked.append(a))


def test_identity_refusing_to_unblock_records_nothing(world):
    blocking = world.start("blocking")
    world.confirm("identity", blocking)
    world.confirm("messaging", blocking)

    def refuse(subject_id, request_id):
        raise RuntimeError("409")

    with pytest.raises(RuntimeError), world.uow() as uow:
        erasures.lift_blocking(uow, blocking, refuse)
    with world.uow() as uow:
        assert erasures.erasure_progress(uow, blocking)["lifted"] is False
