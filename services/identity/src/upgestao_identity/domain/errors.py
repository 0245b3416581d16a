"""What identity's domain refuses, in its own terms: no status, no wire form.

Each refusal carries what an answer needs (names, offending values); the service's edge
(``entrypoints/errors.py``) holds the one table that turns each into the problem its caller gets.
The validators' refusals (:class:`~.people.InvalidValue`, :class:`~.passwords.PasswordRejected`,
:class:`~.photos.PhotoRejected`) are domain errors too; the use cases answer those themselves,
naming the request field they came from.
"""

from __future__ import annotations

from collections.abc import Iterable

from upgestao_kernel.errors import DomainError


class IdentityError(DomainError):
    """A refusal of identity's domain."""


class UserIsDeactivated(IdentityError):
    """A deactivated user's profile, role, photo or password cannot change."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} is deactivated")
        self.user_id = user_id


class UnknownRole(IdentityError):
    """A user was given a role that is not one of the roles."""

    def __init__(self, role: object, choices: Iterable[str]) -> None:
        self.role = role
        self.choices = tuple(choices)
        super().__init__(f"no role {role!r}: the roles are {', '.join(self.choices)}")


class UnknownLocale(IdentityError):
    """A user chose a language identity does not write in."""

    def __init__(self, locale: object, choices: Iterable[str]) -> None:
        self.locale = locale
        self.choices = tuple(choices)
        super().__init__(f"no locale {locale!r}: the locales are {', '.join(self.choices)}")


class RoleNotFound(IdentityError):
    """A role that was never defined cannot change."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no role {name!r}")
        self.name = name


class _Names(IdentityError):
    """A refusal naming the values at fault."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        what = (type(self).__doc__ or "").strip()
        super().__init__(f"{what} {', '.join(self.names)}")


class UnknownPermissions(_Names):
    """A role cannot hold permissions that do not exist:"""


class NotSelfEditable(_Names):
    """A role's holders can only edit profile fields themselves, not:"""


class AdminFloorRemoved(_Names):
    """The admin role must keep the permissions that manage roles and users:"""


class InvalidRefreshToken(IdentityError):
    """The refresh token is not the session's current one, or the session expired or was revoked."""

    def __init__(self) -> None:
        super().__init__("invalid refresh token")


class CompliancePermissions(_Names):
    """Only compliance roles may hold:"""


class OwnRoleChange(IdentityError):
    """Nobody changes their own role, nor the permissions of the role they hold (a second person must)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"you cannot change {what}")
        self.what = what


class ComplianceRoleAssignment(IdentityError):
    """A compliance role is given or taken only by a holder of a compliance role."""

    def __init__(self, role: str) -> None:
        super().__init__(f"only a holder of a compliance role may give or take the role {role}")
        self.role = role
