"""Data subjects' erasures (LGPD art. 18 IV and VI, R5.3): the three outcomes and what each leaves behind.

* ``deletion`` -- the subject's data key is shredded (every sealed value of theirs, in the read models and in
  the event log alike, is noise for good), the read models' rows go, the blind indexes of their e-mail and
  phone are blanked in the event log too (a keyed hash, not a ciphertext: shredding alone leaves them, and
  they would still tell whether an address was someone's), the operational rows (credentials, photo,
  notices, known networks, login budgets) are deleted and a user's sessions are revoked.
* ``anonymisation`` -- the same, except that a row without any personal value stays (a user's id, role,
  language and status ``anonymised``; a customer's id and status): the counts and the ids other services
  hold still resolve to *someone*, no longer to whom.
* ``blocking`` -- nothing is destroyed: the sealed values stay as they are, but every read of them is
  refused (403) except privacy's ``export_subject``, and a blocked user cannot sign in (their sessions are
  revoked). A stronger outcome may follow (blocking, then deletion); a weaker one after a stronger one
  changes nothing. Blocking alone is reversible: the DPO lifts it (``unblock_subject``), the subject's
  status going back to what it was.

One :class:`Erasure` per subject (stream ``erasure-<subject id>``) records each request it answered; a
request answered before is confirmed again (``identity.subject_erased.v1``) and erases nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgestao_kernel.events import Aggregate

from .events import (
    CustomerChanged,
    CustomerRegistered,
    SubjectErased,
    SubjectUnblocked,
    UserProfileChanged,
    UserRegistered,
)

DELETION, ANONYMISATION, BLOCKING = "deletion", "anonymisation", "blocking"
MODES = (DELETION, ANONYMISATION, BLOCKING)
# how far each outcome goes: a request never undoes a stronger one before it
STRENGTH = {BLOCKING: 1, ANONYMISATION: 2, DELETION: 3}
SHREDDING = frozenset({DELETION, ANONYMISATION})

# what a user's or a customer's status becomes
STATUS_OF = {DELETION: "erased", ANONYMISATION: "anonymised", BLOCKING: "blocked"}
USER, CUSTOMER = "user", "customer"


def stronger(mode: str, than: str | None) -> bool:
    """``mode`` goes further than ``than`` (None: nothing done yet)."""
    return STRENGTH[mode] > (STRENGTH[than] if than else 0)


class Erasure(Aggregate):
    stream_type = "erasure"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.mode: str | None = None  # the strongest outcome so far
        self.kind: str | None = None
        self.requests: dict[str | None, str] = {}  # request id -> mode asked

    @classmethod
    def start(cls, subject_id: str) -> Erasure:
        return cls(subject_id)

    def does(self, mode: str) -> bool:
        """Whether ``mode`` still has anything to do (not done already, nor something stronger)."""
        return stronger(mode, self.mode)

    def confirm(self, request_id: str | None, mode: str, kind: str | None) -> None:
        """Record (or record again) the answer to ``request_id``: the confirmation privacy waits for."""
        self.trigger(SubjectErased(request_id=request_id, mode=mode, kind=kind))

    @property
    def blocked(self) -> bool:
        return self.mode == BLOCKING

    def unblock(self, request_id: str | None) -> bool:
        """Lift a blocking (the DPO's decision); False when the subject is not blocked (nothing to lift, or
        erased or anonymised since: that is never undone)."""
        if not self.blocked:
            return False
        self.trigger(SubjectUnblocked(request_id=request_id))
        return True

    def when_subject_unblocked(self, request_id) -> None:
        self.mode = None

    def when_subject_erased(self, request_id, mode, kind) -> None:
        if stronger(mode, self.mode):
            self.mode = mode
        self.kind = kind if kind is not None else self.kind
        self.requests[request_id] = mode


# -- the blind indexes in the event log ----------------------------------------

_INDEX_KEYS = {
    UserRegistered.type: ("email_index",),
    UserProfileChanged.type: ("email_index",),
    CustomerRegistered.type: ("email_index", "phone_index"),
}


def without_indexes(event_type: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    """``data`` of a stored event with its blind indexes blanked, or None when it holds none (nothing to
    rewrite). The replayed read models then hold no index either; the aggregates need none."""
    if event_type == CustomerChanged.type:
        indexes = data.get("indexes") or {}
        if not any(indexes.values()):
            return None
        return {**data, "indexes": dict.fromkeys(indexes)}
    keys = [k for k in _INDEX_KEYS.get(event_type, ()) if data.get(k)]
    if not keys:
        return None
    return {**data, **dict.fromkeys(keys)}
