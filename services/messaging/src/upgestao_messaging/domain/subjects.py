"""A data subject's erasure in messaging (stream ``erasure-<subject id>``).

The first ``deletion`` or ``anonymisation`` shreds: its ``subject_erased`` says so (``shredded``). Every later
request (a repeat, another request of privacy's, a block) is confirmed by another ``subject_erased`` that
shreds nothing and carries the first one's count. Each is appended at the stream's version as loaded, so two
requests at once cannot both shred: the second's append conflicts and its unit rolls back (it is retried).
"""

from __future__ import annotations

from upgestao_kernel.events import Aggregate

from .events import SubjectErased

DELETION, ANONYMISATION, BLOCKING = "deletion", "anonymisation", "blocking"
MODES = (DELETION, ANONYMISATION, BLOCKING)
SHREDDING = (DELETION, ANONYMISATION)


class Erasure(Aggregate):
    stream_type = "erasure"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.done = False  # the key was shredded
        self.messages = 0
        self.confirmed: set[str] = set()  # privacy's requests answered

    @classmethod
    def start(cls, subject_id: str) -> Erasure:
        return cls(subject_id)

    def confirm(self, *, mode: str, request_id: str | None, messages: int) -> bool:
        """Answer a request; True when this one shreds (the first deletion or anonymisation)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        shreds = mode in SHREDDING and not self.done
        self.trigger(SubjectErased(messages=messages if shreds else self.messages, request_id=request_id,
                                   mode=mode, shredded=shreds))
        return shreds

    def when_subject_erased(self, messages: int, request_id: str | None = None, mode: str = DELETION,
                            shredded: bool = True) -> None:
        if shredded:
            self.done, self.messages = True, messages
        if request_id is not None:
            self.confirmed.add(request_id)
