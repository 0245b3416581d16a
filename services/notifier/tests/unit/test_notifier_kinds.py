"""The catalogue of message kinds: which event asks for which mail, what it needs, which language."""

from __future__ import annotations

import pytest
from upgestao_notifier.domain.kinds import (
    BY_EVENT_TYPE,
    COMMON,
    COMMON_NULLABLE,
    DEFAULT_LOCALE,
    INTEGRATION_DISABLED_REASONS,
    KINDS,
    LOCALES,
    REQUEST_TYPES,
    Kind,
    asks_for_mail,
    locale_of,
)

# (event type, source, security) as issue 12 lists them: the notifier's routing and suppression rules hang on these.
EXPECTED = {
    "password_reset": ("identity.password_reset_requested.v1", "identity", True),
    "new_login": ("identity.new_login_detected.v1", "identity", True),
    "email_changed": ("identity.user_email_changed.v1", "identity", True),
    "privacy_request_verification": ("privacy.request_verification_requested.v1", "privacy", True),
    "privacy_request_completed": ("privacy.request_completed.v1", "privacy", False),
    "correction_decided": ("privacy.correction_decided.v1", "privacy", False),
    "breach_notice": ("privacy.breach_notice_requested.v1", "privacy", True),
    "policy_published": ("privacy.policy_published.v1", "privacy", False),
    # issue 15: an integration's endpoint disabled (410 Gone, or failing for 5 days): its admins are told
    "integration_disabled": ("integrations.integration_disabled.v1", "integrations", False),
}


def test_the_catalogue_holds_exactly_the_nine_kinds_with_their_event_source_and_security():
    assert {name: (k.event_type, k.source, k.security) for name, k in KINDS.items()} == EXPECTED
    assert all(k.name == name for name, k in KINDS.items())


def test_each_event_type_asks_for_one_kind_and_is_owned_by_its_source():
    assert BY_EVENT_TYPE == {k.event_type: k for k in KINDS.values()}
    assert len(BY_EVENT_TYPE) == len(KINDS)
    for kind in KINDS.values():
        assert kind.event_type.startswith(f"{kind.source}.") and kind.event_type.endswith(".v1")


@pytest.mark.parametrize("kind", KINDS.values(), ids=lambda k: k.name)
def test_a_kinds_nullable_list_and_choice_keys_are_among_its_required_keys(kind: Kind):
    assert kind.required and len(set(kind.required)) == len(kind.required)
    assert not set(kind.required) & set(COMMON)
    assert set(kind.nullable) <= set(kind.required)
    assert set(kind.lists) <= set(kind.required)
    assert {key for key, _ in kind.choices} <= set(kind.required)
    assert all(allowed for _, allowed in kind.choices)


def test_the_breach_notice_asks_for_every_lgpd_art_48_item():
    required = set(KINDS["breach_notice"].required)
    art_48 = {"nature_of_data", "people_affected", "technical_measures", "risks", "delay_reasons", "measures_taken"}
    assert art_48 | {"what_to_do", "occurred_at", "detected_at"} <= required
    assert KINDS["breach_notice"].security  # sent even to a suppressed address


def test_privacy_requests_know_the_ten_lgpd_art_18_types():
    assert len(REQUEST_TYPES) == 10
    assert dict(KINDS["privacy_request_verification"].choices)["request_type"] == REQUEST_TYPES
    assert dict(KINDS["privacy_request_completed"].choices)["request_type"] == REQUEST_TYPES


def test_an_integration_disabled_names_the_tool_and_one_of_two_reasons():
    kind = KINDS["integration_disabled"]
    assert kind.required == ("integration_id", "integration_name", "reason")
    assert dict(kind.choices)["reason"] == INTEGRATION_DISABLED_REASONS == ("gone", "failing")
    assert not kind.nullable  # never a mail with a hole: no name or no reason is a notice to fix


@pytest.mark.parametrize(("data", "mailed"), [
    ({"integration_id": "int_x", "reason": "gone"}, True),
    ({"integration_id": "int_x", "reason": "failing"}, True),
    ({"integration_id": "int_x", "reason": "manual"}, False),  # the admin who disabled it knows
    ({"integration_id": "int_x"}, False),
    ({"integration_id": "int_x", "reason": "GONE"}, False),
])
def test_only_an_integration_disabled_by_the_platform_asks_for_mail(data, mailed):
    assert asks_for_mail("integrations.integration_disabled.v1", data) is mailed


def test_every_other_kinds_event_asks_for_mail_whatever_its_data_and_an_unknown_event_never():
    for kind in KINDS.values():
        if kind.name != "integration_disabled":
            assert asks_for_mail(kind.event_type, {}) is True
    assert asks_for_mail("integrations.integration_changed.v1", {"reason": "gone"}) is False


def test_kinds_are_immutable_values():
    with pytest.raises(AttributeError):
        KINDS["new_login"].security = False  # type: ignore[misc]
    assert hash(KINDS["breach_notice"]) == hash(KINDS["breach_notice"])


def test_only_the_recipients_name_may_be_missing_among_the_common_keys():
    assert COMMON == ("recipient_name", "platform_name", "dpo_contact", "privacy_url", "support_url")
    assert COMMON_NULLABLE == ("recipient_name",)


@pytest.mark.parametrize(
    ("preference", "locale"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("EN_gb", "en"),
        (" en-au ", "en"),
        ("pt", "pt-BR"),
        ("pt-BR", "pt-BR"),
        ("pt_PT", "pt-BR"),
        ("fr-FR", "pt-BR"),
        ("english", "pt-BR"),
        ("", "pt-BR"),
        (None, "pt-BR"),
        (42, "pt-BR"),
        (["en"], "pt-BR"),
    ],
)
def test_locale_of_gives_english_for_any_en_tag_and_pt_br_for_anything_else(preference, locale):
    assert locale_of(preference) == locale


def test_the_default_locale_is_brazilian_portuguese_and_offered():
    assert DEFAULT_LOCALE == "pt-BR"
    assert LOCALES == ("pt-BR", "en")
