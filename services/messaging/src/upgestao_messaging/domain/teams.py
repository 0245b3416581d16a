"""Teams: a name and staff members, managed by holders of ``teams.manage``. A team is data, used by the
visibility rule (supervisors see their teams' conversations, attendants their teams' unassigned ones)."""

from __future__ import annotations

from collections.abc import Iterable

from upgestao_kernel.events import Aggregate

from .errors import InvalidValue
from .events import TeamCreated, TeamUpdated

MAX_NAME = 100
MAX_MEMBERS = 500


def clean_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise InvalidValue("name", f"must be 1 to {MAX_NAME} characters")
    return name.strip()


def clean_member_ids(member_ids: object, field: str = "member_ids") -> list[str]:
    """Distinct ids in the order given (their existence is the directory's to confirm)."""
    if not isinstance(member_ids, list | tuple) or not all(isinstance(m, str) and m for m in member_ids):
        raise InvalidValue(field, "must be a list of user ids")
    unique = list(dict.fromkeys(member_ids))
    if len(unique) > MAX_MEMBERS:
        raise InvalidValue(field, f"at most {MAX_MEMBERS} members")
    return unique


class Team(Aggregate):
    stream_type = "team"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.member_ids: list[str] = []

    @classmethod
    def create(cls, id: str, name: str, member_ids: Iterable[str]) -> Team:
        team = cls(id)
        team.trigger(TeamCreated(name=clean_name(name), member_ids=clean_member_ids(list(member_ids))))
        return team

    def update(self, name: str | None = None, member_ids: list[str] | None = None) -> list[str]:
        """The changed field names (nothing recorded when nothing changes)."""
        new_name = clean_name(name) if name is not None else self.name
        new_members = clean_member_ids(member_ids) if member_ids is not None else self.member_ids
        changed = [f for f, same in (("name", new_name == self.name),
                                     ("member_ids", set(new_members) == set(self.member_ids))) if not same]
        if changed:
            self.trigger(TeamUpdated(name=new_name, member_ids=new_members, changed=changed))
        return changed

    def when_team_created(self, name: str, member_ids: list[str]) -> None:
        self.name, self.member_ids = name, list(member_ids)

    def when_team_updated(self, name: str, member_ids: list[str], changed: list[str]) -> None:
        self.name, self.member_ids = name, list(member_ids)
