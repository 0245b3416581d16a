"""Domain rules of corrections, policy versions and acceptances, cookie consents (no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from upgestao_privacy.domain import consents, corrections, policies

REQUESTER = "11111111-1111-4111-8111-111111111111"
REVIEWER = "22222222-2222-4222-8222-222222222222"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def filed() -> corrections.Correction:
    c = corrections.Correction.file("c1", requester_id=REQUESTER, fields=["full_name", "email"], source="request",
                                    sealed={"full_name": "ct1", "email": "ct2"})
    c.collect()
    return c


# -- corrections ------------------------------------------------------------------------------------


def test_a_filed_correction_publishes_field_names_never_values():
    c = corrections.Correction.file("c1", requester_id=REQUESTER, fields=["email", "full_name"], source="profile_edit",
                                    sealed={"full_name": "ciphertext-1", "email": "ciphertext-2"})
    [event] = c.collect()
    assert event.type == "privacy.correction_filed.v1"
    assert event.published == {"correction_id": "c1", "requester_id": REQUESTER, "fields": ["email", "full_name"],
                               "source": "profile_edit"}
    assert event.data["sealed"] == {"full_name": "ciphertext-1", "email": "ciphertext-2"}
    assert c.state == corrections.PENDING


def test_clean_changes_names_the_field_that_may_not_be_corrected():
    with pytest.raises(corrections.InvalidCorrection) as caught:
        corrections.clean_changes({"full_name": "Ana", "role": "admin"})
    assert caught.value.field == "changes.role"
    with pytest.raises(corrections.InvalidCorrection) as caught:
        corrections.clean_changes({})
    assert caught.value.field == "changes"
    assert list(corrections.clean_changes({"phone": "1", "email": "a@b.c"})) == ["email", "phone"]


def test_nobody_decides_their_own_correction():
    c = filed()
    with pytest.raises(corrections.OwnCorrection):
        c.approve(reviewer_id=REQUESTER)
    with pytest.raises(corrections.OwnCorrection):
        c.deny(reviewer_id=REQUESTER, sealed_reason="x")
    assert c.collect() == [] and c.state == corrections.PENDING


def test_approval_then_no_second_decision():
    c = filed()
    c.approve(reviewer_id=REVIEWER)
    [event] = c.collect()
    assert event.type == "privacy.correction_decided.v1"
    assert event.published == {"correction_id": "c1", "requester_id": REQUESTER, "fields": ["email", "full_name"],
                               "decision": "approved", "reviewer_id": REVIEWER}
    with pytest.raises(corrections.AlreadyDecided):
        c.deny(reviewer_id=REVIEWER, sealed_reason="x")


def test_a_denial_needs_a_reason_and_keeps_it_sealed():
    with pytest.raises(corrections.InvalidCorrection) as caught:
        corrections.clean_reason("   ", required=True)
    assert caught.value.field == "reason"
    c = filed()
    with pytest.raises(corrections.InvalidCorrection):
        c.deny(reviewer_id=REVIEWER, sealed_reason="")
    c.deny(reviewer_id=REVIEWER, sealed_reason="sealed-reason")
    [event] = c.collect()
    assert "reason" not in str(event.published) and event.data["sealed"] == {"reason": "sealed-reason"}
    assert c.state == corrections.DENIED


# -- policies ---------------------------------------------------------------------------------------


def test_the_seeded_text_is_the_shared_seed_file():
    seed = Path("/work/shared/seed/politica-de-privacidade-upgestao.txt")
    if seed.exists():  # the repository keeps its own copy; compared whenever the shared file is there
        assert policies.SEED_TEXT == seed.read_text(encoding="utf-8")
    assert policies.SEED_TEXT.startswith("Política de Privacidade do UpGestão")


def test_the_current_version_is_the_latest_in_effect():
    versions = [("2023-09-05", NOW - timedelta(days=900)), ("2026-01-01", NOW - timedelta(days=10)),
                ("2027-01-01", NOW + timedelta(days=30))]
    assert policies.current_of(versions, NOW) == "2026-01-01"
    assert policies.current_of([], NOW) is None
    assert policies.acceptance_required("2026-01-01", {"2023-09-05"}) == {"version": "2026-01-01"}
    assert policies.acceptance_required("2026-01-01", {"2026-01-01"}) is None


def test_policy_input_is_checked_by_field():
    with pytest.raises(policies.InvalidPolicy) as caught:
        policies.clean_version("../etc")
    assert caught.value.field == "version"
    with pytest.raises(policies.InvalidPolicy) as caught:
        policies.clean_effective_at("2026-01-01T00:00:00")  # no zone
    assert caught.value.field == "effective_at"
    # kept in UTC: PostgreSQL refuses an offset beyond 15:59, which ISO-8601 (and the API's schema) allows
    assert policies.clean_effective_at("4000-12-12T04:57:59.1-23:08").isoformat() == "4000-12-13T04:05:59.100000+00:00"
    with pytest.raises(policies.InvalidPolicy) as caught:
        policies.clean_effective_at("9999-12-31T23:00:00-05:00")  # past year 9999 in UTC
    assert caught.value.field == "effective_at"
    with pytest.raises(policies.InvalidPolicy) as caught:
        policies.PolicyVersion.publish("2026-01-01", effective_at=NOW, text=" ", summary="s", published_by=None,
                                       campaign_id="c")
    assert caught.value.field == "text"


def test_a_published_version_is_announced_with_ids_only():
    p = policies.PolicyVersion.publish("2026-01-01", effective_at=NOW, text="Texto", summary="Resumo",
                                       published_by=REVIEWER, campaign_id="camp")
    [event] = p.collect()
    assert event.type == "privacy.policy_published.v1"
    assert event.published == {"policy_version": "2026-01-01", "effective_at": NOW.isoformat(), "campaign_id": "camp",
                                "announced": True}


def test_an_acceptance_is_recorded_once_and_kept():
    a = policies.Acceptances(REQUESTER)
    assert a.accept("2023-09-05", NOW) is True
    assert a.accept("2023-09-05", NOW) is False
    assert a.accept("2026-01-01", NOW) is True
    events = a.collect()
    assert [e.data["policy_version"] for e in events] == ["2023-09-05", "2026-01-01"]
    assert events[0].published == {"user_id": REQUESTER, "policy_version": "2023-09-05"}
    assert events[0].data["user_id"] == REQUESTER  # the person's own records are found by it (access bundle)


# -- consents ---------------------------------------------------------------------------------------


def test_optional_purposes_are_off_until_chosen_and_essential_cannot_be_withdrawn():
    holder = consents.ConsentHolder("h")
    assert holder.purposes == {"essential": True, "analytics": False, "personalisation": False}
    with pytest.raises(consents.InvalidConsent) as caught:
        consents.clean_purposes({"essential": False})
    assert caught.value.field == "purposes.essential"
    with pytest.raises(consents.InvalidConsent) as caught:
        consents.clean_purposes({"marketing": True})
    assert caught.value.field == "purposes.marketing"
    with pytest.raises(consents.InvalidConsent) as caught:
        consents.clean_purposes({"analytics": "yes"})
    assert caught.value.field == "purposes.analytics"


def test_a_choice_a_repeat_and_a_withdrawal():
    holder = consents.ConsentHolder("h")
    assert holder.choose(kind="user", user_id=REQUESTER, chosen={"analytics": True}, policy_version="v1")
    assert not holder.choose(kind="user", user_id=REQUESTER, chosen={"analytics": True}, policy_version="v1")
    assert holder.choose(kind="user", user_id=REQUESTER, chosen={"analytics": False, "personalisation": True},
                         policy_version="v1")
    events = holder.collect()
    assert [e.data["changed"] for e in events] == [["analytics"], ["analytics", "personalisation"]]
    assert holder.purposes == {"essential": True, "analytics": False, "personalisation": True}
    assert holder.withdraw_all(kind="user", user_id=REQUESTER, policy_version="v1", request_id="r1")
    [revoked] = holder.collect()
    assert revoked.data["source"] == "revocation_request" and revoked.data["request_id"] == "r1"
    assert holder.purposes == {"essential": True, "analytics": False, "personalisation": False}
    assert not holder.withdraw_all(kind="user", user_id=REQUESTER, policy_version="v1", request_id="r2")


def test_a_visitor_is_known_by_a_random_uuid_never_published():
    visitor = consents.new_visitor_id()
    assert consents.clean_visitor_id(visitor) == visitor
    for bad in ("", "abc", visitor.upper(), REQUESTER.replace("4111", "1111"), "../x", 42, None):
        with pytest.raises(consents.InvalidConsent):
            consents.clean_visitor_id(bad)
    hid = consents.holder_id("visitor", visitor)
    assert visitor not in hid and hid != consents.holder_id("user", visitor)
    holder = consents.ConsentHolder(hid)
    holder.choose(kind="visitor", user_id=None, chosen={"analytics": True}, policy_version="v1")
    [event] = holder.collect()
    assert visitor not in str(event.published) and visitor not in str(event.data)
