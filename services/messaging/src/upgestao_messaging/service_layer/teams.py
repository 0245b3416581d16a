"""Teams: created and changed by holders of ``teams.manage``, read by anyone who reads conversations.

Members are checked with identity's directory (active staff only). Team names and member ids are not
personal data: nothing here is sealed or opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgestao_kernel.errors import invalid_field, not_found
from upgestao_kernel.events import new_id

from ..adapters.ports import TeamRecord
from ..domain.teams import Team, clean_member_ids
from ..domain.visibility import MANAGE_TEAMS, READ
from .access import Deps, check_people, check_uuid, iso, require, require_any, viewer_of

TEAM_CHANGES = ("name", "member_ids")


def team_view(r: TeamRecord) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "member_ids": list(r.member_ids), "created_at": iso(r.created_at),
            "updated_at": iso(r.updated_at)}


class TeamUseCases:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def create_team(self, name: Any, member_ids: Any = None) -> dict[str, Any]:
        members = clean_member_ids(member_ids if member_ids is not None else [])
        with self.deps.unit_of_work() as uow:
            viewer = viewer_of(uow, self.deps.permissions_of)
            require(uow, viewer, MANAGE_TEAMS, action="create", resource_type="team")
            check_people(self.deps.directory, members, field="member_ids", want="staff")
            team = Team.create(new_id(), name, members)
            uow.save(team)
            record = uow.teams.get(team.id)
        return team_view(record)

    def update_team(self, team_id: Any, changes: Any) -> dict[str, Any]:
        if not isinstance(changes, Mapping) or not changes:
            raise invalid_field("changes", f"give at least one of {', '.join(TEAM_CHANGES)}")
        unknown = sorted(set(changes) - set(TEAM_CHANGES))
        if unknown:
            raise invalid_field(unknown[0], "unknown field")
        members = clean_member_ids(changes["member_ids"]) if "member_ids" in changes else None
        with self.deps.unit_of_work() as uow:
            viewer = viewer_of(uow, self.deps.permissions_of)
            require(uow, viewer, MANAGE_TEAMS, action="update", resource_type="team")
            tid = check_uuid("team_id", team_id, missing="team")
            team = uow.load(Team, tid)
            if team is None:
                raise not_found("team")
            if members is not None:
                check_people(self.deps.directory, [m for m in members if m not in team.member_ids],
                             field="member_ids", want="staff")
            team.update(name=changes.get("name"), member_ids=members)
            uow.save(team)
            record = uow.teams.get(tid)
        return team_view(record)

    def teams(self) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = viewer_of(uow, self.deps.permissions_of)
            require_any(uow, viewer, (READ, MANAGE_TEAMS), action="list", resource_type="team")
            return {"items": [team_view(t) for t in uow.teams.all()]}

    def team(self, team_id: Any) -> dict[str, Any]:
        with self.deps.unit_of_work() as uow:
            viewer = viewer_of(uow, self.deps.permissions_of)
            require_any(uow, viewer, (READ, MANAGE_TEAMS), action="read", resource_type="team")
            record = uow.teams.get(check_uuid("team_id", team_id, missing="team"))
            if record is None:
                raise not_found("team")
            return team_view(record)
