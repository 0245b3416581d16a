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

from upgestao_kernel.audit import source_network
from upgestao_kernel.errors import ServiceError, field_error, validation_error
from upgestao_kernel.eventstore import ConcurrencyError

from ..adapters.hashing import PasswordHasher
from ..adapters.hashing_pool import HasherBusy
from ..adapters.metrics import LOGIN_LOCKOUTS, login_attempt
from ..adapters.ports import IdentityUnitOfWork, LoginCandidate, NoticeRecord, PasswordResetRecord
from ..adapters.tokens import TokenIssuer, in_seconds, token_hash
from ..domain import people
from ..domain.notices import NEW_LOGIN, NEW_LOGIN_NOTICE_TTL_S, PASSWORD_RESET
from ..domain.passwords import PasswordRejected, check_password
from ..domain.throttle import AttemptBudget, retry_after
from ..domain.users import User
from ..settings import IdentitySettings
from . import sessions as session_cases
from .authorization import require, require_actor

UnitOfWorkFactory = Callable[[], IdentityUnitOfWork]
LOGIN_WRITE_ATTEMPTS = 3  # a login's unit of work lost a race on the user's stream: tried again this often


def invalid_credentials() -> ServiceError:
    return ServiceError("invalid-credentials", "The e-mail or the password is wrong.", 401)


def hashing_busy() -> ServiceError:
    return ServiceError("service-busy", "Too many password checks at once; try again in a moment.", 503,
                        {"retry_after": 1})


def wrong_current_password() -> ServiceError:
    return ServiceError("wrong-password", "The current password is wrong.", 403,
                        {"errors": [field_error("current_password", "is wrong")]})


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

ACCOUNT, ADDRESS = "account:", "address:"
RESET_ACCOUNT, RESET_ADDRESS = "reset-account:", "reset-address:"


class Throttled(Exception):
    """A budget is spent for now: nothing was counted (the unit of work rolls back), retry after ``seconds``."""

    def __init__(self, seconds: int, key: str = "") -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds
        self.key = key  # which budget: an account's (a lockout) or an address's (throttled)


@dataclass(frozen=True)
class Throttle:
    """The login and reset budgets of ``domain/throttle.py``, charged through ``uow.login_budgets``."""

    account: AttemptBudget
    address: AttemptBudget
    reset_account: AttemptBudget
    reset_address: AttemptBudget

    @classmethod
    def from_settings(cls, s: IdentitySettings) -> Throttle:
        def budget(allowance: int, window_s: int) -> AttemptBudget:
            return AttemptBudget(allowance, window_s, s.lockout_base_s, max(s.lockout_base_s, s.lockout_max_s))

        return cls(budget(s.lockout_threshold, s.lockout_window_s), budget(s.ip_failure_limit, s.lockout_window_s),
                   budget(s.reset_account_limit, s.reset_window_s), budget(s.reset_address_limit, s.reset_window_s))

    def login_keys(self, uow: IdentityUnitOfWork, index: str) -> list[tuple[str, AttemptBudget]]:
        """Address first, then account: every request takes the row locks in the same order (no deadlock)."""
        return [(ADDRESS + _address(uow), self.address), (ACCOUNT + index, self.account)]

    def reset_keys(self, uow: IdentityUnitOfWork, index: str) -> list[tuple[str, AttemptBudget]]:
        return [(RESET_ADDRESS + _address(uow), self.reset_address), (RESET_ACCOUNT + index, self.reset_account)]

    def charge(self, uow: IdentityUnitOfWork, keys: list[tuple[str, AttemptBudget]], now: datetime) -> None:
        """Count one attempt of every key, or raise :class:`Throttled` (the caller's unit must roll back:
        a key charged before the blocked one gets its attempt back with it)."""
        longest = max(b.window_s + b.max_s for _, b in keys)
        uow.login_budgets.forget_idle(now - timedelta(seconds=longest), now)
        for key, budget in keys:
            attempts = uow.login_budgets.charge(key, now, budget.quiet_since(now))
            if attempts is None:
                raise Throttled(retry_after(uow.login_budgets.blocked_until(key), now), key)
            delay = budget.delay_after(attempts)
            if delay:
                uow.login_budgets.block(key, now + timedelta(seconds=delay))
                if key.startswith(ACCOUNT):  # charged last: no later key's refusal rolls this block back
                    LOGIN_LOCKOUTS.inc()

    @staticmethod
    def succeeded(uow: IdentityUnitOfWork, index: str) -> None:
        """A right password: its account starts afresh, its address gets the attempt back -- address first,
        in the order :meth:`charge` takes the rows (a login of the same account charging meanwhile would
        otherwise wait for this one while this one waits for it: a deadlock)."""
        uow.login_budgets.refund(ADDRESS + _address(uow))
        uow.login_budgets.clear(ACCOUNT + index)


def _address(uow: IdentityUnitOfWork) -> str:
    # the client's address as the gateway established it from its trusted proxies
    return uow.context.source_ip or "unknown"


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
        """The attempt is counted before the password is checked (in a unit of its own, committed before
        bcrypt runs), and every path runs exactly one bcrypt check at the configured cost."""
        now = self.now()
        try:
            with self.unit_of_work() as uow:
                index = email_index(uow, email)
                row = uow.credentials.login_candidate(index)
                try:
                    self.throttle.charge(uow, self.throttle.login_keys(uow, index), now)
                except Throttled:
                    uow.deny(action="login", resource_type="session", resource_id=None,
                             subject_id=row.id if row else None, fields=(), purpose="login (locked out)")
                    raise
        except Throttled as exc:
            login_attempt("locked" if exc.key.startswith(ACCOUNT) else "throttled")
            raise too_many_attempts(exc.seconds) from None
        if row is not None:
            ok = self.hasher.verify(password, row.password_hash)  # type: ignore[arg-type]
        else:
            ok = self.hasher.verify_dummy(password)
        now = self.now()
        for attempt in range(LOGIN_WRITE_ATTEMPTS):
            try:
                result, error = self._record_login(row, ok, index, now)
                break
            except ConcurrencyError:  # the user's stream moved meanwhile (a new-login alert at once): again
                if attempt + 1 == LOGIN_WRITE_ATTEMPTS:
                    raise
        login_attempt("invalid" if error is not None else "ok")
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

    def _record_login(self, row: LoginCandidate | None, ok: bool, index: str,
                      now: datetime) -> tuple[dict | None, ServiceError | None]:
        """The outcome of a checked password, in one unit of work: a failure counted, or a session started
        (and, from a network new for the user, the alert in the same unit)."""
        with self.unit_of_work() as uow:
            if not ok or row is None or row.status != "active":
                uow.audit_access(action="login", resource_type="session", resource_id=None,
                                 subject_id=row.id if row else None, fields=(),
                                 purpose="login" if ok else "login (wrong e-mail or password)",
                                 outcome="failure" if not ok else "denied")
                return None, invalid_credentials() if not ok else ServiceError(
                    "account-deactivated", "This account is deactivated.", 403)
            self.throttle.succeeded(uow, index)
            result = session_cases.start(uow, self.issuer, user_id=row.id, role=row.role, now=now,
                                         refresh_ttl_s=self.settings.refresh_ttl_s)
            uow.audit_access(action="login", resource_type="session", resource_id=result["session_id"],
                             subject_id=row.id, fields=(), purpose="login")
            self._alert_new_network(uow, row, result["session_id"], now)
        return result, None

    def _alert_new_network(self, uow: IdentityUnitOfWork, row: LoginCandidate, session_id: str,
                           now: datetime) -> None:
        """A login from a network (IPv4 /24, IPv6 /48, as the audit keeps it) the user has not logged in
        from within ``known_network_days`` -- or their first login: an attacker may be the first to use an
        account -- is told to the user: ``identity.new_login_detected.v1`` (ids only) and a notice holding
        the address and the network, sealed under the user's key. The known networks are kept as blind
        indexes of (user, network) only. A login whose address is unknown has nothing to compare."""
        network = source_network(uow.context.source_ip)
        if network is None or row.email is None:
            return
        index = uow.personal.blind_index("login_network", f"{row.id} {network}")
        before = uow.known_networks.seen(row.id, index, now)
        horizon = now - timedelta(days=self.settings.known_network_days)
        if before is not None and before > horizon:
            return
        uow.known_networks.forget_before(row.id, horizon)  # the networks it no longer knows
        user = uow.load(User, row.id)
        user.detect_new_login(session_id)
        uow.save(user)
        announced = uow.recorded[-1]
        sealed = uow.personal.seal(subject_id=row.id, resource_type="session", resource_id=session_id,
                                   values={"network": network}, purpose="new-login alert", action="create")
        at = announced.occurred_at
        uow.notices.add(NoticeRecord(id=announced.event_id, kind=NEW_LOGIN, user_id=row.id,
                                     sealed={"email": row.email, "network": sealed["network"]}, created_at=at,
                                     expires_at=at + timedelta(seconds=NEW_LOGIN_NOTICE_TTL_S), fetched_at=None))

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

    def check_current_password(self, current_password: object, *, purpose: str) -> tuple[str, str | None]:
        """The caller proves they are who the token says before changing their password or e-mail: the
        attempt is charged to the login budgets of their account and address first (a stolen token
        gives no more guesses than the login form), and a wrong password is 403 naming
        ``current_password``. Returns ``(actor, e-mail)``."""
        now = self.now()
        try:
            with self.unit_of_work() as uow:
                actor = require_actor(uow)
                row = uow.users.get(actor)
                stored = uow.credentials.hash_of(actor)
                if row is None or stored is None:
                    raise ServiceError("unauthenticated", "Authentication required.", 401)
                try:
                    self.throttle.charge(uow, self.throttle.login_keys(uow, row.email_index), now)
                except Throttled:
                    uow.deny(action="update", resource_type="credential", resource_id=actor, subject_id=actor,
                             fields=(), purpose=f"{purpose} (locked out)")
                    raise
                email = self._email_of(uow, actor)
        except Throttled as exc:
            raise too_many_attempts(exc.seconds) from None
        ok = self.hasher.verify(current_password, stored)  # type: ignore[arg-type]
        with self.unit_of_work() as uow:
            if not ok:
                uow.deny(action="update", resource_type="credential", resource_id=actor, subject_id=actor,
                         fields=(), purpose=f"{purpose} (wrong current password)")
            else:
                self.throttle.succeeded(uow, row.email_index)
        if not ok:
            raise wrong_current_password()
        return actor, email

    def change_password(self, current_password: object, new_password: object, current_session_id: str | None) -> dict:
        with self.unit_of_work() as uow:
            actor = require_actor(uow)
            require(uow, "password.change", action="update", resource_type="credential", resource_id=actor,
                    subject_id=actor)
        actor, email = self.check_current_password(current_password, purpose="password change")
        checked_password(new_password, email, "new_password")
        new_hash = self.hasher.hash(new_password)  # type: ignore[arg-type]
        now = self.now()
        with self.unit_of_work() as uow:
            user = uow.load(User, actor)
            uow.credentials.set(actor, new_hash, now)
            user.password_changed("changed")
            uow.save(user)
            uow.notices.drop_of(actor, PASSWORD_RESET)  # a new password spends every reset still outstanding
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
        """Always succeeds for the caller (no account enumeration, and the same answer when throttled).

        The token never leaves identity in an event: ``identity.password_reset_requested.v1`` carries
        ids only, and the token is kept sealed under the user's data key in a notice (its id is the
        event's) that only the notifier may fetch (:func:`notice`). Requests are throttled per
        account and per address; a throttled one sends nothing and is audited as denied.
        """
        if not isinstance(email, str):
            return
        now = self.now()
        try:
            with self.unit_of_work() as uow:
                index = email_index(uow, email)
                row = uow.users.by_email_index(index)
                try:
                    self.throttle.charge(uow, self.throttle.reset_keys(uow, index), now)
                except Throttled:
                    uow.deny(action="update", resource_type="credential", resource_id=row.id if row else None,
                             subject_id=row.id if row else None, fields=(),
                             purpose="password reset requested (throttled)")
                    raise
                if row is None or row.status != "active":
                    uow.audit_access(action="update", resource_type="credential", resource_id=None,
                                     subject_id=None, fields=(),
                                     purpose="password reset requested for an unknown e-mail", outcome="failure")
                    return
                token = secrets.token_urlsafe(32)
                expires_at = now + timedelta(seconds=self.settings.reset_ttl_s)
                user = uow.load(User, row.id)
                user.request_password_reset(token_hash(token), in_seconds(now, self.settings.reset_ttl_s))
                uow.save(user)
                announced = uow.recorded[-1]
                sealed = uow.personal.seal(subject_id=row.id, resource_type="credential", resource_id=row.id,
                                           values={"reset_token": token}, purpose="password reset delivery",
                                           action="update")
                uow.notices.forget_expired(now)
                uow.notices.add(NoticeRecord(
                    id=announced.event_id, kind=PASSWORD_RESET, user_id=row.id,
                    sealed={"email": row.email, "reset_token": sealed["reset_token"]},
                    created_at=now, expires_at=expires_at, fetched_at=None))
                uow.audit_access(action="update", resource_type="credential", resource_id=row.id,
                                 subject_id=row.id, fields=(), purpose="password reset requested")
        except Throttled:
            return

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
            uow.login_budgets.clear(ACCOUNT + user.email_index)
            uow.notices.drop_of(reset.user_id, PASSWORD_RESET)
            uow.audit_access(action="update", resource_type="credential", resource_id=reset.user_id,
                             subject_id=reset.user_id, fields=["password"], purpose="password reset")
        return {"revoked_session_ids": revoked}


def _bad_reset_token() -> ServiceError:
    return ServiceError("invalid-token", "The reset token is invalid, used or expired.", 400,
                        {"errors": [field_error("token", "is invalid, used or expired")]})


def _role_of(uow: IdentityUnitOfWork, user_id: str) -> tuple[str | None, bool]:
    user = uow.users.get(user_id)
    return (user.role, user.status == "active") if user else (None, False)

