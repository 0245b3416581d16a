"""What messaging's domain refuses, in its own terms (the edge's table, ``entrypoints/errors.py``,
says how each is answered: 422, 403 or 409)."""

from __future__ import annotations

from upgestao_kernel.errors import DomainError


class InvalidValue(DomainError):
    """A value the domain cannot take (answered 422 naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class EditWindowClosed(DomainError):
    """The author may change a message only within the edit window (moderators any time)."""

    def __init__(self, window_s: int) -> None:
        super().__init__(f"the edit window of {window_s} s has passed")
        self.window_s = window_s


class NotTheAuthor(DomainError):
    """Only the author (or a moderator) changes a message."""


class MessageIsDeleted(DomainError):
    """A deleted message is not edited or deleted again."""


class NotAGroupChat(DomainError):
    """Members are added to and removed from group chats only (a direct chat is two people, for good)."""


class NotTheChatManager(DomainError):
    """Members are managed by the group's creator or a moderator (a member may only remove themself)."""
