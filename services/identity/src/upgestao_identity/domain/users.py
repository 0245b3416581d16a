"""Staff users: an event-sourced aggregate holding only sealed personal values.

Personal values reach the aggregate already sealed (vault ciphertext, keyed
by field name); the stored events keep those ciphertexts so the read models
rebuild from the log, while the *published* form of every event carries ids
and the names of the changed fields only.
"""

from __future__ import annotations

from collections.abc import Mapping

from upgestao_kernel.errors import ServiceError, invalid_field
from upgestao_kernel.events import Aggregate

from .datamap import USER_PROFILE_FIELDS, sealable
from .roles import ROLE_NAMES

ACTIVE = "active"
DEACTIVATED = "deactivated"


def _check_role(role: str) -> None:
    if role not in ROLE_NAMES:
        raise invalid_field("role", f"must be one of {', '.join(ROLE_NAMES)}")


class User(Aggregate):
    stream_type = "user"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.role: str | None = None
        self.status: str | None = None
        self.email_index: str | None = None
        self.fields: set[str] = set()
        self.photo_id: str | None = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @classmethod
    def register(cls, id: str, *, role: str, sealed: Mapping[str, str | None], email_index: str) -> User:
        _check_role(role)
        names = sealable("user", [name for name, value in sealed.items() if value is not None])
        user = cls(id)
        user.trigger(
            "identity.user_registered.v1",
            published={"user_id": id, "role": role, "fields": sorted(names)},
            role=role, fields={n: sealed[n] for n in names}, email_index=email_index,
        )
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
        self.trigger(
            "identity.user_profile_changed.v1",
            published={"user_id": self.id, "fields": names},
            fields={n: sealed[n] for n in names}, email_index=email_index,
        )
        return names

    def change_role(self, role: str) -> bool:
        self._require_active()
        _check_role(role)
        if role == self.role:
            return False
        self.trigger("identity.user_role_changed.v1", published={"user_id": self.id, "role": role,
                                                                  "previous_role": self.role},
                     role=role, previous_role=self.role)
        return True

    def change_photo(self, photo_id: str, content_type: str, size: int) -> None:
        self._require_active()
        self.trigger("identity.user_photo_changed.v1", published={"user_id": self.id, "fields": ["photo"]},
                     photo_id=photo_id, content_type=content_type, size=size)

    def deactivate(self) -> bool:
        if self.status == DEACTIVATED:
            return False
        self.trigger("identity.user_deactivated.v1", published={"user_id": self.id})
        return True

    def password_changed(self, how: str) -> None:
        """The hash lives in the credential store, never in an event (R1.2)."""
        self.trigger("identity.user_password_changed.v1", published={"user_id": self.id, "how": how}, how=how)

    def request_password_reset(self, token: str, token_hash: str, expires_at: str) -> None:
        """The single-use token is published (for the notifier to mail); only its hash is stored."""
        self._require_active()
        self.trigger("identity.password_reset_requested.v1", secret=True,
                     published={"user_id": self.id, "token": token, "expires_at": expires_at},
                     token_hash=token_hash, expires_at=expires_at)

    def complete_password_reset(self, token_hash: str) -> None:
        self._require_active()
        self.trigger("identity.password_reset_completed.v1", published={"user_id": self.id},
                     token_hash=token_hash)

    def _require_active(self) -> None:
        if self.status != ACTIVE:
            raise ServiceError("conflict", "This user is deactivated.", 409)

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

    def when_user_photo_changed(self, photo_id, content_type, size) -> None:
        self.photo_id = photo_id

    def when_user_deactivated(self) -> None:
        self.status = DEACTIVATED

    def when_user_password_changed(self, how) -> None:
        pass

    def when_password_reset_requested(self, token_hash, expires_at) -> None:
        pass

    def when_password_reset_completed(self, token_hash) -> None:
        pass
