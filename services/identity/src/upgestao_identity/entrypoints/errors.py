"""Identity's edge table: each refusal of the domain and the problem its caller gets.

The one place where identity's domain errors meet problem types and statuses: the domain says
what it refused (``domain/errors.py``), this table says how that is answered, and the kernel's
``rpc`` entrypoint applies it to every identity method (``register_problems`` on import; the
service module imports this). The answers are the ones identity gave before its domain stopped
raising them itself: slug, status, detail and extensions, byte for byte.
"""

from __future__ import annotations

from upgestao_kernel.errors import ProblemFactory, ServiceError, invalid_field, problem
from upgestao_kernel.nameko_ext.rpc import register_problems

from ..domain.errors import (
    AdminFloorRemoved,
    CompliancePermissions,
    ComplianceRoleAssignment,
    InvalidRefreshToken,
    NotSelfEditable,
    OwnRoleChange,
    RoleNotFound,
    UnknownLocale,
    UnknownPermissions,
    UnknownRole,
    UserIsDeactivated,
)


def _listing(field: str, lead: str) -> ProblemFactory:
    """A 422 naming ``field``: ``lead`` and the offending names."""

    def answer(exc: UnknownPermissions | NotSelfEditable | AdminFloorRemoved | CompliancePermissions) -> ServiceError:
        return invalid_field(field, f"{lead}: {', '.join(exc.names)}")

    return answer


PROBLEMS: dict[type[Exception], ProblemFactory] = {
    UserIsDeactivated: problem("conflict", 409, "This user is deactivated."),
    UnknownRole: lambda exc: invalid_field("role", f"must be one of {', '.join(exc.choices)}"),
    UnknownLocale: lambda exc: invalid_field("locale", f"must be one of {', '.join(exc.choices)}"),
    RoleNotFound: problem("not-found", 404, lambda exc: f"No such role: {exc.name}."),
    UnknownPermissions: _listing("permissions", "unknown permissions"),
    NotSelfEditable: _listing("self_editable_fields", "not profile fields"),
    AdminFloorRemoved: _listing("permissions", "the admin role must keep"),
    CompliancePermissions: _listing("permissions", "only compliance roles may hold"),
    OwnRoleChange: problem("forbidden", 403, lambda exc: f"Separation of duties: you cannot change {exc.what}."),
    ComplianceRoleAssignment: problem("forbidden", 403, lambda exc: (
        f"Separation of duties: only a holder of a compliance role may give or take the role {exc.role}.")),
    InvalidRefreshToken: problem("invalid-token", 401, "The refresh token is invalid, expired or revoked."),
}

register_problems(PROBLEMS)
