"""The erasure and access-bundle routes (issue 14, H6) for the platform-wide e2e tests: the audit-completeness
scenarios (``tests/test_audit_completeness_e2e.py``: ``SCENARIOS.update(PRIVACY_EXPORT_SCENARIOS)``) and the
rows of the route-by-role table (``tests/test_permissions_e2e.py``). ``w`` is the completeness test's ``World``.

* ``GET /v1/privacy/exports/{token}``: the world's attendant's access request (the one the requests area's
  scenario filed, else a new one) started by the DPO; the link comes by e-mail; the download (no session) leaves
  privacy's ``export`` record of ``subject_bundle`` naming ``bundle`` and every member the bundle gives away.
* ``POST /v1/privacy/requests/{id}/unblock``: a new attendant's ``blocking`` request, started and completed,
  then lifted by the DPO: privacy's ``update`` of the request naming ``blocking`` (and identity's of the user,
  naming ``status``).
"""

from __future__ import annotations

import re
from typing import Any

from e2e_mail import mail_to, text_and_html
from upgestao_kernel.testing import wait_for
from upgestao_privacy.domain.exports import field_names

LINK = re.compile(r"/v1/privacy/exports/([A-Za-z0-9_-]{20,128})")
TIMEOUT = 30


def _dpo_id(w: Any) -> str:
    if "dpo_id" not in w.extra:
        w.extra["dpo_id"] = w.api.get("/v1/me", w.dpo).json()["id"]
    return w.extra["dpo_id"]


def _completed(w: Any, request_id: str) -> dict:
    def done() -> dict | None:
        got = w.api.get(f"/v1/privacy/requests/{request_id}", w.dpo)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["state"] not in ("error", "denied", "canceled"), body
        return body if body["state"] == "completed" else None

    return wait_for(done, timeout=TIMEOUT, interval=0.2)


def _filed_and_started(w: Any, token: str, type_: str, request_id: str | None = None) -> str:
    if request_id is None:
        filed = w.api.post("/v1/privacy/requests", token, json={"type": type_})
        assert filed.status_code == 201, filed.text
        request_id = filed.json()["id"]
    started = w.api.post(f"/v1/privacy/requests/{request_id}/start", w.dpo)
    assert started.status_code == 200, started.text
    return request_id


def download_export(w: Any, rid: str) -> dict:
    # the access request the requests area's scenario filed (still pending), else a new one
    request_id = _filed_and_started(w, w.token, "access", w.extra.pop("privacy_request", None))
    _completed(w, request_id)

    def link() -> str | None:
        for _, message in mail_to(w.platform, w.user["email"]):
            if found := LINK.search(text_and_html(message)[0]):  # (the attendant's only access bundle)
                return found.group(1)
        return None

    token = wait_for(link, timeout=TIMEOUT, interval=0.2)
    bundle = w.call("GET", f"/v1/privacy/exports/{token}", None, rid, 200).json()
    given: set[str] = set()
    for section in bundle["sections"].values():
        field_names(section, given)
    return {"service": "privacy", "action": "export", "resource_type": "subject_bundle",
            "subject_id": w.user["id"], "actor_id": None, "fields": ["bundle", *sorted(given)]}


def unblock(w: Any, rid: str) -> dict:
    user, tokens = w.api.create_staff(w.admin, "attendant")  # (blocked meanwhile: not the world's attendant)
    request_id = _filed_and_started(w, tokens["access_token"], "blocking")
    _completed(w, request_id)
    lifted = w.call("POST", f"/v1/privacy/requests/{request_id}/unblock", w.dpo, rid, 200).json()
    assert lifted["lifted"] is True, lifted
    return {"service": "privacy", "action": "update", "resource_type": "privacy_request", "subject_id": user["id"],
            "actor_id": _dpo_id(w), "fields": ["blocking"]}


PRIVACY_EXPORT_SCENARIOS = {
    ("GET", "/v1/privacy/exports/{token}"): download_export,
    ("POST", "/v1/privacy/requests/{request_id}/unblock"): unblock,
}

# -- rows of tests/test_permissions_e2e.py's TABLE: (attendant, supervisor, dpo, admin); {request_id} a random id
# (absent: 404 for whoever may ask). The progress is the person's (privacy.self) or a reviewer's; lifting a
# blocking is privacy.review (the dpo's alone). The download needs no session: the link is the credential.
PRIVACY_EXPORT_PERMISSIONS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("GET", "/v1/privacy/requests/{request_id}/erasure"): (404, 404, 404, 404),
    ("POST", "/v1/privacy/requests/{request_id}/unblock"): (403, 403, 404, 403),
}
PRIVACY_EXPORT_PUBLIC = {("GET", "/v1/privacy/exports/{token}")}
