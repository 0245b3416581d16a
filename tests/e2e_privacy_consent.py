"""The audit-completeness scenarios of privacy's corrections, policy acceptances and consents (issue 14): one
successful call of each personal-data route and the record it must leave, in the form of
``tests/test_audit_completeness_e2e.py`` (``SCENARIOS.update(PRIVACY_CONSENT_SCENARIOS)``, as messaging's).

The attendant of the world files corrections (a field their role may not edit), the world's dpo decides them;
the attendant accepts the policy in effect and chooses cookie consents.
"""

from __future__ import annotations

import uuid
from typing import Any


def _dpo_id(w: Any) -> str:
    if "dpo_id" not in w.extra:
        w.extra["dpo_id"] = w.api.get("/v1/me", w.dpo).json()["id"]
    return w.extra["dpo_id"]


def _file(w: Any, title: str) -> str:
    answer = w.api.post("/v1/privacy/corrections", w.token, json={"changes": {"job_title": title}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def file_correction(w: Any, rid: str) -> dict:
    answer = w.call("POST", "/v1/privacy/corrections", w.token, rid, 201,
                    json={"changes": {"job_title": f"Cargo {uuid.uuid4().hex[:6]}"}})
    w.extra["correction_id"] = answer.json()["id"]
    return {"service": "privacy", "action": "create", "resource_type": "correction", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["job_title"]}


def list_corrections(w: Any, rid: str) -> dict:
    w.call("GET", "/v1/privacy/corrections", w.token, rid, 200)
    return {"service": "privacy", "action": "list", "resource_type": "correction", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["changes", "reason"]}


def read_correction(w: Any, rid: str) -> dict:
    w.call("GET", f"/v1/privacy/corrections/{w.extra['correction_id']}", w.token, rid, 200)
    return {"service": "privacy", "action": "read", "resource_type": "correction", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["changes", "reason"]}


def approve_correction(w: Any, rid: str) -> dict:
    w.call("POST", f"/v1/privacy/corrections/{w.extra['correction_id']}/approve", w.dpo, rid, 200)
    return {"service": "privacy", "action": "update", "resource_type": "correction", "subject_id": w.user["id"],
            "actor_id": _dpo_id(w), "fields": ["job_title"]}


def deny_correction(w: Any, rid: str) -> dict:
    correction = _file(w, f"Outro {uuid.uuid4().hex[:6]}")
    w.call("POST", f"/v1/privacy/corrections/{correction}/deny", w.dpo, rid, 200, json={"reason": "Sem base."})
    return {"service": "privacy", "action": "update", "resource_type": "correction", "subject_id": w.user["id"],
            "actor_id": _dpo_id(w), "fields": ["job_title"]}


def accept_policy(w: Any, rid: str) -> dict:
    version = w.api.get("/v1/privacy/policies/current").json()["version"]
    w.call("POST", f"/v1/privacy/policies/{version}/accept", w.token, rid, 200)
    return {"service": "privacy", "action": "update", "resource_type": "policy_acceptance",
            "subject_id": w.user["id"], "actor_id": w.user["id"], "fields": ["version"]}


def policy_acceptances(w: Any, rid: str) -> dict:
    w.call("GET", "/v1/privacy/policy-acceptances", w.token, rid, 200)
    return {"service": "privacy", "action": "read", "resource_type": "policy_acceptance",
            "subject_id": w.user["id"], "actor_id": w.user["id"], "fields": ["version", "accepted_at"]}


def put_consents(w: Any, rid: str) -> dict:
    version = w.api.get("/v1/privacy/policies/current").json()["version"]
    w.call("PUT", "/v1/privacy/consents", w.token, rid, 200,
           json={"purposes": {"analytics": True}, "policy_version": version})
    return {"service": "privacy", "action": "update", "resource_type": "consent", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["analytics"]}


def get_consents(w: Any, rid: str) -> dict:
    w.call("GET", "/v1/privacy/consents", w.token, rid, 200)
    return {"service": "privacy", "action": "read", "resource_type": "consent", "subject_id": w.user["id"],
            "actor_id": w.user["id"], "fields": ["purposes", "history"]}


# In this order (a scenario may use what an earlier one made).
PRIVACY_CONSENT_SCENARIOS = {
    ("POST", "/v1/privacy/corrections"): file_correction,
    ("GET", "/v1/privacy/corrections"): list_corrections,
    ("GET", "/v1/privacy/corrections/{correction_id}"): read_correction,
    ("POST", "/v1/privacy/corrections/{correction_id}/approve"): approve_correction,
    ("POST", "/v1/privacy/corrections/{correction_id}/deny"): deny_correction,
    ("POST", "/v1/privacy/policies/{version}/accept"): accept_policy,
    ("GET", "/v1/privacy/policy-acceptances"): policy_acceptances,
    ("PUT", "/v1/privacy/consents"): put_consents,
    ("GET", "/v1/privacy/consents"): get_consents,
}


# -- rows of tests/test_permissions_e2e.py's TABLE: (attendant, supervisor, dpo, admin). privacy.self is every
# built-in role's; privacy.review and privacy.policies the dpo's alone. {correction_id} is a random id (absent:
# 404 for whoever may ask); {version} is the seeded first version (2023-09-05): accepting it again records
# nothing new (200), publishing it again is a 409 for the dpo. The policies' texts and an anonymous visitor's
# consents need no session (the test's PUBLIC set).
SEEDED_POLICY = "2023-09-05"
PRIVACY_CONSENT_PERMISSIONS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("POST", "/v1/privacy/corrections"): (201, 201, 201, 201),
    ("GET", "/v1/privacy/corrections"): (200, 200, 200, 200),
    ("GET", "/v1/privacy/corrections/{correction_id}"): (404, 404, 404, 404),
    ("POST", "/v1/privacy/corrections/{correction_id}/approve"): (403, 403, 404, 403),
    ("POST", "/v1/privacy/corrections/{correction_id}/deny"): (403, 403, 404, 403),
    ("POST", "/v1/privacy/policies"): (403, 403, 409, 403),
    ("POST", "/v1/privacy/policies/{version}/accept"): (200, 200, 200, 200),
    ("GET", "/v1/privacy/policy-acceptances"): (200, 200, 200, 200),
    ("PUT", "/v1/privacy/consents"): (200, 200, 200, 200),
    ("GET", "/v1/privacy/consents"): (200, 200, 200, 200),
}
PRIVACY_CONSENT_PUBLIC = {
    ("GET", "/v1/privacy/policies"), ("GET", "/v1/privacy/policies/current"), ("GET", "/v1/privacy/policies/{version}"),
    ("PUT", "/v1/privacy/consents/visitor"), ("GET", "/v1/privacy/consents/visitor"),
}


def consent_request_json(method: str, template: str) -> dict | None:
    """The body a valid request of the route sends (None: no body)."""
    bodies: dict[tuple[str, str], dict] = {
        ("POST", "/v1/privacy/corrections"): {"changes": {"job_title": f"Cargo {uuid.uuid4().hex[:6]}"}},
        ("POST", "/v1/privacy/corrections/{correction_id}/deny"): {"reason": "Sem base."},
        ("POST", "/v1/privacy/policies"): {"version": SEEDED_POLICY, "effective_at": "2030-01-01T00:00:00+00:00",
                                           "text": "Texto", "summary": "Resumo"},
        ("PUT", "/v1/privacy/consents"): {"purposes": {"analytics": False}, "policy_version": SEEDED_POLICY},
    }
    return bodies.get((method, template))


# -- the API fuzzer (tests/test_api_fuzz_e2e.py's MEANING_CHECKED): schema-valid data privacy answers 422 --
# a correction naming no field one may correct (an empty change set, only self-editable fields) or a
# whitespace-only reason; a corrections cursor the API never gave; a policy version named "current" or a
# whitespace-only text; consents withdrawing the essential purpose, naming none, or under a policy version
# not in effect; a visitor id (body or Visitor-Id header) this API never issued.
MEANING_CHECKED = frozenset({
    "POST /v1/privacy/corrections", "GET /v1/privacy/corrections", "POST /v1/privacy/corrections/{correction_id}/deny",
    "POST /v1/privacy/policies", "PUT /v1/privacy/consents", "PUT /v1/privacy/consents/visitor",
    "GET /v1/privacy/consents/visitor",
})
