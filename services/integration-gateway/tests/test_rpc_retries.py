"""The gateway asks again, with the same idempotency key, for a write whose answer was lost.

No broker here: the attempt itself is replaced; what is checked is which calls are keyed, that
every attempt of one call carries the same key, what is retried and for how long.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from upgestao_gateway.adapters.rpc import RpcClient, RpcTimeout, RpcUnavailable
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.keyed_requests import outcome_unknown
from upgestao_kernel.nameko_ext.rpc import database_unavailable


def client(monkeypatch, outcomes: list, base: str | None = "actor-1:key-123456", budget: float = 5.0):
    request = SimpleNamespace(idempotency_base=base)
    rpc = RpcClient(SimpleNamespace(args=(request,)), transport=None, timeout_s=1.0, retry_budget_s=budget)
    keys: list[str | None] = []

    def attempt(service, method, args, kwargs, timeout_s, key):
        keys.append(key)
        outcome = outcomes.pop(0) if outcomes else RpcUnavailable(service, method, "broker: ConnectionRefused")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(rpc, "_attempt", attempt)
    monkeypatch.setattr("upgestao_gateway.adapters.rpc.RETRY_FIRST_DELAY_S", 0.01)
    return rpc, keys


def test_a_keyed_call_is_asked_again_with_the_same_key_until_answered(monkeypatch):
    rpc, keys = client(monkeypatch, [RpcUnavailable("identity", "create_customer", "broker: OSError"),
                                     RpcTimeout("identity", "create_customer", 1.0), {"id": "c-1"}])
    assert rpc.identity.create_customer({"full_name": "A"}) == {"id": "c-1"}
    assert keys == ["actor-1:key-123456:identity.create_customer#1"] * 3


def test_each_call_of_one_request_has_its_own_key(monkeypatch):
    rpc, keys = client(monkeypatch, [{"n": 1}, {"n": 2}, {"n": 3}])
    rpc.identity.update_customer("c-1", {})
    rpc.identity.update_customer("c-2", {})
    rpc.privacy.update_customer("c-1", {})
    assert keys == ["actor-1:key-123456:identity.update_customer#1", "actor-1:key-123456:identity.update_customer#2",
                    "actor-1:key-123456:privacy.update_customer#1"]


def test_a_database_outage_is_retried_but_an_unknown_outcome_is_not(monkeypatch):
    rpc, keys = client(monkeypatch, [database_unavailable(), {"ok": True}])
    assert rpc.identity.update_me({}) == {"ok": True} and len(keys) == 2
    rpc, keys = client(monkeypatch, [outcome_unknown(), {"ok": True}])
    with pytest.raises(ServiceError, match="outcome is unknown"):
        rpc.identity.update_me({})
    assert len(keys) == 1


def test_a_client_error_is_answered_at_once(monkeypatch):
    rpc, keys = client(monkeypatch, [ServiceError("conflict", "exists", 409)])
    with pytest.raises(ServiceError):
        rpc.identity.create_customer({})
    assert len(keys) == 1


def test_an_unkeyed_call_is_never_asked_twice(monkeypatch):
    rpc, keys = client(monkeypatch, [RpcUnavailable("identity", "login", "broker: OSError"), {"ok": True}], base=None)
    with pytest.raises(RpcUnavailable):
        rpc.identity.login("a@example.com", "pw")
    assert keys == [None]


def test_the_retries_stop_at_the_budget(monkeypatch):
    rpc, keys = client(monkeypatch, [], budget=0.3)
    with pytest.raises(RpcUnavailable):
        rpc.identity.create_customer({})
    assert 2 <= len(keys) <= 6 and len(set(keys)) == 1
