"""Staff users: an event-sourced aggregate holding only sealed personal values.

Personal values reach the aggregate already sealed (vault ciphertext, keyed
by field name); the stored events keep those ciphertexts so the read models
rebuild from the log, while the *published* form of every event carries ids
and the names of the changed fields only.
"""

from __future__ import annotations

from collections.abc import Mapping

from upgestao_kernel.events import Aggregate

from .datamap import USER_PROFILE_FIELDS, sealable
from .errors import UnknownRole, UserIsDeactivated
from .events import (
    NewLoginDetected,
    PasswordResetCompleted,
    PasswordResetRequested,
    UserDeactivated,
    UserEmailChanged,
    UserErased,
    UserLocaleChanged,
    UserPasswordChanged,
    UserPhotoChanged,
    UserProfileChanged,
    UserRegistered,
    UserRoleChanged,
    UserUnblocked,
)
from .locales import DEFAULT_LOCALE, checked_locale
from .roles import ROLE_NAMES
from .subjects import BLOCKING, STATUS_OF

ACTIVE = "active"
DEACTIVATED = "deactivated"
# after a data subject's request (``domain/subjects.py``): erased (no row left), anonymised, blocked
ERASED, ANONYMISED, BLOCKED = "erased", "anonymised", "blocked"


def _check_role(role: str) -> None:
    if role not in ROLE_NAMES:
        raise UnknownRole(role, ROLE_NAMES)


class User(Aggregate):
    stream_type = "user"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.role: str | None = None
        self.status: str | None = None
        self.email_index: str | None = None
        self.fields: set[str] = set()
        self.photo_id: str | None = None
        self.locale: str = DEFAULT_LOCALE
        self.status_before_blocking: str | None = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @classmethod
    def register(cls, id: str, *, role: str, sealed: Mapping[str, str | None], email_index: str) -> User:
        _check_role(role)
        names = sealable("user", [name for name, value in sealed.items() if value is not None])
        user = cls(id)
        user.trigger(UserRegistered(role=role, fields={n: sealed[n] for n in names}, email_index=email_index))
        return user

    def change_profile(self, sealed: Mapping[str, str | None], email_index: str | None = None) -> list[str]:
        """Record new sealed values (``None`` clears a field); returns the changed names."""
        self._require_active()
        names = sorted(sealable("user", sealed))
        bad = [n for n in names if n not in USER_PROFILE_FIELDS]
        if bad:
            raise ValueError(f"not profile fields: {bad}")
        if not names:
            return []
        self.trigger(UserProfileChanged(fields={n: sealed[n] for n in names}, email_index=email_index))
        return names

    def change_role(self, role: str) -> bool:
        self._require_active()
        _check_role(role)
        if role == self.role:
            return False
        self.trigger(UserRoleChanged(role=role, previous_role=self.role))
        return True

    def change_locale(self, locale: object) -> bool:
        """The language messages to the user are written in; False when it is that already."""
        self._require_active()
        locale = checked_locale(locale)
        if locale == self.locale:
            return False
        self.trigger(UserLocaleChanged(locale=locale))
        return True

    def change_photo(self, photo_id: str, content_type: str, size: int) -> None:
        self._require_active()
        self.trigger(UserPhotoChanged(photo_id=photo_id, content_type=content_type, size=size))

    def deactivate(self) -> bool:
        if self.status != ACTIVE:  # deactivated already, or erased, anonymised, blocked: nothing to end
            return False
        self.trigger(UserDeactivated())
        return True

    def erase(self, mode: str, status: str) -> bool:
        """A data subject's request: ``mode`` (``domain/subjects.py``) leaves the user ``status``. False when
        the user is already that far (an outcome is never undone by a weaker one)."""
        if self.status == status or self.status == ERASED or (self.status == ANONYMISED and status == BLOCKED):
            return False
        self.trigger(UserErased(mode=mode, previous_status=self.status))
        return True

    def unblock(self) -> bool:
        """Lift a blocking: the status before it comes back. False when the user is not blocked."""
        if self.status != BLOCKED:
            return False
        self.trigger(UserUnblocked(status=self.status_before_blocking or ACTIVE))
        return True

    def password_changed(self, how: str) -> None:
        """The hash lives in the credential store, never in an event (R1.2)."""
        self.trigger(UserPasswordChanged(how=how))

    def request_password_reset(self, token_hash: str, expires_at: str) -> None:
        """Only the single-use token's hash is recorded; the token itself never enters an event (the
        notifier fetches it, sealed, from identity: see ``service_layer/notices.py``)."""
        self._require_active()
        self.trigger(PasswordResetRequested(token_hash=token_hash, expires_at=expires_at))

    def announce_email_change(self) -> None:
        """The e-mail changed: the old address is told (the event names the user only; the old address
        waits sealed in a notice whose id is this event's)."""
        self._require_active()
        self.trigger(UserEmailChanged())

    def detect_new_login(self, session_id: str) -> None:
        """The user logged in (session ``session_id``) from a network not seen for them lately: they are to
        be told (the event names ids only; the address and the network wait sealed in a notice whose id
        is this event's)."""
        self._require_active()
        self.trigger(NewLoginDetected(session_id=session_id))

    def complete_password_reset(self, token_hash: str) -> None:
        self._require_active()
        self.trigger(PasswordResetCompleted(token_hash=token_hash))

    def _require_active(self) -> None:
        if self.status != ACTIVE:
            raise UserIsDeactivated(self.id)

    # -- state

    def when_user_registered(self, role, fields, email_index) -> None:
        self.role, self.status, self.email_index = role, ACTIVE, email_index
        self.fields = set(fields)

    def when_user_profile_changed(self, fields, email_index=None) -> None:
        for name, value in fields.items():
            (self.fields.add if value is not None else self.fields.discard)(name)
        if email_index is not None:
            self.email_index = email_index

    def when_user_role_changed(self, role, previous_role) -> None:
        self.role = role

    def when_user_locale_changed(self, locale) -> None:
        self.locale = locale

    def when_new_login_detected(self, session_id) -> None:
        pass

    def when_user_photo_changed(self, photo_id, content_type, size) -> None:
        self.photo_id = photo_id

    def when_user_unblocked(self, status) -> None:
        self.status = status

    def when_user_deactivated(self) -> None:
        self.status = DEACTIVATED

    def when_user_erased(self, mode, previous_status=None) -> None:
        if mode == BLOCKING:
            self.status_before_blocking = previous_status
        self.status = STATUS_OF[mode]
        if mode != BLOCKING:
            self.fields, self.email_index, self.photo_id = set(), None, None

    def when_user_password_changed(self, how) -> None:
        pass

    def when_password_reset_requested(self, token_hash, expires_at) -> None:
        pass

    def when_password_reset_completed(self, token_hash) -> None:
        pass

    def when_user_email_changed(self) -> None:
        pass
