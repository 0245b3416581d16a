"""Conversations on fakes: opening (checked against the directory), the status machine, snoozing and its
timer, assignment, priority and labels, listing with filters and cursors, teams, and the events out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from upgestao_kernel.errors import ServiceError


@pytest.fixture
def desk(world):
    admin = world.staff("admin")
    agent = world.staff("attendant")
    team = world.api(admin).create_team("Suporte", [agent])["id"]
    customer = world.customer()
    return world, admin, agent, team, customer


def _open(world, user, customer, **extra):
    return world.api(user).open_conversation({"customer_id": customer, "channel": "whatsapp", **extra})


def test_open_answers_open_with_the_subject_sealed_under_the_customer(desk):
    world, admin, agent, team, customer = desk
    opened = _open(world, agent, customer, team_id=team, subject="Fatura de março", labels=["VIP", "vip", " boleto "])
    assert opened["status"] == "open" and opened["priority"] == "medium" and opened["labels"] == ["vip", "boleto"]
    assert opened["subject"] == "Fatura de março"
    row = world.store.rows("conversations")[0]
    assert "março" not in str(row) and row["subject_sealed"].startswith("fake1:")
    sealed = world.store.audit_records(action="create", resource_type="conversation")
    assert sealed[0]["subject_id"] == customer and sealed[0]["fields"] == ["subject"]
    assert world.api(agent).conversation(opened["id"])["subject"] == "Fatura de março"
    assert world.store.audit_records(action="read", resource_type="conversation")[-1]["subject_id"] == customer
    published = world.store.published("messaging.conversation_opened.v1")[0]["data"]
    assert published == {"conversation_id": opened["id"], "customer_id": customer, "channel": "whatsapp",
                         "team_id": team, "assignee_id": None}


def test_opening_never_hides_a_conversation_from_its_opener(desk):
    """Outside the queues of one's teams, a conversation opened without an assignee is the opener's; inside
    them it waits unassigned in the team's queue; an explicit null, or a reader of everything, leaves it so."""
    world, admin, agent, team, customer = desk
    loner = world.staff("attendant")  # in no team
    own = _open(world, loner, customer)
    assert own["assignee_id"] == loner and world.api(loner).conversation(own["id"])["id"] == own["id"]
    queued = _open(world, agent, customer, team_id=team)
    assert queued["assignee_id"] is None and world.api(agent).conversation(queued["id"])["assignee_id"] is None
    assert _open(world, admin, customer)["assignee_id"] is None  # the admin sees every conversation
    unassigned = _open(world, loner, customer, assignee_id=None)
    assert unassigned["assignee_id"] is None
    with pytest.raises(ServiceError) as caught:  # asked for explicitly: hidden from its opener, as asked
        world.api(loner).conversation(unassigned["id"])
    assert caught.value.status == 404


@pytest.mark.parametrize(("field", "data"), [
    ("customer_id", {"customer_id": "not-a-uuid"}),
    ("channel", {"channel": "pigeon"}),
    ("priority", {"priority": "whenever"}),
    ("labels", {"labels": "vip"}),
    ("subject", {"subject": ""}),
    ("bogus", {"bogus": 1}),
])
def test_open_refuses_bad_fields(desk, field, data):
    world, admin, agent, team, customer = desk
    with pytest.raises(ServiceError) as caught:
        _open(world, agent, customer, **data)
    assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == field


def test_open_checks_people_with_the_directory(desk):
    world, admin, agent, team, customer = desk
    for bad in (agent, world.customer(active=False), world.staff()):  # staff, inactive, and staff again
        with pytest.raises(ServiceError) as caught:
            _open(world, agent, bad)
        assert caught.value.extensions["errors"][0]["field"] == "customer_id"
    with pytest.raises(ServiceError) as caught:
        _open(world, agent, customer, assignee_id=world.staff(active=False))
    assert caught.value.extensions["errors"][0]["field"] == "assignee_id"
    with pytest.raises(ServiceError) as caught:
        _open(world, agent, customer, team_id=customer)
    assert caught.value.extensions["errors"][0]["field"] == "team_id"


def test_opening_needs_write(desk):
    world, *_, customer = desk
    dpo = world.staff("dpo")
    with pytest.raises(ServiceError) as caught:
        _open(world, dpo, customer)
    assert caught.value.status == 403
    assert world.store.audit_records(outcome="denied", actor_id=dpo)


def test_no_token_no_answer(desk):
    world, *_ = desk
    for api in (world.api(None), world.system()):
        with pytest.raises(ServiceError) as caught:
            api.conversations()
        assert caught.value.status == 403


def test_the_whole_lifecycle(desk):
    world, admin, agent, team, customer = desk
    c = _open(world, agent, customer, assignee_id=agent)["id"]
    api = world.api(agent)
    assert api.update_conversation(c, {"status": "pending"})["status"] == "pending"
    until = (world.clock.now + timedelta(hours=1)).isoformat()
    snoozed = api.update_conversation(c, {"status": "snoozed", "snoozed_until": until})
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"] == until
    api.send_message(c, {"body": "Alguma novidade?", "direction": "incoming"})
    reopened = api.conversation(c)
    assert reopened["status"] == "open" and reopened["snoozed_until"] is None
    assert api.update_conversation(c, {"status": "resolved"})["status"] == "resolved"
    changes = [e["data"] for e in world.store.published("messaging.conversation_status_changed.v1")]
    assert [(d["previous"], d["status"], d["reason"]) for d in changes] == [
        ("open", "pending", "requested"), ("pending", "snoozed", "requested"), ("snoozed", "open", "incoming_message"),
        ("open", "resolved", "requested")]
    api.send_message(c, {"body": "Obrigado!", "direction": "outgoing"})
    assert api.conversation(c)["status"] == "resolved"  # an outgoing reply does not reopen


@pytest.mark.parametrize(("changes", "field"), [
    ({"status": "snoozed"}, "snoozed_until"),
    ({"status": "snoozed", "snoozed_until": "2001-01-01T00:00:00+00:00"}, "snoozed_until"),
    ({"status": "snoozed", "snoozed_until": "2099-01-01T00:00:00"}, "snoozed_until"),
    ({"status": "open", "snoozed_until": "2099-01-01T00:00:00+00:00"}, "snoozed_until"),
    ({"snoozed_until": "2099-01-01T00:00:00+00:00"}, "snoozed_until"),
    ({"status": "closed"}, "status"),
    ({"priority": "asap"}, "priority"),
    ({}, "changes"),
])
def test_status_machine_refusals(desk, changes, field):
    world, admin, agent, team, customer = desk
    c = _open(world, agent, customer, assignee_id=agent)["id"]
    with pytest.raises(ServiceError) as caught:
        world.api(agent).update_conversation(c, changes)
    assert caught.value.status == 422 and caught.value.extensions["errors"][0]["field"] == field


def test_a_resolved_conversation_is_reopened_before_it_is_snoozed(desk):
    world, admin, agent, team, customer = desk
    c = _open(world, agent, customer, assignee_id=agent)["id"]
    api = world.api(agent)
    api.update_conversation(c, {"status": "resolved"})
    with pytest.raises(ServiceError) as caught:
        api.update_conversation(c, {"status": "snoozed",
                                    "snoozed_until": (world.clock.now + timedelta(hours=1)).isoformat()})
    assert caught.value.extensions["errors"][0]["field"] == "status"


def test_the_snooze_timer_reopens_as_the_system(desk):
    world, admin, agent, team, customer = desk
    api = world.api(agent)
    early, late = (_open(world, agent, customer, assignee_id=agent)["id"] for _ in range(2))
    for c, minutes in ((early, 5), (late, 60)):
        api.update_conversation(c, {"status": "snoozed",
                                    "snoozed_until": (world.clock.now + timedelta(minutes=minutes)).isoformat()})
    assert world.system().wake_snoozed() == 0
    world.clock.advance(10 * 60)
    assert world.system().wake_snoozed() == 1
    assert api.conversation(early)["status"] == "open" and api.conversation(late)["status"] == "snoozed"
    event = world.store.stream(f"conversation-{early}")[-1]
    assert event.data["reason"] == "snooze_expired" and event.actor.id == "system"


def test_assignment_priority_labels_and_their_events(desk):
    world, admin, agent, team, customer = desk
    other = world.staff("attendant")
    c = _open(world, admin, customer, team_id=team)["id"]
    api = world.api(admin)
    assigned = api.update_conversation(c, {"assignee_id": other, "priority": "urgent", "labels": ["b", "a"]})
    assert (assigned["assignee_id"], assigned["priority"], assigned["labels"]) == (other, "urgent", ["b", "a"])
    assert world.store.published("messaging.conversation_assigned.v1")[0]["data"] == {
        "conversation_id": c, "assignee_id": other, "previous_assignee_id": None, "team_id": team,
        "previous_team_id": team}
    assert world.store.published("messaging.conversation_updated.v1")[0]["data"] == {
        "conversation_id": c, "changed": ["priority", "labels"]}
    assert api.update_conversation(c, {"assignee_id": None})["assignee_id"] is None
    with pytest.raises(ServiceError):
        api.update_conversation(c, {"assignee_id": customer})  # a customer is not staff


def test_list_filters_order_and_cursor(desk):
    world, admin, agent, team, customer = desk
    api = world.api(admin)
    ids = []
    for n in range(5):
        ids.append(_open(world, admin, customer if n % 2 else world.customer(), labels=["vip"] if n < 2 else [],
                         team_id=team)["id"])
        world.clock.advance(1)
    api.update_conversation(ids[0], {"status": "pending"})  # the latest activity now
    first = api.conversations(limit=2)
    assert [i["id"] for i in first["items"]] == [ids[0], ids[4]] and first["next_cursor"]
    second = api.conversations(limit=2, cursor=first["next_cursor"])
    assert [i["id"] for i in second["items"]] == [ids[3], ids[2]]
    assert api.conversations(limit=2, cursor=second["next_cursor"])["next_cursor"] is None
    assert [i["id"] for i in api.conversations({"status": "pending"})["items"]] == [ids[0]]
    assert {i["id"] for i in api.conversations({"label": "VIP"})["items"]} == {ids[0], ids[1]}
    assert {i["id"] for i in api.conversations({"customer_id": customer})["items"]} == {ids[1], ids[3]}
    assert all("subject" not in i for i in api.conversations()["items"])
    for bad in ({"status": "x"}, {"nope": 1}, {"team_id": "x"}):
        with pytest.raises(ServiceError):
            api.conversations(bad)
    with pytest.raises(ServiceError):
        api.conversations(cursor="garbage")
    with pytest.raises(ServiceError):
        api.conversations(limit=0)


def test_teams_are_managed_with_teams_manage(desk):
    world, admin, agent, team, customer = desk
    with pytest.raises(ServiceError) as caught:
        world.api(agent).create_team("Nope", [])
    assert caught.value.status == 403
    updated = world.api(admin).update_team(team, {"name": "Suporte N2", "member_ids": [agent, admin]})
    assert updated["name"] == "Suporte N2" and sorted(updated["member_ids"]) == sorted([agent, admin])
    assert world.api(agent).team(team)["name"] == "Suporte N2"
    assert [t["id"] for t in world.api(agent).teams()["items"]] == [team]
    with pytest.raises(ServiceError) as caught:
        world.api(admin).update_team(team, {"member_ids": [customer]})
    assert caught.value.status == 422
    with pytest.raises(ServiceError) as caught:
        world.api(world.staff("dpo")).teams()
    assert caught.value.status == 403
    assert world.store.published("messaging.team_updated.v1")[0]["data"]["changed"] == ["name", "member_ids"]
