"""The short, deterministic chaos run for CI (issue 9): ``bench/chaos.py`` with a fixed plan --
kills of services and relays (the notifier and the local SMTP sink among them: the supervisor
restarts them) and one broker stop/start -- under the recorded workload, on fresh PostgreSQL
databases; then nothing lost, nothing duplicated, every audited access recorded once, the audit
log verified, and exactly one e-mail per acknowledged password reset and per first login (issue 12).

``make chaos`` runs the long, random version (``--seed`` reproduces one)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from e2e_platform import load_script

PLAN = ("kill:identity@6,kill:mail-sink@10,kill:privacy-relay@14,kill:messaging@17,stall:privacy@20/3,"
        "kill:messaging-relay@24,broker@28/4,kill:notifier@34,kill:gateway@40,kill:identity-relay@46,kill:privacy@52")


@pytest.fixture(scope="module")
def chaos():
    return load_script("bench/chaos.py", "upgestao_chaos", imports_from=("bench", "scripts"))


def test_a_seed_reproduces_the_schedule(chaos):
    targets = chaos.process_names()
    first = chaos.random_schedule(7, 600, chaos.FAULT_KINDS, 10, targets)
    assert first == chaos.random_schedule(7, 600, chaos.FAULT_KINDS, 10, targets)
    assert first != chaos.random_schedule(8, 600, chaos.FAULT_KINDS, 10, targets)
    assert 30 <= len(first) <= 90  # about duration / every, within the first 90 %
    assert all(5 < f.at_s < 540 for f in first)
    assert [f.at_s for f in first] == sorted(f.at_s for f in first)
    assert {f.kind for f in first} == set(chaos.FAULT_KINDS)
    assert all(f.target in targets for f in first if f.kind in ("kill", "stall"))
    assert all(2 <= f.duration_s <= 8 for f in first if f.kind in ("stall", "broker"))
    only = chaos.random_schedule(7, 600, ("kill",), 10, targets)
    assert only and {f.kind for f in only} == {"kill"}


def test_a_plan_is_parsed_and_checked(chaos):
    plan = chaos.parse_plan("broker@40/5,kill:identity@10,stall:privacy@20/4")
    assert [f.label() for f in plan] == ["kill:identity", "stall:privacy/4s", "broker/5s"]
    assert [f.at_s for f in plan] == [10, 20, 40]
    for bad in ("kill:nobody@5", "explode@5", "kill:identity"):
        with pytest.raises(chaos.ChaosError):
            chaos.parse_plan(bad)
    assert {"notifier", "notifier-relay", "mail-sink"} <= set(chaos.process_names())
    assert [f.label() for f in chaos.parse_plan("kill:mail-sink@3")] == ["kill:mail-sink"]


# -- the mail check, on a record and a sink made up here ---------------------------------------

ALICE, BOB, CAROL = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", \
    "33333333-3333-4333-8333-333333333333"
USERS = {ALICE: "alice@example.com", BOB: "bob@example.com", CAROL: "carol@example.com"}


def reset(chaos, user_id, outcome="ack", address=None):
    return chaos.Op("reset", f"chaos-reset-{user_id or 'nobody'}", "POST", "/v1/auth/password-reset",
                    outcome=outcome, email=address or USERS.get(user_id), user_id=user_id)


def delivery(n, kind, recipient, status="sent", confirmed=True, last_error=None):
    return {"id": f"d{n}", "event_id": f"e{n}", "kind": kind, "recipient_id": recipient, "status": status,
            "attempts": 1, "last_code": 250, "last_error": last_error, "confirmed": confirmed,
            "message_id": f"<m{n}@upgestao.local>"}


def mail(chaos, n, to, message_id=None):
    return chaos.Mail(f"f{n}.eml", message_id or f"<m{n}@upgestao.local>", frozenset({to}))


def test_the_mail_check_passes_one_e_mail_per_delivery(chaos):
    found = chaos.Findings()
    ops = [reset(chaos, ALICE), reset(chaos, BOB, "unknown"), reset(chaos, None, address="nobody@example.com")]
    deliveries = [delivery(1, "password_reset", ALICE), delivery(2, "new_login", ALICE),
                  delivery(3, "new_login", CAROL)]
    mails = [mail(chaos, 1, USERS[ALICE]), mail(chaos, 2, USERS[ALICE]), mail(chaos, 3, USERS[CAROL])]
    facts = chaos.check_mail(found, ops, USERS, {ALICE, CAROL}, deliveries, mails, confirmable=True)
    assert dict(found.violations) == {}
    assert facts["sent_checked"] == 3 and facts["resets"] == {
        "acknowledged": 1, "unknown_outcome": 1, "rejected": 0, "unknown_email": 1}


def test_the_mail_check_finds_every_broken_promise(chaos):
    found = chaos.Findings()
    ops = [reset(chaos, ALICE), reset(chaos, BOB), reset(chaos, None, address="nobody@example.com")]
    deliveries = [
        delivery(1, "password_reset", ALICE),  # sent twice
        delivery(2, "password_reset", ALICE, confirmed=False),  # a third for two requests, unconfirmed
        delivery(3, "password_reset", ALICE, status="soft_failed"),  # never final
        delivery(4, "new_login", CAROL, status="hard_failed", last_error="550 no such user"),
        delivery(5, "new_login", BOB, status="hard_failed",  # a gone notice: listed only
                 last_error="the notice is no longer available (expired or withdrawn)"),
    ]
    mails = [mail(chaos, 1, USERS[ALICE]), mail(chaos, 10, USERS[ALICE], "<m1@upgestao.local>"),
             mail(chaos, 2, USERS[CAROL]), mail(chaos, 9, "nobody@example.com")]
    facts = chaos.check_mail(found, ops, USERS, {ALICE, CAROL}, deliveries, mails, confirmable=True)
    kinds = {kind: len(items) for kind, items in found.violations.items()}
    assert kinds == {"mail_duplicated": 2, "mail_phantom": 1, "mail_wrong_recipient": 1, "mail_unconfirmed": 1,
                     "mail_not_final": 1, "mail_failed": 1, "mail_lost": 2, "mail_to_unknown": 1}, found.violations
    assert any("user " + BOB in item for item in found.violations["mail_lost"])  # acknowledged, no delivery
    assert any("user " + ALICE in item for item in found.violations["mail_lost"])  # logged in, no alert
    assert len(facts["listed"]) == 1 and "no longer available" in facts["listed"][0]
    assert not any("@" in item.replace("@upgestao.local", "") for items in found.violations.values()
                   for item in items)  # ids, Message-IDs and file names only: no address


def test_the_sink_files_are_read_by_their_headers(chaos, tmp_path):
    message = EmailMessage()
    message["To"] = "Alice <Alice@Example.com>"
    message["Message-ID"] = "<m1@upgestao.local>"
    message.set_content("reset link")
    (tmp_path / "20260101T000000.000000Z-000001-abc.eml").write_bytes(bytes(message))
    (tmp_path / ".x.tmp").write_bytes(b"half")
    assert chaos.sink_mail(tmp_path) == [chaos.Mail("20260101T000000.000000Z-000001-abc.eml", "<m1@upgestao.local>",
                                                    frozenset({"alice@example.com"}))]


def test_settling_waits_for_what_is_owed_and_final(chaos):
    ops = [reset(chaos, ALICE)]
    answers = iter([[], [delivery(1, "password_reset", ALICE, status="sending")],
                    [delivery(1, "password_reset", ALICE)]])
    seen = []

    def fetch():
        seen.append(1)
        return next(answers)

    assert chaos.settled_deliveries(fetch, ops, set(), timeout_s=5, pause_s=0.01)[0]["status"] == "sent"
    assert len(seen) == 3
    assert chaos.settled_deliveries(lambda: [], ops, set(), timeout_s=0, pause_s=0.01) == []  # bounded


@pytest.mark.e2e
@pytest.mark.timeout(330)
def test_short_chaos_run_keeps_every_promise(chaos):
    config = chaos.Config(duration_s=60, seed=20261201, database="postgresql", plan=chaos.parse_plan(PLAN),
                          workers=2, quiesce_s=120, write=False)
    result = chaos.run_chaos(config)
    table = chaos.render(result)
    print(table)
    assert result["faults"]["injected"] == len(config.plan), table
    assert result["faults"]["by_kind"] == {"kill": 9, "stall": 1, "broker": 1}, table
    assert result["violations"] == {}, table
    assert result["lost"] == 0 and result["duplicated"] == 0, table
    assert result["audit"]["verify"].startswith("OK"), table
    # the run did real work, and checked it
    assert result["customers"]["acknowledged"] >= 20, table
    # messages (issue 13): sent with client_message_ids, repeated after a lost answer, each found once
    assert result["messages"]["sends_ack"] >= 10 and result["messages"]["pages_read"] >= 1, table
    assert result["effects_checked"]["audited_requests"] >= result["customers"]["acknowledged"], table
    # e-mail: the resets acknowledged and the first logins (the admin, 2 attendants, the dpo), each one sent
    assert result["mail"]["resets"]["acknowledged"] >= 5 and result["mail"]["new_login_users"] == 4, table
    assert result["effects_checked"]["mails"] >= result["mail"]["resets"]["acknowledged"] + 4, table
    assert all(run["recovery_s"] is not None for run in result["faults"]["runs"]), table
    assert result["restarts"] and all(r["kind"] != "gave_up" for r in result["restarts"]), table
