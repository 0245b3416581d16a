"""Two requests changing one aggregate at once, through the real service: the one that loses the
optimistic-concurrency race is answered 409 ``conflict`` ("reload and retry"), not a 500 as before.

The first request is held right after it loaded its aggregate (the domain method it calls next
waits), the second one changes the same aggregate and commits, then the first goes on: its
events are one version behind and the event store refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import eventlet
import pytest
from eventlet.event import Event
from upgestao_identity.domain.sessions import Session
from upgestao_identity.domain.users import User
from upgestao_kernel.errors import ServiceError

CONFLICT = ("conflict", "This was changed by someone else meanwhile; reload and retry.", "409", "{}")


class Hold:
    """The first call of ``cls.name`` waits, its aggregate loaded, until :meth:`release`."""

    def __init__(self, monkeypatch, cls: type, name: str) -> None:
        self.loaded, self._resume, self.calls = Event(), Event(), 0
        original: Callable = getattr(cls, name)

        def held(aggregate, *args, **kwargs):
            self.calls += 1
            if self.calls == 1:
                self.loaded.send()
                self._resume.wait()
            return original(aggregate, *args, **kwargs)

        monkeypatch.setattr(cls, name, held)

    def wait_loaded(self) -> None:
        with eventlet.Timeout(10):
            self.loaded.wait()

    def release(self) -> None:
        if not self._resume.ready():
            self._resume.send()


@pytest.fixture
def hold(monkeypatch) -> Iterator[Callable[[type, str], Hold]]:
    holds: list[Hold] = []

    def make(cls: type, name: str) -> Hold:
        holds.append(Hold(monkeypatch, cls, name))
        return holds[-1]

    yield make
    for h in holds:
        h.release()


def test_two_admins_changing_one_user_at_once_the_later_gets_409(identity, hold):
    user = identity.add_user(1)
    held = hold(User, "change_role")
    first = identity.admin().update_user.call_async(user["id"], {"role": "supervisor"})
    held.wait_loaded()
    assert identity.admin().update_user(user["id"], {"role": "admin"})["changed"] == ["role"]
    held.release()
    with pytest.raises(ServiceError) as lost:
        first.result()
    assert lost.value.args == CONFLICT
    assert identity.admin().get_user(user["id"])["role"] == "admin"  # the winner's change, only
    assert len(identity.published("identity.user_role_changed.v1")) == 1
    # reloaded and retried, the loser's change goes through
    assert identity.admin().update_user(user["id"], {"role": "supervisor"})["changed"] == ["role"]


def test_two_refreshes_of_one_session_at_once_the_later_gets_409(identity, hold):
    identity.add_user(2)
    tokens = identity.caller().login("ana2@example.com.br", identity.password)
    held = hold(Session, "refresh")
    first = identity.caller().refresh.call_async(tokens["refresh_token"])
    held.wait_loaded()
    renewed = identity.caller().refresh(tokens["refresh_token"])
    assert renewed["session_id"] == tokens["session_id"]
    held.release()
    with pytest.raises(ServiceError) as lost:
        first.result()
    assert lost.value.args == CONFLICT
    # the winner's token is the session's current one: it still works
    assert identity.caller().refresh(renewed["refresh_token"])["session_id"] == tokens["session_id"]
