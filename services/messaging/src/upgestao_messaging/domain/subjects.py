"""A data subject's erasure in messaging: once per subject (stream ``erasure-<subject id>``, appended at
version 0, so a second request, or two at once, cannot emit it twice)."""

from __future__ import annotations

from upgestao_kernel.events import Aggregate

from .events import SubjectErased


class Erasure(Aggregate):
    stream_type = "erasure"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.done = False
        self.messages = 0

    @classmethod
    def record(cls, subject_id: str, messages: int) -> Erasure:
        erasure = cls(subject_id)
        erasure.trigger(SubjectErased(messages=messages))
        return erasure

    def when_subject_erased(self, messages: int) -> None:
        self.done, self.messages = True, messages
