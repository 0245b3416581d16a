"""Privacy's own data map, and the platform's map assembled from every service's declaration."""

from __future__ import annotations

import pytest
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.fakes import FakeUnitOfWork, MemoryStore
from upgestao_privacy.domain import datamap
from upgestao_privacy.domain.incidents import SEALED_FIELDS
from upgestao_privacy.service_layer.datamap import platform_data_map

IDENTITY_ITEMS = [
    {"resource": "user", "field": "email", "category": "contact", "description": "E-mail",
     "encrypted_at_rest": True, "shareable_with_integrations": True},
    {"resource": "customer", "field": "full_name", "category": "identification", "description": "Name",
     "encrypted_at_rest": True, "shareable_with_integrations": True, "purpose": "serving them",
     "legal_basis": "contract", "retention": "while a customer"},
]


def test_every_sealed_incident_field_is_declared():
    declared = {(i["resource"], i["field"]) for i in datamap.own_items()}
    assert {("incident", name) for name in SEALED_FIELDS} <= declared


def test_every_own_item_says_everything_and_is_never_shareable():
    for item in datamap.own_items():
        assert set(item) == set(datamap.ITEM_KEYS)
        assert all(item[k] for k in ("category", "description", "purpose", "legal_basis", "retention"))
        assert item["shareable_with_integrations"] is False


def test_a_service_item_is_completed_openly():
    assembled = datamap.assemble([("identity", IDENTITY_ITEMS, None), ("privacy", datamap.own_items(), None)])
    email, name = assembled["items"][:2]
    assert email["completed_by_privacy"] == ["purpose", "legal_basis", "retention"]
    assert email["legal_basis"].startswith("performance of a contract") and email["shareable_with_integrations"]
    assert name["completed_by_privacy"] == [] and name["purpose"] == "serving them"
    assert assembled["complete"] is True


def test_a_missing_service_is_marked_unavailable_never_silently_dropped():
    assembled = datamap.assemble([("identity", IDENTITY_ITEMS, None), ("messaging", None, "no data_map"),
                                  ("privacy", datamap.own_items(), None)])
    assert assembled["complete"] is False
    assert {"service": "messaging", "status": "unavailable", "fields": 0, "reason": "no data_map"} in \
        assembled["services"]


class _Proxy:
    def __init__(self, answer=None, error=None):
        self.answer, self.error = answer, error

    def data_map(self):
        if self.error:
            raise self.error
        return self.answer


def _run(role, proxies):
    store = MemoryStore(service="privacy")
    context = RequestContext(request_id="r", actor_id="someone", actor_role=role)
    perms = {"dpo": frozenset({"datamap.read"})}
    result = platform_data_map(lambda: FakeUnitOfWork(store, context), lambda r: perms.get(r, frozenset()), proxies)
    return store, result


def test_the_platform_map_covers_every_declared_field():
    messaging_items = [{"resource": "message", "field": "body", "category": "communication",
                        "description": "A message", "encrypted_at_rest": True,
                        "shareable_with_integrations": False}]
    store, result = _run("dpo", {"identity": _Proxy({"items": IDENTITY_ITEMS}),
                                 "messaging": _Proxy({"service": "messaging", "items": messaging_items})})
    got = {(i["service"], i["resource"], i["field"]) for i in result["items"]}
    wanted = {("identity", i["resource"], i["field"]) for i in IDENTITY_ITEMS}
    wanted |= {("messaging", "message", "body")} | {("privacy", i["resource"], i["field"])
                                                    for i in datamap.own_items()}
    assert got == wanted and result["complete"]
    assert store.audit_records(action="list", resource_type="data_map")


def test_a_service_without_a_map_is_unavailable():
    _, result = _run("dpo", {"identity": _Proxy({"items": IDENTITY_ITEMS}),
                             "messaging": _Proxy(error=RuntimeError("MethodNotFound"))})
    [messaging] = [s for s in result["services"] if s["service"] == "messaging"]
    assert messaging["status"] == "unavailable" and "RuntimeError" in messaging["reason"]
    assert result["complete"] is False


def test_without_datamap_read_403_audited():
    with pytest.raises(ServiceError) as refused:
        _run("agent", {"identity": _Proxy({"items": []}), "messaging": _Proxy({"items": []})})
    assert refused.value.status == 403
