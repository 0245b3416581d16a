"""A messaging world in memory for the use cases' unit tests: the kernel's fake unit of work and vault,
messaging's memory repositories, H4's memory search index, a fake directory of people and identity's
default roles as the contract states them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import DomainError
from upgestao_kernel.events import new_id
from upgestao_kernel.nameko_ext.rpc import PROBLEMS
from upgestao_messaging.adapters.memory_repositories import memory_units
from upgestao_messaging.adapters.ports import Person
from upgestao_messaging.domain.search import TermHasher
from upgestao_messaging.entrypoints import errors as _edge  # noqa: F401  (registers messaging's rows)
from upgestao_messaging.service_layer.access import Deps
from upgestao_messaging.service_layer.api import MessagingApi
from upgestao_messaging.service_layer.attachments import SealedAttachments

ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"conversations.read", "conversations.write", "conversations.record_incoming",
                        "conversations.read_all", "teams.manage", "chats.use", "messages.moderate"}),
    "supervisor": frozenset({"conversations.read", "conversations.write", "conversations.record_incoming",
                             "conversations.read_team", "chats.use"}),
    "attendant": frozenset({"conversations.read", "conversations.write", "conversations.record_incoming",
                            "chats.use"}),
    "dpo": frozenset({"chats.use"}),
}


class Clock:
    """Starts at the real time (the event log stamps events with it); tests move it forward."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Directory:
    people: dict[str, Person] = field(default_factory=dict)
    down: bool = False

    def lookup(self, ids):
        if self.down:
            raise RuntimeError("identity away")
        return {i: self.people[i] for i in ids if i in self.people}


class Edge:
    """The use cases as the RPC edge answers them: a domain refusal becomes the problem of its row (as the
    kernel's ``rpc`` entrypoint does), so tests assert what a caller gets."""

    def __init__(self, api: MessagingApi) -> None:
        self.api = api
        self.deps = api.deps

    def __getattr__(self, name: str):
        method = getattr(self.api, name)

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except DomainError as exc:
                answer = PROBLEMS.answer(exc)
                if answer is None:
                    raise
                raise answer from exc

        return call


class World:
    def __init__(self) -> None:
        self.store, self.make, self.index = memory_units()
        self.directory = Directory()
        self.clock = Clock()
        self.hasher = TermHasher(b"unit-test-search-key-0123456789")

    def staff(self, role: str = "attendant", active: bool = True) -> str:
        user_id = new_id()
        self.directory.people[user_id] = Person(user_id, "staff", role, active)
        return user_id

    def customer(self, active: bool = True) -> str:
        customer_id = new_id()
        self.directory.people[customer_id] = Person(customer_id, "customer", None, active)
        return customer_id

    def api(self, user_id: str | None, role: str | None = None, caller_service: str | None = None,
            edit_window_s: int = 900, attachments=None) -> Edge:
        if role is None and user_id in self.directory.people:
            role = self.directory.people[user_id].role
        context = RequestContext(request_id=new_id(), actor_id=user_id, actor_role=role,
                                 caller_service=caller_service)
        deps = Deps(unit_of_work=lambda: self.make(context), permissions_of=lambda r: ROLES.get(r or "", frozenset()),
                    directory=self.directory, hasher=self.hasher, edit_window_s=edit_window_s, now=self.clock,
                    attachments=attachments or SealedAttachments(now=self.clock))
        return Edge(MessagingApi(deps))

    def system(self) -> Edge:
        return self.api("system", "system")


@pytest.fixture
def world() -> World:
    return World()
