"""The owners' adapter marks itself broken after any failed call, so the dispatcher replaces the RPC proxy (and
its reply queue, where a late answer holding personal values would otherwise wait)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from upgestao_integrations.entrypoints.dependencies import RpcOwners


def _cluster(identity, messaging) -> SimpleNamespace:
    return SimpleNamespace(identity=SimpleNamespace(share_subjects=identity),
                           messaging=SimpleNamespace(share_messages=messaging))


def test_answers_leave_the_proxy_in_use():
    owners = RpcOwners(_cluster(lambda *a: {"subjects": {}}, lambda *a: {"messages": {}}))
    assert owners.share_subjects(["c"], ["email"], "integration:int_x", "p") == {"subjects": {}}
    assert owners.share_messages(["m"], True, "integration:int_x", "p") == {"messages": {}}
    assert owners.broken is False


@pytest.mark.parametrize("error", [RuntimeError("This consumer has been disconnected"), TimeoutError()])
def test_a_failed_call_marks_the_proxy_broken(error):
    def fail(*args):
        raise error

    owners = RpcOwners(_cluster(fail, fail))
    with pytest.raises(type(error)):
        owners.share_messages(["m"], True, "integration:int_x", "p")
    assert owners.broken is True


def test_a_call_past_its_deadline_marks_the_proxy_broken():
    import eventlet

    owners = RpcOwners(_cluster(lambda *a: eventlet.sleep(1), lambda *a: None), timeout_s=0.05)
    with pytest.raises(eventlet.Timeout):
        owners.share_subjects(["c"], ["email"], "integration:int_x", "p")
    assert owners.broken is True


def test_batches_opening_data_side_by_side_call_the_proxy_one_at_a_time():
    """The proxy's reply queue is read by the waiting greenlet: two calls at once would fail (a second
    simultaneous read) and break the proxy, so the calls of batches side by side take turns."""
    import eventlet

    running, most = [0], [0]

    def call(*args):
        running[0] += 1
        most[0] = max(most[0], running[0])
        eventlet.sleep(0.01)
        running[0] -= 1
        return {"messages": {}}

    owners = RpcOwners(_cluster(call, call), timeout_s=5)
    pool = eventlet.GreenPool(4)
    for _ in range(4):
        pool.spawn(owners.share_messages, ["m"], True, "integration:int_x", "p")
    pool.waitall()
    assert most[0] == 1 and owners.broken is False
