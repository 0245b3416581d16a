"""A data subject's erasure in messaging (stream ``erasure-<subject id>``).

The first ``deletion`` or ``anonymisation`` shreds: its ``subject_erased`` says so (``shredded``); the sweep's
``subject_purged`` follows once the read models and the search index hold nothing of the subject any more. Every later
request (a repeat, another request of privacy's, a block) is confirmed by another ``subject_erased`` that
shreds nothing and carries the first one's count. Each is appended at the stream's version as loaded, so two
requests at once cannot both shred: the second's append conflicts and its unit rolls back (it is retried).
"""

from __future__ import annotations

from upgestao_kernel.events import Aggregate

from .events import SubjectErased, SubjectPurged

DELETION, ANONYMISATION, BLOCKING = "deletion", "anonymisation", "blocking"
MODES = (DELETION, ANONYMISATION, BLOCKING)
SHREDDING = (DELETION, ANONYMISATION)


class Erasure(Aggregate):
    stream_type = "erasure"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.done = False  # the key was shredded
        self.messages: int | None = None  # counted by the purge
        self.confirmed: set[str] = set()  # privacy's requests answered
        self.purged = False

    @classmethod
    def start(cls, subject_id: str) -> Erasure:
        return cls(subject_id)

    def confirm(self, *, mode: str, request_id: str | None) -> bool:
        """Answer a request; True when this one shreds (the first deletion or anonymisation)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        shreds = mode in SHREDDING and not self.done
        self.trigger(SubjectErased(messages=None if shreds else self.messages, request_id=request_id, mode=mode,
                                   shredded=shreds))
        return shreds

    def when_subject_erased(self, messages: int | None, request_id: str | None = None, mode: str = DELETION,
                            shredded: bool = True) -> None:
        if shredded:
            self.done, self.messages = True, messages  # an erasure of before the purge existed counted here
        if request_id is not None:
            self.confirmed.add(request_id)

    def purge(self, *, messages: int, search_entries: int, attachments: int) -> None:
        """Record the purge of what was sealed under the shredded key (once, after the shredding)."""
        if not self.done or self.purged:
            raise ValueError("only a shredded subject is purged, once")
        self.trigger(SubjectPurged(messages=messages, search_entries=search_entries, attachments=attachments))

    def when_subject_purged(self, messages: int, search_entries: int, attachments: int) -> None:
        self.purged, self.messages = True, messages
