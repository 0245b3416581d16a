"""Messaging's edge table: each refusal of the domain and the problem its caller gets (applied by the
kernel's ``rpc`` entrypoint to every messaging method; the service module imports this)."""

from __future__ import annotations

from upgestao_kernel.errors import ProblemFactory, invalid_field, problem
from upgestao_kernel.nameko_ext.rpc import register_problems

from ..domain.errors import (
    EditWindowClosed,
    InvalidValue,
    MessageIsDeleted,
    NotAGroupChat,
    NotTheAuthor,
    NotTheChatManager,
)

PROBLEMS: dict[type[Exception], ProblemFactory] = {
    InvalidValue: lambda exc: invalid_field(exc.field, exc.message),
    EditWindowClosed: problem("forbidden", 403, lambda exc: (
        f"Messages are changed by their author within {exc.window_s} seconds of sending.")),
    NotTheAuthor: problem("forbidden", 403, "Only the author changes a message."),
    MessageIsDeleted: problem("conflict", 409, "The message is deleted."),
    NotAGroupChat: problem("conflict", 409, "A direct chat's members do not change."),
    NotTheChatManager: problem("forbidden", 403, "Members are added and removed by the group's creator."),
}

register_problems(PROBLEMS)
