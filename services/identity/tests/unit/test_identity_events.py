"""Identity's events as declared: the same type strings and payloads the event store already holds.

The literals below are what the aggregates decided before their events were declared as classes
(stored data, published view, secret flag): stored events must still replay, and consumers must
still get the same messages. The projections dispatch on the declarations, so every declared type
that changes a read model has exactly one handler.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from upgestao_identity.adapters.projections import projections
from upgestao_identity.domain import events
from upgestao_identity.domain.customers import Customer
from upgestao_identity.domain.roles import BUILT_IN_ROLES, Role
from upgestao_identity.domain.sessions import Session
from upgestao_identity.domain.users import User
from upgestao_kernel.events import DomainEvent, EventEnvelope, declared_events

EXPIRES = "2030-01-01T00:00:00+00:00"


def decided(aggregate) -> list[tuple]:
    return [(e.type, e.data, e.published, e.secret) for e in aggregate.collect()]


def test_user_events_are_stored_and_published_as_before():
    user = User.register("u1", role="attendant", email_index="i1",
                         sealed={"full_name": "c1", "email": "c2", "phone": None, "birth_date": "c3"})
    assert decided(user) == [(
        "identity.user_registered.v1",
        {"role": "attendant", "fields": {"full_name": "c1", "email": "c2", "birth_date": "c3"}, "email_index": "i1"},
        {"user_id": "u1", "role": "attendant", "fields": ["birth_date", "email", "full_name"]}, False,
    )]
    user.change_profile({"phone": "c4", "email": None}, email_index="i2")
    user.change_profile({"job_title": "c5"})
    assert decided(user) == [
        ("identity.user_profile_changed.v1", {"fields": {"email": None, "phone": "c4"}, "email_index": "i2"},
         {"user_id": "u1", "fields": ["email", "phone"]}, False),
        ("identity.user_profile_changed.v1", {"fields": {"job_title": "c5"}, "email_index": None},
         {"user_id": "u1", "fields": ["job_title"]}, False),
    ]
    user.change_role("supervisor")
    user.change_photo("p1", "image/png", 123)
    user.password_changed("changed")
    user.request_password_reset("th", EXPIRES)
    user.complete_password_reset("th")
    user.deactivate()
    assert decided(user) == [
        ("identity.user_role_changed.v1", {"role": "supervisor", "previous_role": "attendant"},
         {"user_id": "u1", "role": "supervisor", "previous_role": "attendant"}, False),
        ("identity.user_photo_changed.v1", {"photo_id": "p1", "content_type": "image/png", "size": 123},
         {"user_id": "u1", "fields": ["photo"]}, False),
        ("identity.user_password_changed.v1", {"how": "changed"}, {"user_id": "u1", "how": "changed"}, False),
        ("identity.password_reset_requested.v1", {"token_hash": "th", "expires_at": EXPIRES},
         {"user_id": "u1", "expires_at": EXPIRES}, False),  # ids only: the token never travels (issue 11)
        ("identity.password_reset_completed.v1", {"token_hash": "th"}, {"user_id": "u1"}, False),
        ("identity.user_deactivated.v1", {}, {"user_id": "u1"}, False),
    ]
    assert (user.role, user.status, user.photo_id, user.email_index) == ("supervisor", "deactivated", "p1", "i2")


def test_role_events_are_stored_and_published_as_before():
    admin = BUILT_IN_ROLES["admin"]
    role = Role.define("admin", admin["permissions"], admin["self_editable_fields"])
    permissions = sorted(admin["permissions"])
    role.change([p for p in permissions if p != "customers.list"], ["photo", "phone"])
    assert decided(role) == [
        ("identity.role_defined.v1",
         {"permissions": permissions, "self_editable_fields": sorted(admin["self_editable_fields"])}, None, False),
        ("identity.role_permissions_changed.v1",
         {"permissions": [p for p in permissions if p != "customers.list"], "self_editable_fields": ["phone", "photo"],
          "previous_permissions": permissions},
         {"role": "admin"}, False),
    ]


def test_session_events_are_stored_and_published_as_before():
    session = Session.start("s1", user_id="u1", refresh_hash="h1", expires_at=EXPIRES)
    session.refresh("h1", "h2", "2029-01-01T00:00:00+00:00")
    session.refresh("h1", "h3", "2029-01-01T00:00:00+00:00")  # a spent token again: revoked
    assert decided(session) == [
        ("identity.session_started.v1", {"user_id": "u1", "refresh_hash": "h1", "expires_at": EXPIRES},
         {"session_id": "s1", "user_id": "u1"}, False),
        ("identity.session_refreshed.v1", {"spent_hash": "h1", "refresh_hash": "h2"}, False, False),
        ("identity.session_revoked.v1", {"user_id": "u1", "reason": "refresh_token_reused"},
         {"session_id": "s1", "user_id": "u1", "reason": "refresh_token_reused"}, False),
    ]


def test_customer_events_are_stored_and_published_as_before():
    customer = Customer.register("c1", sealed={"full_name": "x", "email": "y", "phone": None}, email_index="e",
                                 phone_index=None)
    customer.change({"phone": "z", "email": None}, {"phone_index": "pi", "email_index": None})
    assert decided(customer) == [
        ("identity.customer_registered.v1", {"fields": {"full_name": "x", "email": "y"}, "email_index": "e",
                                             "phone_index": None},
         {"customer_id": "c1", "fields": ["email", "full_name"]}, False),
        ("identity.customer_changed.v1", {"fields": {"email": None, "phone": "z"},
                                          "indexes": {"phone_index": "pi", "email_index": None}},
         {"customer_id": "c1", "fields": ["email", "phone"]}, False),
    ]


def _envelope(new_event, stream_id: str, version: int) -> EventEnvelope:
    return EventEnvelope(event_id=f"e{version}", stream_id=stream_id, version=version, type=new_event.type,
                         occurred_at=None, actor=SimpleNamespace(id=None, role=None), correlation_id=None,
                         causation_id=None, data=new_event.data)


def test_a_stored_history_replays_into_the_same_aggregate():
    user = User.register("u1", role="attendant", sealed={"email": "c"}, email_index="i1")
    user.change_role("dpo")
    user.change_photo("p9", "image/jpeg", 10)
    user.deactivate()
    history = [_envelope(e, "user-u1", n) for n, e in enumerate(user.collect(), start=1)]
    replayed = User.replay("u1", history)
    assert (replayed.version, replayed.role, replayed.status, replayed.photo_id) == (4, "dpo", "deactivated", "p9")
    assert isinstance(events.UserPhotoChanged.from_envelope(history[2]), events.UserPhotoChanged)


def identity_events() -> dict[str, type[DomainEvent]]:
    return {t: cls for t, cls in declared_events().items() if cls.service == "identity"}


def test_every_identity_event_is_declared_once_in_the_domain():
    declared = identity_events()
    assert len(declared) == 27  # with the API keys (issue 15)
    assert all(cls.__module__ == events.__name__ for cls in declared.values())
    assert "identity.admin_bootstrapped.v1" in declared and declared["identity.session_refreshed.v1"].publishes is False


def test_the_projections_handle_every_event_that_changes_a_read_model_once():
    handled: list[str] = []
    for projection in projections():
        handled += projection.on.event_types
    assert sorted(handled) == sorted(set(handled))  # one handler per type
    assert set(identity_events()) - set(handled) == {"identity.admin_bootstrapped.v1", "identity.subject_erased.v1",
                                                    "identity.subject_unblocked.v1"}


def test_a_declared_event_refuses_data_it_does_not_declare():
    stored = events.SessionRevoked(user_id="u1", reason="logout").new_event("s1")
    odd = _envelope(stored, "session-s1", 2)
    odd = EventEnvelope(**{**odd.__dict__, "data": {**stored.data, "surprise": 1}})
    with pytest.raises(TypeError):
        events.SessionRevoked.from_envelope(odd)
