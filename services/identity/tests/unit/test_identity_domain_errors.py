"""Identity's domain refuses in its own terms; the edge table answers each refusal exactly as before.

The expected arguments are the ServiceErrors the domain raised itself before it stopped knowing
about statuses (slug, detail, status, extensions as they cross the wire): the answers callers
get must not change by one byte.
"""

from __future__ import annotations

import importlib

import pytest
from upgestao_identity.domain import errors
from upgestao_identity.domain.people import InvalidValue
from upgestao_identity.domain.roles import Role
from upgestao_identity.domain.sessions import Session
from upgestao_identity.domain.users import User
from upgestao_identity.entrypoints.errors import PROBLEMS
from upgestao_kernel.errors import DomainError, ServiceError

rpc = importlib.import_module("upgestao_kernel.nameko_ext.rpc")

ROLE_CHOICES = '{"errors": [{"field": "role", "message": "must be one of admin, supervisor, attendant, dpo"}]}'


def _deactivated_user() -> User:
    user = User.register("u1", role="attendant", sealed={"email": "v1:x"}, email_index="i")
    user.deactivate()
    return user


def _spent_session() -> Session:
    session = Session.start("s1", user_id="u1", refresh_hash="h1", expires_at="2030-01-01T00:00:00+00:00")
    return session


REFUSALS = [
    (lambda: User.register("u2", role="boss", sealed={}, email_index="i"), errors.UnknownRole,
     ("validation-error", "The request body is invalid.", "422", ROLE_CHOICES)),
    (lambda: User.register("u2", role="attendant", sealed={}, email_index="i").change_role("chief"),
     errors.UnknownRole, ("validation-error", "The request body is invalid.", "422", ROLE_CHOICES)),
    (lambda: Role.define("admin", ["nope", "zz"], []), errors.UnknownPermissions,
     ("validation-error", "The request body is invalid.", "422",
      '{"errors": [{"field": "permissions", "message": "unknown permissions: nope, zz"}]}')),
    (lambda: Role.define("x", [], ["salary"]), errors.NotSelfEditable,
     ("validation-error", "The request body is invalid.", "422",
      '{"errors": [{"field": "self_editable_fields", "message": "not profile fields: salary"}]}')),
    (lambda: Role.define("admin", ["users.list"], []), errors.AdminFloorRemoved,
     ("validation-error", "The request body is invalid.", "422",
      '{"errors": [{"field": "permissions", "message": "the admin role must keep: roles.read, roles.update, '
      'users.update"}]}')),
    (lambda: Role("ghost").change([], []), errors.RoleNotFound, ("not-found", "No such role: ghost.", "404", "{}")),
    (lambda: _deactivated_user().change_role("admin"), errors.UserIsDeactivated,
     ("conflict", "This user is deactivated.", "409", "{}")),
    (lambda: _deactivated_user().change_profile({"phone": "v1:y"}), errors.UserIsDeactivated,
     ("conflict", "This user is deactivated.", "409", "{}")),
    (lambda: _deactivated_user().request_password_reset("h", "2030"), errors.UserIsDeactivated,
     ("conflict", "This user is deactivated.", "409", "{}")),
    (lambda: _spent_session().refresh("h9", "h10", "2029"), errors.InvalidRefreshToken,
     ("invalid-token", "The refresh token is invalid, expired or revoked.", "401", "{}")),
]


@pytest.mark.parametrize(("decide", "refusal", "answer"), REFUSALS)
def test_each_refusal_is_a_domain_error_answered_as_before(decide, refusal, answer):
    with pytest.raises(refusal) as raised:
        decide()
    assert isinstance(raised.value, DomainError) and not isinstance(raised.value, ServiceError)
    problem = rpc.PROBLEMS.answer(raised.value)  # the table the rpc entrypoint applies
    assert isinstance(problem, ServiceError) and problem.args == answer


def test_every_refusal_the_domain_declares_has_one_row():
    declared = {cls for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.IdentityError) and not cls.__name__.startswith("_")}
    answered_by_use_cases = set()  # validators' refusals: the use cases name the request field themselves
    for module in ("people", "passwords", "photos"):
        for cls in vars(importlib.import_module(f"upgestao_identity.domain.{module}")).values():
            if isinstance(cls, type) and issubclass(cls, errors.IdentityError) and cls is not errors.IdentityError:
                answered_by_use_cases.add(cls)
    assert declared - {errors.IdentityError} == set(PROBLEMS)
    assert all(rpc.PROBLEMS.answer(cls.__new__(cls)) is None for cls in answered_by_use_cases)


def test_a_validator_refusal_is_still_a_value_error():
    assert issubclass(InvalidValue, ValueError) and issubclass(InvalidValue, errors.IdentityError)
