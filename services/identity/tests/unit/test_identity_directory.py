"""The directory messaging checks ids against: kind, role and whether active; ids only, for messaging only."""

from __future__ import annotations

from upgestao_identity.service_layer import customers, directory, users
from upgestao_kernel.context import RequestContext


def _as(service: str | None) -> RequestContext:
    return RequestContext(request_id="req-d", correlation_id="req-d", caller_service=service)


def _lookup(fake, ids, service: str | None = "messaging") -> dict:
    with fake.uow(context=_as(service)) as uow:
        return directory.lookup(uow, ids)


def test_staff_and_customers_are_told_apart_and_unknown_ids_are_absent(fake):
    ana = fake.add_user(1)
    bia = fake.add_user(2, role="supervisor")
    carla = fake.run(customers.register, {"full_name": "Carla", "email": "carla@example.com.br"},
                     today=fake.today)["id"]
    fake.run(users.deactivate, bia)
    mark = fake.mark()
    answer = _lookup(fake, [ana, bia, carla, "00000000-0000-4000-8000-000000000000", ana])
    assert answer == {"items": {
        ana: {"kind": "staff", "role": "attendant", "active": True},
        bia: {"kind": "staff", "role": "supervisor", "active": False},
        carla: {"kind": "customer", "role": None, "active": True},
    }}
    assert fake.audit_since(mark) == []  # nothing personal is opened: ids, kinds, roles


def test_only_messaging_may_ask_and_a_refusal_is_audited(fake):
    ana = fake.add_user(1)
    for service in (None, "gateway", "notifier"):
        mark = fake.mark()
        answer = fake.refused(lambda s=service: _lookup(fake, [ana], s))
        assert answer.status == 403
        (denied,) = fake.audit_since(mark)
        assert (denied["outcome"], denied["resource_type"], denied["action"]) == ("denied", "directory", "read")


def test_malformed_or_too_many_ids_are_refused_precisely(fake):
    for ids in ("not-a-list", [1, 2], [""], ["x" * 65], [f"id-{n}" for n in range(201)]):
        answer = fake.refused(lambda i=ids: _lookup(fake, i))
        assert answer.status == 422 and answer.extensions["errors"][0]["field"] == "ids"
