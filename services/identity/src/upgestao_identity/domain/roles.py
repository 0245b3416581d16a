"""Permission levels (R2.1): roles are named sets of permissions, stored as data.

The four built-in roles start with the defaults below; an admin changes them
(``PUT /v1/roles/{name}``). Each role also lists the own-profile fields its
holders may edit directly; any other field needs a correction request (R5.1).
"""

from __future__ import annotations

from collections.abc import Iterable

from upgestao_kernel.events import Aggregate

from .errors import AdminFloorRemoved, CompliancePermissions, NotSelfEditable, RoleNotFound, UnknownPermissions
from .events import RoleDefined, RolePermissionsChanged

PERMISSIONS: dict[str, str] = {
    "profile.read": "Read one's own profile",
    "profile.update": "Edit one's own profile (the role's self-editable fields)",
    "password.change": "Change one's own password",
    "sessions.read": "List one's own sessions",
    "sessions.delete": "End one's own sessions (log out)",
    "datamap.read": "Read the personal-data map",
    "users.list": "List staff users",
    "users.read": "Read any staff user's profile",
    "users.create": "Create staff users",
    "users.update": "Edit any staff user's profile and role",
    "users.deactivate": "Deactivate staff users",
    "customers.list": "List and search customers",
    "customers.read": "Read customers",
    "customers.create": "Create customers",
    "customers.update": "Edit customers",
    "roles.read": "Read roles and their permissions",
    "roles.update": "Change the permissions of a role",
    "audit.read": "Query the audit log",
    "notifications.read": "Read e-mail delivery records (no message contents)",
    "conversations.read": "See the customer conversations the visibility rule allows, and their messages",
    "conversations.write": "Open conversations, reply, write private notes, triage (status, assignee, team, labels)",
    "conversations.record_incoming": "Record a customer's incoming message (a call, a letter, a walk-in)",
    "conversations.read_team": "See every conversation of one's teams (not only one's own and the unassigned)",
    "conversations.read_all": "See every customer conversation",
    "teams.manage": "Create teams and change their members",
    "chats.use": "Staff chat: start chats and read and post in those one is a member of",
    "messages.moderate": "Edit or delete any message at any time; manage any group chat's members",
    "privacy.self": "Exercise one's own privacy rights: file requests and corrections, consents, accept policies",
    "privacy.review": "Review data-subject requests and corrections (the DPO's queue)",
    "privacy.policies": "Publish privacy-policy versions",
    "privacy.incidents": "Record and confirm security incidents (breach notices)",
    "integrations.manage": "Register integrations (webhook endpoints), see their deliveries, and issue API keys",
}

SELF_EDITABLE_CHOICES = ("full_name", "email", "phone", "birth_date", "address", "job_title", "gender", "photo")

_OWN = ("profile.read", "profile.update", "password.change", "sessions.read", "sessions.delete", "datamap.read",
        "privacy.self")
_CONTACT = ("phone", "address", "gender", "photo")
# what every attendant does all day (messaging, issue 13); visibility widens with read_team / read_all
_HELP_DESK = ("conversations.read", "conversations.write", "conversations.record_incoming", "chats.use")

# Permissions only a compliance role may hold (separation of duties: those who act are not those who
# read the record of what they did). A role is a compliance role by definition here, never by an edit.
COMPLIANCE_PERMISSIONS = ("audit.read", "privacy.review", "privacy.policies", "privacy.incidents")

BUILT_IN_ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "admin": {
        "permissions": tuple(p for p in PERMISSIONS if p not in COMPLIANCE_PERMISSIONS),
        "self_editable_fields": SELF_EDITABLE_CHOICES,
    },
    "supervisor": {
        "permissions": _OWN + ("users.list", "users.read", "customers.list", "customers.read",
                               "customers.create", "customers.update") + _HELP_DESK + ("conversations.read_team",),
        "self_editable_fields": _CONTACT,
    },
    "attendant": {
        "permissions": _OWN + ("customers.list", "customers.read", "customers.create", "customers.update") + _HELP_DESK,
        "self_editable_fields": _CONTACT,
    },
    "dpo": {
        "permissions": _OWN + ("users.list", "users.read", "customers.list", "customers.read", "roles.read",
                               "audit.read", "notifications.read", "chats.use", "privacy.review",
                               "privacy.policies", "privacy.incidents"),
        "self_editable_fields": _CONTACT,
    },
}
ROLE_NAMES = tuple(BUILT_IN_ROLES)

# Permissions added to the catalogue after a platform may already have defined its roles, with the
# built-in roles that get them by default. A database whose roles were defined before is given them
# once, at start (``service_layer/roles.py``: ``grant_introduced``); an admin who later takes one
# away is not overruled at the next start.
INTRODUCED_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "notifications.read": ("admin", "dpo"),
    "conversations.read": ("admin", "supervisor", "attendant"),
    "conversations.write": ("admin", "supervisor", "attendant"),
    "conversations.record_incoming": ("admin", "supervisor", "attendant"),
    "conversations.read_team": ("supervisor",),
    "conversations.read_all": ("admin",),
    "teams.manage": ("admin",),
    "chats.use": ("admin", "supervisor", "attendant", "dpo"),
    "messages.moderate": ("admin",),
    "privacy.self": ("admin", "supervisor", "attendant", "dpo"),
    "privacy.review": ("dpo",),
    "privacy.policies": ("dpo",),
    "privacy.incidents": ("dpo",),
    "integrations.manage": ("admin",),
}
COMPLIANCE_ROLES = frozenset({"dpo"})


def is_compliance(role: str | None) -> bool:
    """Whether ``role`` is a compliance role (data: :data:`COMPLIANCE_ROLES`, not editable through the API)."""
    return role in COMPLIANCE_ROLES


def effective_permissions(role: str | None, permissions: Iterable[str]) -> frozenset[str]:
    """What ``role`` may do: its stored permissions, without any compliance permission of a role that is
    not a compliance role (one granted before the rule existed grants nothing)."""
    held = frozenset(permissions)
    return held if is_compliance(role) else held - frozenset(COMPLIANCE_PERMISSIONS)
# The synthetic roles of API keys' principals (``apikey:<key id>``, issue 15): no real role is ever named so.
KEY_ROLE_PREFIX = "apikey:"

# The admin role keeps these, so nobody can lock every admin out of role management.
ADMIN_FLOOR = ("roles.read", "roles.update", "users.update")


def check_role_definition(name: str, permissions: Iterable[str], self_editable: Iterable[str]) -> None:
    if name.startswith(KEY_ROLE_PREFIX):
        raise RoleNotFound(name)
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        raise UnknownPermissions(unknown)
    bad = sorted(set(self_editable) - set(SELF_EDITABLE_CHOICES))
    if bad:
        raise NotSelfEditable(bad)
    misplaced = sorted(set(permissions) & set(COMPLIANCE_PERMISSIONS))
    if misplaced and not is_compliance(name):
        raise CompliancePermissions(misplaced)
    if name == "admin":
        missing = sorted(set(ADMIN_FLOOR) - set(permissions))
        if missing:
            raise AdminFloorRemoved(missing)


class Role(Aggregate):
    stream_type = "role"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.permissions: tuple[str, ...] = ()
        self.self_editable_fields: tuple[str, ...] = ()
        self.defined = False
        self.ever_held: set[str] = set()  # every permission the role held at some point

    @classmethod
    def define(cls, name: str, permissions: Iterable[str], self_editable_fields: Iterable[str]) -> Role:
        permissions, editable = sorted(set(permissions)), sorted(set(self_editable_fields))
        check_role_definition(name, permissions, editable)
        role = cls(name)
        role.trigger(RoleDefined(permissions=permissions, self_editable_fields=editable))
        return role

    def change(self, permissions: Iterable[str], self_editable_fields: Iterable[str]) -> bool:
        if not self.defined:
            raise RoleNotFound(self.id)
        permissions, editable = sorted(set(permissions)), sorted(set(self_editable_fields))
        check_role_definition(self.id, permissions, editable)
        if tuple(permissions) == self.permissions and tuple(editable) == self.self_editable_fields:
            return False
        self.trigger(RolePermissionsChanged(permissions=permissions, self_editable_fields=editable,
                                            previous_permissions=list(self.permissions)))
        return True

    def introduce(self, introduced: dict[str, tuple[str, ...]]) -> list[str]:
        """Grant the permissions of ``introduced`` meant for this role that it never held (a role defined
        before they existed); one it held and lost stays lost. Returns the permissions granted."""
        granted = sorted(p for p, roles in introduced.items() if self.id in roles and p not in self.ever_held)
        if granted and not self.change([*self.permissions, *granted], self.self_editable_fields):
            return []
        return granted

    def when_role_defined(self, permissions, self_editable_fields) -> None:
        self.defined = True
        self.permissions = tuple(permissions)
        self.self_editable_fields = tuple(self_editable_fields)
        self.ever_held.update(permissions)

    def when_role_permissions_changed(self, permissions, self_editable_fields, previous_permissions) -> None:
        self.permissions = tuple(permissions)
        self.self_editable_fields = tuple(self_editable_fields)
        self.ever_held.update(permissions)
