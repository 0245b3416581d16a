"""The audit-completeness scenarios of the data-subject request routes and the privacy contact channel
(issue 14), for ``tests/test_audit_completeness_e2e.py`` (``SCENARIOS.update(PRIVACY_REQUEST_SCENARIOS)``):
one successful call of each personal-data route and the one record it must leave (service, action,
resource, subject, actor and exactly its fields). ``w`` is that test's ``World``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from e2e_mail import mail_to, text_and_html
from upgestao_kernel.testing import wait_for

RESOURCE = "privacy_request"
# For tests/test_api_fuzz_e2e.py's MEANING_CHECKED: schema-valid data privacy answers 422 for (a cursor the
# API never gave).
MEANING_CHECKED = frozenset({"GET /v1/privacy/requests", "GET /v1/privacy/requests/overdue"})
_CODE = re.compile(r"^\s*([0-9]{6})\s*$", re.MULTILINE)


def _dpo_id(w: Any) -> str:
    if "dpo_id" not in w.extra:
        w.extra["dpo_id"] = w.api.get("/v1/me", w.dpo).json()["id"]
    return w.extra["dpo_id"]


def _filed(w: Any, type_: str) -> str:
    response = w.api.post("/v1/privacy/requests", w.token, json={"type": type_})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _record(w: Any, action: str, fields: list[str], actor_id: str | None, subject_id: str | None) -> dict:
    return {"service": "privacy", "action": action, "resource_type": RESOURCE, "subject_id": subject_id,
            "actor_id": actor_id, "fields": fields}


def file_request(w: Any, rid: str) -> dict:
    w.extra["privacy_request"] = w.call("POST", "/v1/privacy/requests", w.token, rid, 201,
                                        json={"type": "access"}).json()["id"]
    return _record(w, "create", ["type"], w.user["id"], w.user["id"])


def read_request(w: Any, rid: str) -> dict:
    w.call("GET", f"/v1/privacy/requests/{w.extra['privacy_request']}", w.token, rid, 200)  # (filed first)
    return _record(w, "read", ["state", "history"], w.user["id"], w.user["id"])


def start_request(w: Any, rid: str) -> dict:
    request_id = _filed(w, "consent_info")  # privacy answers it itself: no other area acts on it
    w.call("POST", f"/v1/privacy/requests/{request_id}/start", w.dpo, rid, 200)
    return _record(w, "update", ["state"], _dpo_id(w), w.user["id"])


def complete_request(w: Any, rid: str) -> dict:
    request_id = _filed(w, "correction")
    started = w.api.post(f"/v1/privacy/requests/{request_id}/start", w.dpo)
    assert started.status_code == 200, started.text
    w.call("POST", f"/v1/privacy/requests/{request_id}/complete", w.dpo, rid, 200, json={"note": "Corrigido"})
    return _record(w, "update", ["state", "reason"], _dpo_id(w), w.user["id"])


def deny_request(w: Any, rid: str) -> dict:
    request_id = _filed(w, "blocking")
    w.call("POST", f"/v1/privacy/requests/{request_id}/deny", w.dpo, rid, 200, json={"reason": "Sem base"})
    return _record(w, "update", ["state", "reason"], _dpo_id(w), w.user["id"])


def cancel_request(w: Any, rid: str) -> dict:
    request_id = _filed(w, "portability")
    w.call("POST", f"/v1/privacy/requests/{request_id}/cancel", w.token, rid, 200, json={})
    return _record(w, "update", ["state"], w.user["id"], w.user["id"])


def extend_request(w: Any, rid: str) -> dict:
    from datetime import UTC, datetime, timedelta

    request_id = _filed(w, "anonymisation")
    due = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    w.call("POST", f"/v1/privacy/requests/{request_id}/extend", w.dpo, rid, 200,
           json={"due_at": due, "reason": "Volume"})
    canceled = w.api.post(f"/v1/privacy/requests/{request_id}/cancel", w.token, json={})  # leave nothing open
    assert canceled.status_code == 200, canceled.text
    return _record(w, "update", ["due_at", "reason"], _dpo_id(w), w.user["id"])


def contact(w: Any, rid: str) -> dict:
    address = f"contato-{uuid.uuid4().hex[:8]}@example.com"
    accepted = w.call("POST", "/v1/privacy/contact", None, rid, 202,
                      json={"email": address, "type": "confirmation", "message": "Olá"}).json()
    w.extra["privacy_contact"] = (accepted["id"], address)
    return _record(w, "create", ["type", "email", "message"], None, None)


def verify_contact(w: Any, rid: str) -> dict:
    request_id, address = w.extra["privacy_contact"]  # (contact runs first)
    codes: list[str] = []

    def arrived() -> bool:
        codes[:] = [m.group(1) for _, message in mail_to(w.platform, address)
                    if (m := _CODE.search(text_and_html(message)[0]))]
        return bool(codes)

    wait_for(arrived, timeout=30, interval=0.2)
    w.call("POST", f"/v1/privacy/contact/{request_id}/verify", None, rid, 200, json={"code": codes[-1]})
    return _record(w, "update", ["state", "subject_id"], None, None)


PRIVACY_REQUEST_SCENARIOS: dict[tuple[str, str], Callable[[Any, str], dict]] = {
    ("POST", "/v1/privacy/requests"): file_request,
    ("GET", "/v1/privacy/requests/{request_id}"): read_request,
    ("POST", "/v1/privacy/requests/{request_id}/start"): start_request,
    ("POST", "/v1/privacy/requests/{request_id}/complete"): complete_request,
    ("POST", "/v1/privacy/requests/{request_id}/deny"): deny_request,
    ("POST", "/v1/privacy/requests/{request_id}/cancel"): cancel_request,
    ("POST", "/v1/privacy/requests/{request_id}/extend"): extend_request,
    ("POST", "/v1/privacy/contact"): contact,
    ("POST", "/v1/privacy/contact/{request_id}/verify"): verify_contact,
}


# -- rows of tests/test_permissions_e2e.py's TABLE: (attendant, supervisor, dpo, admin). privacy.self is every
# built-in role's (file, list, read and cancel one's own); privacy.review the dpo's alone (a compliance
# permission: not even the admin's). {request_id} is a random id: absent (404) for whoever may ask. The contact
# channel needs no session (the test's PUBLIC set).
PRIVACY_REQUEST_PERMISSIONS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("POST", "/v1/privacy/requests"): (201, 201, 201, 201),
    ("GET", "/v1/privacy/requests"): (200, 200, 200, 200),
    ("GET", "/v1/privacy/requests/overdue"): (403, 403, 200, 403),
    ("GET", "/v1/privacy/requests/{request_id}"): (404, 404, 404, 404),
    ("POST", "/v1/privacy/requests/{request_id}/start"): (403, 403, 404, 403),
    ("POST", "/v1/privacy/requests/{request_id}/complete"): (403, 403, 404, 403),
    ("POST", "/v1/privacy/requests/{request_id}/deny"): (403, 403, 404, 403),
    ("POST", "/v1/privacy/requests/{request_id}/cancel"): (404, 404, 404, 404),
    ("POST", "/v1/privacy/requests/{request_id}/extend"): (403, 403, 404, 403),
}
PRIVACY_REQUEST_PUBLIC = {("POST", "/v1/privacy/contact"), ("POST", "/v1/privacy/contact/{request_id}/verify")}


def request_request_json(method: str, template: str) -> dict | None:
    """The body a valid request of the route sends (None: no body)."""
    from datetime import UTC, datetime, timedelta

    bodies: dict[tuple[str, str], dict] = {
        ("POST", "/v1/privacy/requests"): {"type": "confirmation"},
        ("POST", "/v1/privacy/requests/{request_id}/complete"): {"note": "Feito"},
        ("POST", "/v1/privacy/requests/{request_id}/deny"): {"reason": "Sem base"},
        ("POST", "/v1/privacy/requests/{request_id}/cancel"): {},
        ("POST", "/v1/privacy/requests/{request_id}/extend"): {
            "due_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(), "reason": "Volume"},
    }
    return bodies.get((method, template))
