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
