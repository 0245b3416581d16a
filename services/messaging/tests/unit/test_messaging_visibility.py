"""R2.1: one visibility rule, and no use case that gets around it.

The rule's table (viewer kind × conversation kind) is checked on the domain function, on the
repositories' filter (a list shows exactly what a read allows), and, table-driven, on every use case an
attendant could aim at another attendant's conversation: each answers 404 (or shows nothing)."""

from __future__ import annotations

import pytest
from upgestao_kernel.errors import ServiceError
from upgestao_messaging.adapters.memory_repositories import MemoryTeams
from upgestao_messaging.domain.visibility import (
    ConversationScope,
    Teams,
    Viewer,
    can_see_chat,
    can_see_conversation,
    conversation_scope,
)

from .conftest import ROLES

ME, OTHER = "me", "other"
MINE, THEIRS = "team-mine", "team-theirs"

# (assignee, team) of a conversation, by name
KINDS = {
    "assigned to me": (ME, None),
    "assigned to me, other team": (ME, THEIRS),
    "assigned to another, my team": (OTHER, MINE),
    "assigned to another, other team": (OTHER, THEIRS),
    "unassigned, my team": (None, MINE),
    "unassigned, other team": (None, THEIRS),
    "unassigned, no team": (None, None),
}
EXPECTED = {
    "admin": set(KINDS),
    "supervisor": {"assigned to me", "assigned to me, other team", "assigned to another, my team",
                   "unassigned, my team"},
    "attendant": {"assigned to me", "assigned to me, other team", "unassigned, my team"},
    "dpo": set(),
    "nobody": set(),
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_the_rule_table(role):
    viewer = Viewer(ME, ROLES.get(role, frozenset()), frozenset({MINE}))
    seen = {name for name, (assignee, team) in KINDS.items() if can_see_conversation(viewer, assignee, team)}
    assert seen == EXPECTED[role]


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_the_rule_table_with_teams_read_only_when_the_rule_gets_to_them(role):
    for name, (assignee, team) in KINDS.items():
        reads: list[str] = []
        teams = Teams(lambda reads=reads: reads.append("read") or {MINE})
        viewer = Viewer(ME, ROLES.get(role, frozenset()), teams)
        assert can_see_conversation(viewer, assignee, team) == (name in EXPECTED[role]), name
        assert len(reads) <= 1  # read once, then kept
        if assignee == ME:  # one's own conversation is decided without one's teams
            assert reads == [], name
    teams = Teams(lambda: [MINE])
    assert teams == frozenset({MINE}) and MINE in teams and list(teams) == [MINE] and len(teams) == 1


def test_an_attendant_reads_no_teams_to_send_to_and_page_their_own_conversation(world, monkeypatch):
    reads: list[str] = []
    real = MemoryTeams.ids_of_member
    monkeypatch.setattr(MemoryTeams, "ids_of_member",
                        lambda self, user_id: reads.append(user_id) or real(self, user_id))
    admin, attendant = world.staff("admin"), world.staff("attendant")
    team = world.api(admin).create_team("Support", [attendant])["id"]
    own, queued = (world.api(admin).open_conversation(
        {"customer_id": world.customer(), "channel": "whatsapp", "team_id": team, "assignee_id": assignee})["id"]
        for assignee in (attendant, None))
    api = world.api(attendant)
    api.send_message(own, {"body": "oi", "direction": "outgoing"})
    assert len(api.messages(own)["items"]) == 1
    assert reads == []
    api.send_message(queued, {"body": "oi", "direction": "outgoing"})  # the team's queue: the rule needs the teams
    assert reads == [attendant]


def test_read_team_or_read_all_without_read_sees_nothing():
    viewer = Viewer(ME, frozenset({"conversations.read_all", "conversations.read_team"}), frozenset({MINE}))
    assert conversation_scope(viewer).nothing
    assert not any(can_see_conversation(viewer, a, t) for a, t in KINDS.values())


def test_chats_are_for_current_members_with_chats_use():
    member = Viewer(ME, frozenset({"chats.use"}), frozenset())
    assert can_see_chat(member, [ME, OTHER])
    assert not can_see_chat(member, [OTHER])
    assert not can_see_chat(Viewer(ME, frozenset(), frozenset()), [ME, OTHER])
    moderator = Viewer(ME, ROLES["admin"], frozenset())
    assert not can_see_chat(moderator, [OTHER])  # moderation manages, it does not read


@pytest.mark.parametrize("role", ["admin", "supervisor", "attendant"])
def test_the_list_shows_exactly_what_a_read_allows(world, role):
    admin = world.staff("admin")
    viewer = world.staff(role)
    other = world.staff("attendant")
    mine = world.api(admin).create_team("Mine", [viewer])["id"]
    theirs = world.api(admin).create_team("Theirs", [other])["id"]
    ids = {}
    names = {ME: viewer, OTHER: other, None: None}
    teams = {MINE: mine, THEIRS: theirs, None: None}
    for name, (assignee, team) in KINDS.items():
        ids[name] = world.api(admin).open_conversation({"customer_id": world.customer(), "channel": "web",
                                                        "assignee_id": names[assignee], "team_id": teams[team]})["id"]
    api = world.api(viewer)
    listed = {item["id"] for item in api.conversations(limit=200)["items"]}
    readable = set()
    for conversation_id in ids.values():
        try:
            api.conversation(conversation_id)
            readable.add(conversation_id)
        except ServiceError as exc:
            assert exc.status == 404
    assert listed == readable == {ids[name] for name in EXPECTED[role]}


def test_scope_of_nothing_admits_nothing():
    assert not ConversationScope().admits(None, None)
    assert not ConversationScope().admits(ME, MINE)


class TestAnAttendantNeverReachesAnothersConversation:
    """Attendants A and B in one team; the conversation is assigned to B, with messages, read cursors,
    a search hit. Every use case A may call with its id (or its message's) is refused as absent."""

    @pytest.fixture
    def scene(self, world):
        admin = world.staff("admin")
        a, b = world.staff("attendant"), world.staff("attendant")
        team = world.api(admin).create_team("Support", [a, b])["id"]
        conversation = world.api(admin).open_conversation(
            {"customer_id": world.customer(), "channel": "whatsapp", "team_id": team, "assignee_id": b,
             "subject": "Boleto atrasado"})
        api_b = world.api(b)
        sent = api_b.send_message(conversation["id"], {"body": "segredo do cliente xyzzy", "direction": "outgoing"})
        api_b.mark_read(conversation["id"], sent["message"]["id"])
        return world, a, conversation["id"], sent["message"]["id"]

    ROUTES = {
        "conversation": lambda api, c, m: api.conversation(c),
        "update status": lambda api, c, m: api.update_conversation(c, {"status": "resolved"}),
        "take it": lambda api, c, m: api.update_conversation(
            c, {"assignee_id": api.deps.unit_of_work().context.actor_id}),
        "labels": lambda api, c, m: api.update_conversation(c, {"labels": ["x"]}),
        "messages": lambda api, c, m: api.messages(c),
        "messages after": lambda api, c, m: api.messages(c, after=m),
        "send outgoing": lambda api, c, m: api.send_message(c, {"body": "oi", "direction": "outgoing"}),
        "send private note": lambda api, c, m: api.send_message(c, {"body": "oi", "direction": "outgoing",
                                                                    "private": True}),
        "record incoming": lambda api, c, m: api.send_message(c, {"body": "oi", "direction": "incoming"}),
        "mark read": lambda api, c, m: api.mark_read(c, m),
        "receipts": lambda api, c, m: api.read_receipts(c),
        "message": lambda api, c, m: api.message(m),
        "edit": lambda api, c, m: api.edit_message(m, "mudado"),
        "delete": lambda api, c, m: api.delete_message(m),
        "history": lambda api, c, m: api.message_history(m),
        "search in it": lambda api, c, m: api.search("xyzzy", conversation_id=c),
        "as a chat": lambda api, c, m: api.chat(c),
        "chat messages": lambda api, c, m: api.chat_messages(c),
        "send as chat": lambda api, c, m: api.send_chat_message(c, {"body": "oi"}),
    }

    @pytest.mark.parametrize("route", sorted(ROUTES))
    def test_route_answers_not_found(self, scene, route):
        world, a, conversation_id, message_id = scene
        before = len(world.store.events)
        with pytest.raises(ServiceError) as caught:
            self.ROUTES[route](world.api(a), conversation_id, message_id)
        assert caught.value.status == 404, caught.value
        assert len(world.store.events) == before  # nothing happened to it either

    def test_lists_counts_and_search_show_nothing_of_it(self, scene):
        world, a, conversation_id, message_id = scene
        api = world.api(a)
        assert api.conversations()["items"] == []
        assert api.unread() == {"total": 0, "items": []}
        assert api.search("xyzzy")["items"] == []
        assert api.search("segredo cliente")["items"] == []

    def test_the_attempt_is_audited_as_denied(self, scene):
        world, a, conversation_id, _ = scene
        with pytest.raises(ServiceError):
            world.api(a).conversation(conversation_id)
        denied = world.store.audit_records(outcome="denied", resource_id=conversation_id)
        assert denied and denied[-1]["actor_id"] == a and denied[-1]["purpose"] == "visibility"
