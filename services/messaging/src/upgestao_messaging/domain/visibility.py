"""THE visibility rule (R2.1): who sees which conversation, and which chat. One place, used by every
list, read, count, unread count, search, receipt and push of messaging.

A viewer is a staff user as the service knows them from a verified token: their id, the permissions
their role grants (identity's roles) and the teams they belong to (messaging's own teams: given as a set,
or as :class:`Teams`, read the first time the rule looks at them; an assignee's own conversation is
decided without them).

Conversations:

* ``conversations.read_all`` — every conversation;
* ``conversations.read_team`` — the conversations of the viewer's teams, and those assigned to them;
* ``conversations.read`` alone (an attendant) — those assigned to them, and the unassigned ones of their
  teams;
* without ``conversations.read`` — none (even with ``read_team``/``read_all``: those widen what one may
  read, they do not grant reading).

A conversation one may not see is answered exactly as one that does not exist (404 ``not-found``).
The rule is a :class:`ConversationScope`: :meth:`ConversationScope.admits` decides one conversation,
and a repository turns the same scope into its query's filter (``everything``, or ``assignee_id =
assigned_to`` OR ``team_id IN team_ids`` OR (``assignee_id IS NULL`` AND ``team_id IN
unassigned_team_ids``)), so a list can never show what a read would refuse.

Chats: only current members see a chat or anything in it; a removed member sees nothing. Moderation
(``messages.moderate``) manages a group's members but does not read a chat it is not a member of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass

READ = "conversations.read"
WRITE = "conversations.write"
RECORD_INCOMING = "conversations.record_incoming"
READ_TEAM = "conversations.read_team"
READ_ALL = "conversations.read_all"
MANAGE_TEAMS = "teams.manage"
USE_CHATS = "chats.use"
MODERATE = "messages.moderate"


class Teams(Set[str]):
    """A viewer's team ids, read by ``load`` the first time they are looked at (then kept): a request the
    rule decides without them (the viewer's own conversation, a chat) does not read them at all."""

    __slots__ = ("_load", "_ids")

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._ids: frozenset[str] | None = None

    def _get(self) -> frozenset[str]:
        if self._ids is None:
            self._ids = frozenset(self._load())
        return self._ids

    def __contains__(self, team_id: object) -> bool:
        return team_id in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return f"Teams({set(self._ids) if self._ids is not None else 'not read yet'})"


@dataclass(frozen=True)
class Viewer:
    user_id: str
    permissions: frozenset[str]
    team_ids: Set[str]  # a frozenset, or Teams (read when first needed)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class ConversationScope:
    """Which conversations a viewer sees, as data: ``everything``, else the union of the three parts."""

    everything: bool = False
    assigned_to: str | None = None
    team_ids: Set[str] = frozenset()
    unassigned_team_ids: Set[str] = frozenset()

    @property
    def nothing(self) -> bool:
        return not self.everything and self.assigned_to is None and not self.team_ids and not self.unassigned_team_ids

    def admits(self, assignee_id: str | None, team_id: str | None) -> bool:
        if self.everything:
            return True
        if assignee_id is not None and assignee_id == self.assigned_to:
            return True
        if team_id is not None and team_id in self.team_ids:
            return True
        return assignee_id is None and team_id is not None and team_id in self.unassigned_team_ids


NOTHING = ConversationScope()


def conversation_scope(viewer: Viewer) -> ConversationScope:
    """The rule itself (see the module docstring)."""
    if not viewer.can(READ):
        return NOTHING
    if viewer.can(READ_ALL):
        return ConversationScope(everything=True)
    if viewer.can(READ_TEAM):
        return ConversationScope(assigned_to=viewer.user_id, team_ids=viewer.team_ids)
    return ConversationScope(assigned_to=viewer.user_id, unassigned_team_ids=viewer.team_ids)


def can_see_conversation(viewer: Viewer, assignee_id: str | None, team_id: str | None) -> bool:
    return conversation_scope(viewer).admits(assignee_id, team_id)


def can_see_chat(viewer: Viewer, member_ids: Iterable[str]) -> bool:
    """Members only (``chats.use`` too: a role that lost it reads no chat, even one it is in)."""
    return viewer.can(USE_CHATS) and viewer.user_id in set(member_ids)
