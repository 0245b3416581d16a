"""Authentication: login with brute-force protection, logout, password change and reset.

bcrypt runs outside any database transaction (a login holds no connection or
lock while hashing): each use case reads in one short unit of work, checks
the password, then writes in another. Errors that must not undo what was
recorded (a failure counted, a session revoked) are *returned* by the use
case and raised by the entrypoint after the unit of work has committed.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from upgestao_kernel.errors import ServiceError, field_error, validation_error
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.hashing import PasswordHasher
from ..adapters.hashing_pool import HasherBusy
from ..adapters.ports import IdentityUnitOfWork, PasswordResetRecord
from ..adapters.tokens import TokenIssuer, in_seconds, token_hash
from ..domain import people
from ..domain.passwords import PasswordRejected, check_password
from ..domain.throttle import LockoutPolicy
from ..domain.users import User
from ..settings import IdentitySettings
from . import sessions as session_cases
from .authorization import require, require_actor

UnitOfWorkFactory = Callable[[], IdentityUnitOfWork]


def invalid_credentials() -> ServiceError:
    return ServiceError("invalid-credentials", "The e-mail or the password is wrong.", 401)


def hashing_busy() -> ServiceError:
    return ServiceError("service-busy", "Too many password checks at once; try again in a moment.", 503,
                        {"retry_after": 1})


def too_many_attempts(retry_after: int) -> ServiceError:
    return ServiceError("too-many-requests", "Too many failed logins; try again later.", 429,
                        {"retry_after": int(retry_after)})


def password_problem(exc: Exception, field: str = "password") -> ServiceError:
    return validation_error([field_error(field, str(exc))])


def checked_password(password: object, email: str | None, field: str = "password") -> str:
    try:
        check_password(password, email=email)  # type: ignore[arg-type]
    except PasswordRejected as exc:
        raise password_problem(exc, field) from None
    return password  # type: ignore[return-value]


def email_index(uow: IdentityUnitOfWork, email: object) -> str:
    """The blind index of ``email`` as typed, normalised the way it was at registration (IDN domains
    in their ``xn--`` form); text that is no e-mail at all still gets an index, which matches nobody."""
    text = email if isinstance(email, str) else ""
    try:
        text = people.normalise_email(text)
    except people.InvalidValue:
        text = text.strip()
    return uow.personal.blind_index("email", text)


# -- throttle ---------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    account: LockoutPolicy
    address: LockoutPolicy

    @classmethod
    def from_settings(cls, s: IdentitySettings) -> Throttle:
        return cls(
            LockoutPolicy(s.lockout_threshold, s.lockout_window_s, s.lockout_base_s, s.lockout_max_s),
            LockoutPolicy(s.ip_failure_limit, s.lockout_window_s, s.lockout_base_s, s.lockout_max_s),
        )

    def _state(self, uow: IdentityUnitOfWork, key: str, policy: LockoutPolicy, now: datetime) -> int:
        count, last = uow.login_failures.since(key, now - timedelta(seconds=policy.window_s))
        return policy.locked_for(count, last, now)

    def locked_for(self, uow: IdentityUnitOfWork, account_key: str, address_key: str, now: datetime) -> int:
        return max(self._state(uow, account_key, self.account, now), self._state(uow, address_key, self.address, now))

    def record_failure(self, uow: IdentityUnitOfWork, keys: list[str], now: datetime) -> None:
        horizon = now - timedelta(seconds=max(self.account.window_s, self.address.window_s))
        for key in keys:
            uow.login_failures.add(key, now)
            uow.login_failures.forget_until(key, horizon)

    def clear(self, uow: IdentityUnitOfWork, key: str) -> None:
        uow.login_failures.clear(key)


# -- login ------------------------------------------------------------------------


@dataclass
class Auth:
    """The authentication use cases with their collaborators."""

    unit_of_work: UnitOfWorkFactory
    hasher: PasswordHasher
    issuer: TokenIssuer
    settings: IdentitySettings
    now: Callable[[], datetime]

    @functools.cached_property
    def throttle(self) -> Throttle:
        return Throttle.from_settings(self.settings)

    def login(self, email: object, password: object) -> dict:
        now = self.now()
        with self.unit_of_work() as uow:
            index = email_index(uow, email)
            account_key = "account:" + index
            address_key = "address:" + (uow.context.source_ip or "unknown")
            locked = self.throttle.locked_for(uow, account_key, address_key, now)
            row = uow.credentials.login_candidate(index)
            if locked:
                uow.audit_access(action="login", resource_type="session", resource_id=None,
                                 subject_id=row.id if row else None, fields=(), purpose="login (locked out)",
                                 outcome="denied")
        if locked:
            raise too_many_attempts(locked)
        if row is not None and isinstance(password, str):
            ok = self.hasher.verify(password, row.password_hash)
        else:
            ok = self.hasher.verify_dummy(password if isinstance(password, str) else "")
        now = self.now()
        with self.unit_of_work() as uow:
            if not ok or row.status != "active":
                if not ok:
                    self.throttle.record_failure(uow, [account_key, address_key], now)
                uow.audit_access(action="login", resource_type="session", resource_id=None,
                                 subject_id=row.id if row else None, fields=(),
                                 purpose="login" if ok else "login (wrong e-mail or password)",
                                 outcome="failure" if not ok else "denied")
                error = invalid_credentials() if not ok else ServiceError(
                    "account-deactivated", "This account is deactivated.", 403)
                result = None
            else:
                self.throttle.clear(uow, account_key)
                result = session_cases.start(uow, self.issuer, user_id=row.id, role=row.role, now=now,
                                             refresh_ttl_s=self.settings.refresh_ttl_s)
                uow.audit_access(action="login", resource_type="session", resource_id=result["session_id"],
                                 subject_id=row.id, fields=(), purpose="login")
                error = None
        if error is not None:
            raise error
        if self.hasher.needs_rehash(row.password_hash):  # the configured cost changed: upgrade the hash
            try:
                new_hash = self.hasher.hash(password)  # type: ignore[arg-type]
            except HasherBusy:
                return result  # upgrade at a quieter login

            with self.unit_of_work() as uow:  # unless the password was changed meanwhile
                uow.credentials.replace(row.id, row.password_hash, new_hash, now)
        return result

    def refresh(self, refresh_token: object) -> dict:
        if not isinstance(refresh_token, str):
            raise session_cases.invalid_refresh_token()
        now = self.now()
        with self.unit_of_work() as uow:
            result, error = session_cases.refresh(uow, self.issuer, refresh_token, now=now,
                                                  role_of=lambda uid: _role_of(uow, uid))
        if error is not None:
            raise error
        return result

    def logout(self, session_id: str | None) -> None:
        with self.unit_of_work() as uow:
            actor = require_actor(uow)
            if session_id and session_cases.owner_of(uow, session_id) == actor:
                session_cases.revoke(uow, session_id, "logout")
            uow.audit_access(action="logout", resource_type="session", resource_id=session_id, subject_id=actor,
                             fields=(), purpose="logout")

    def change_password(self, current_password: object, new_password: object, current_session_id: str | None) -> dict:
        with self.unit_of_work() as uow:
            actor = require_actor(uow)
            require(uow, "password.change", action="update", resource_type="credential", resource_id=actor,
                    subject_id=actor)
            stored = uow.credentials.hash_of(actor)
            email = self._email_of(uow, actor)
        if stored is None or not isinstance(current_password, str) or not self.hasher.verify(current_password,
                                                                                              stored):
            raise ServiceError("validation-error", "The current password is wrong.", 422,
                               {"errors": [field_error("current_password", "is wrong")]})
        checked_password(new_password, email, "new_password")
        new_hash = self.hasher.hash(new_password)  # type: ignore[arg-type]
        now = self.now()
        with self.unit_of_work() as uow:
            user = uow.load(User, actor)
            uow.credentials.set(actor, new_hash, now)
            user.password_changed("changed")
            uow.save(user)
            revoked = session_cases.revoke_all(uow, actor, "password_changed", keep=current_session_id)
            uow.audit_access(action="update", resource_type="credential", resource_id=actor, subject_id=actor,
                             fields=["password"], purpose="password change")
        return {"revoked_sessions": len(revoked), "revoked_session_ids": revoked}

    def _email_of(self, uow: IdentityUnitOfWork, user_id: str) -> str | None:
        user = uow.users.get(user_id)
        sealed = user.email if user else None
        if sealed is None:
            return None
        opened = uow.personal.open(subject_id=user_id, resource_type="user", resource_id=user_id,
                                   sealed={"email": sealed}, purpose="password policy: no e-mail in the password")
        value = opened["email"]
        return value if isinstance(value, str) else None

    # -- reset

    def request_reset(self, email: object) -> None:
        """Always succeeds for the caller (no account enumeration); an event carries the token."""
        if not isinstance(email, str):
            return
        now = self.now()
        with self.unit_of_work() as uow:
            index = email_index(uow, email)
            row = uow.users.by_email_index(index)
            if row is None or row.status != "active":
                uow.audit_access(action="update", resource_type="credential", resource_id=None, subject_id=None,
                                 fields=(), purpose="password reset requested for an unknown e-mail",
                                 outcome="failure")
                return
            token = secrets.token_urlsafe(32)
            user = uow.load(User, row.id)
            user.request_password_reset(token, token_hash(token), in_seconds(now, self.settings.reset_ttl_s))
            uow.save(user)
            uow.audit_access(action="update", resource_type="credential", resource_id=row.id, subject_id=row.id,
                             fields=(), purpose="password reset requested")

    def confirm_reset(self, token: object, new_password: object) -> dict:
        if not isinstance(token, str) or not token:
            raise _bad_reset_token()
        now = self.now()
        digest = token_hash(token)
        with self.unit_of_work() as uow:
            reset = uow.password_resets.get(digest)
            if reset is None or reset.used_at is not None or reset.expires_at <= now:
                raise _bad_reset_token()
            email = self._email_of(uow, reset.user_id)
        checked_password(new_password, email, "new_password")
        new_hash = self.hasher.hash(new_password)  # type: ignore[arg-type]
        try:
            return self._complete_reset(reset, digest, new_hash, now)
        except ConcurrencyError:  # the same token confirmed twice at once: one wins
            raise _bad_reset_token() from None

    def _complete_reset(self, reset: PasswordResetRecord, digest: str, new_hash: str, now: datetime) -> dict:
        with self.unit_of_work() as uow:
            user = uow.load(User, reset.user_id)
            fresh = uow.password_resets.get(digest)
            if fresh is None or fresh.used_at is not None or user is None or not user.active:
                raise _bad_reset_token()
            user.complete_password_reset(digest)
            user.password_changed("reset")
            uow.save(user)
            uow.credentials.set(reset.user_id, new_hash, now)
            revoked = session_cases.revoke_all(uow, reset.user_id, "password_reset")
            self.throttle.clear(uow, "account:" + user.email_index)
            uow.audit_access(action="update", resource_type="credential", resource_id=reset.user_id,
                             subject_id=reset.user_id, fields=["password"], purpose="password reset")
        return {"revoked_session_ids": revoked}


def _bad_reset_token() -> ServiceError:
    return ServiceError("invalid-token", "The reset token is invalid, used or expired.", 400,
                        {"errors": [field_error("token", "is invalid, used or expired")]})


def _role_of(uow: IdentityUnitOfWork, user_id: str) -> tuple[str | None, bool]:
    user = uow.users.get(user_id)
    return (user.role, user.status == "active") if user else (None, False)

