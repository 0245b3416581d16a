"""The directory port over identity's ``directory`` RPC: people as identity says, and a 503 (never a guess,
never identity's own refusal passed on) when identity cannot answer in time."""

from __future__ import annotations

import eventlet
import pytest
from upgestao_kernel.errors import ServiceError
from upgestao_messaging.adapters.ports import Person
from upgestao_messaging.entrypoints.dependencies import RpcDirectory

A, B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


class Identity:
    def __init__(self, answer=None, error=None, delay=0.0):
        self.answer, self.error, self.delay, self.asked = answer, error, delay, []

    def directory(self, ids):
        self.asked.append(list(ids))
        if self.delay:
            eventlet.sleep(self.delay)
        if self.error:
            raise self.error
        return self.answer


def test_people_as_identity_says_them_and_only_those_asked():
    identity = Identity({"items": {A: {"kind": "staff", "role": "attendant", "active": True},
                                   B: {"kind": "customer", "role": None, "active": False},
                                   "other": {"kind": "staff", "role": "admin", "active": True}}})
    people = RpcDirectory(identity).lookup([A, B, A])
    assert people == {A: Person(A, "staff", "attendant", True), B: Person(B, "customer", None, False)}
    assert identity.asked == [[A, B]] and RpcDirectory(identity).lookup([]) == {}
    assert people[A].active_staff and not people[B].active_customer


@pytest.mark.parametrize("identity", [
    Identity(error=ServiceError("forbidden", "not for you", 403)),
    Identity(error=ConnectionError("broker away")),
    Identity({"items": {}}, delay=1.0),
], ids=["refused", "away", "too slow"])
def test_identity_that_cannot_answer_is_a_503(identity):
    with pytest.raises(ServiceError) as caught:
        RpcDirectory(identity, timeout_s=0.05).lookup([A])
    assert caught.value.status == 503 and caught.value.slug == "service-unavailable"
