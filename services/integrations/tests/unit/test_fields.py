"""An integration's settings: only the policy's shareable fields, never the forbidden ones (named in the
refusal), and webhook types from the catalogue (``["*"]`` alone for all)."""

from __future__ import annotations

import pytest
from upgestao_integrations.domain.fields import (
    NEVER_SHAREABLE,
    SHAREABLE_FIELDS,
    WEBHOOK_TYPES,
    FieldRefused,
    check_event_types,
    check_fields,
    subscribed,
)


def test_the_policy_lists():
    assert SHAREABLE_FIELDS == ("email", "name", "phone", "conversations")
    assert NEVER_SHAREABLE == ("address", "birth_date", "gender", "photo", "job_title", "credentials")
    assert len(WEBHOOK_TYPES) == 9 and len(set(WEBHOOK_TYPES)) == 9


def test_fields_come_back_sorted_and_unique():
    assert check_fields(["phone", "email", "phone"]) == ("email", "phone")
    assert check_fields(("conversations", "name", "email", "phone")) == ("conversations", "email", "name", "phone")
    assert check_fields([]) == ()


@pytest.mark.parametrize("forbidden", NEVER_SHAREABLE)
def test_a_never_shareable_field_is_refused_by_name(forbidden):
    with pytest.raises(FieldRefused) as refused:
        check_fields(["email", forbidden])
    assert refused.value.field == forbidden
    assert "never" in refused.value.reason


@pytest.mark.parametrize("unknown", ["password", "locale", "Email", "full_name", ""])
def test_an_unknown_field_is_refused_by_name(unknown):
    with pytest.raises(FieldRefused) as refused:
        check_fields([unknown])
    assert refused.value.field == unknown
    assert refused.value.reason.startswith("unknown field")


@pytest.mark.parametrize("bad", ["email", None, 3, [1], [None]])
def test_fields_must_be_a_list_of_strings(bad):
    with pytest.raises(FieldRefused) as refused:
        check_fields(bad)
    assert refused.value.field == "fields"


def test_event_types():
    assert check_event_types(["*"]) == ("*",)
    assert check_event_types(["message.created", "conversation.created", "message.created"]) == (
        "conversation.created", "message.created")
    assert check_event_types(list(WEBHOOK_TYPES)) == tuple(sorted(WEBHOOK_TYPES))


@pytest.mark.parametrize("bad", [[], ["*", "message.created"], ["message.sent"], ["*", "*"], "message.created",
                                 [7]])
def test_bad_event_types_are_refused_under_events(bad):
    with pytest.raises(FieldRefused) as refused:
        check_event_types(bad)
    assert refused.value.field == "events"


def test_a_long_unknown_type_is_not_quoted_whole():
    with pytest.raises(FieldRefused) as refused:
        check_event_types(["x" * 5000])
    assert len(str(refused.value)) < 500


def test_subscriptions_and_the_types_that_always_go():
    assert subscribed(["*"], "message.created")
    assert subscribed(["message.created"], "message.created")
    assert not subscribed(["message.created"], "message.edited")
    assert subscribed(["message.created"], "subject.updated")
    assert subscribed([], "subject.erased")
