"""Separation of duties (issue 11, finding 6): who may change roles, permissions and one's own credentials.

* ``audit.read`` (the compliance permissions) belongs only to compliance roles (``dpo``): an admin
  cannot read the audit log that records what admins do (checked with every role definition,
  ``roles.check_role_definition``);
* nobody changes their own role, nor the permissions of the role they hold: a grant always needs
  a second person;
* a compliance role is given or taken only by a holder of a compliance role, so an admin cannot
  make an accomplice (or a second account of theirs) dpo, nor demote the dpo who watches them;
* the system (start-up tasks, the CLI) is exempt: it is how the first holders get their roles.
"""

from __future__ import annotations

from .errors import ComplianceRoleAssignment, OwnRoleChange
from .roles import is_compliance


def check_role_edit(*, actor_role: str | None, role: str, system: bool) -> None:
    """The caller may change the permissions of ``role`` (their permission to do so checked apart)."""
    if not system and actor_role == role:
        raise OwnRoleChange("the permissions of the role you hold")


def check_role_assignment(*, actor_id: str | None, actor_role: str | None, user_id: str | None,
                          previous_role: str | None, new_role: str, system: bool) -> None:
    """The caller may move ``user_id`` from ``previous_role`` (None: a new user) to ``new_role``."""
    if system or previous_role == new_role:
        return
    if actor_id is not None and actor_id == user_id:
        raise OwnRoleChange("your own role")
    for role in (new_role, previous_role):
        if role is not None and is_compliance(role) and not is_compliance(actor_role):
            raise ComplianceRoleAssignment(role)
