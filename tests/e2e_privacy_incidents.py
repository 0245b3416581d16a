"""The audit-completeness scenarios of the incident routes (``tests/test_audit_completeness_e2e.py``: merge
with ``SCENARIOS.update(PRIVACY_INCIDENT_SCENARIOS)``), written beside the incidents' e2e test.

Each performs one successful call as the DPO and names the record it must leave: privacy's own, with the
incident as the subject whose key seals its texts (they may name people) and the field names only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SEALED = ["delay_reasons", "dpo_contact", "measures_taken", "nature_of_data", "people_affected", "risks",
          "technical_measures", "what_to_do"]


def _dpo_id(w: Any) -> str:
    if "dpo_id" not in w.extra:
        w.extra["dpo_id"] = w.api.get("/v1/me", w.dpo).json()["id"]
    return w.extra["dpo_id"]


def record_incident(w: Any, rid: str) -> dict:
    now = datetime.now(UTC)
    body = {"nature_of_data": ["E-mail addresses"], "categories": ["contact"],
            "affected": {"kind": "ids", "ids": [w.customer["id"]]}, "people_affected": "One customer",
            "technical_measures": "Encrypted at rest", "risks": "Phishing", "measures_taken": "Link revoked",
            "what_to_do": ["Ignore e-mails asking for codes"], "dpo_contact": "dpo@upgestao.example",
            "occurred_at": (now - timedelta(hours=2)).isoformat(),
            "detected_at": (now - timedelta(hours=1)).isoformat()}
    incident = w.call("POST", "/v1/privacy/incidents", w.dpo, rid, 201, json=body).json()
    w.extra["incident"] = incident["id"]
    return {"service": "privacy", "action": "create", "resource_type": "incident", "subject_id": incident["id"],
            "actor_id": _dpo_id(w), "fields": SEALED}


def read_incident(w: Any, rid: str) -> dict:
    incident_id = w.extra["incident"]  # (record_incident runs first)
    w.call("GET", f"/v1/privacy/incidents/{incident_id}", w.dpo, rid, 200)
    return {"service": "privacy", "action": "read", "resource_type": "incident", "subject_id": incident_id,
            "actor_id": _dpo_id(w), "fields": SEALED}


def confirm_incident(w: Any, rid: str) -> dict:
    incident_id = w.extra["incident"]
    w.call("POST", f"/v1/privacy/incidents/{incident_id}/confirm", w.dpo, rid, 200, json={})
    return {"service": "privacy", "action": "update", "resource_type": "incident", "resource_id": incident_id,
            "actor_id": _dpo_id(w), "fields": ["state"]}


PRIVACY_INCIDENT_SCENARIOS = {
    ("POST", "/v1/privacy/incidents"): record_incident,
    ("GET", "/v1/privacy/incidents/{incident_id}"): read_incident,
    ("POST", "/v1/privacy/incidents/{incident_id}/confirm"): confirm_incident,
}


# -- rows of tests/test_permissions_e2e.py's TABLE: (attendant, supervisor, dpo, admin), {incident_id} a random
# id (absent: 404 for the dpo, who may ask), the POST bodies from incident_request_json. privacy.incidents is the
# dpo's alone (a compliance permission: not even the admin's); every role reads the data map (datamap.read).
PRIVACY_INCIDENT_PERMISSIONS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("POST", "/v1/privacy/incidents"): (403, 403, 201, 403),
    ("GET", "/v1/privacy/incidents"): (403, 403, 200, 403),
    ("GET", "/v1/privacy/incidents/{incident_id}"): (403, 403, 404, 403),
    ("POST", "/v1/privacy/incidents/{incident_id}/confirm"): (403, 403, 404, 403),
    ("GET", "/v1/privacy/data-map"): (200, 200, 200, 200),
}


def incident_request_json(method: str, template: str) -> dict | None:
    """The body a valid request of the route sends (None: no body)."""
    if (method, template) == ("POST", "/v1/privacy/incidents"):
        now = datetime.now(UTC)
        return {"nature_of_data": ["E-mail addresses"], "categories": ["contact"],
                "affected": {"kind": "ids", "ids": ["00000000-0000-4000-8000-000000000001"]},
                "people_affected": "Nobody real", "technical_measures": "Encrypted at rest", "risks": "None",
                "measures_taken": "None needed", "what_to_do": ["Nothing"], "dpo_contact": "dpo@upgestao.example",
                "occurred_at": (now - timedelta(hours=2)).isoformat(),
                "detected_at": (now - timedelta(hours=1)).isoformat()}
    if (method, template) == ("POST", "/v1/privacy/incidents/{incident_id}/confirm"):
        return {}
    return None


# -- the API fuzzer (tests/test_api_fuzz_e2e.py's MEANING_CHECKED): schema-valid data privacy answers 422 --
# POST /v1/privacy/incidents: ids required for kind ids (and only then), a channel for channel_customers,
# detected_at not in the future nor occurred_at after it, whitespace-only texts; the list's and the progress'
# cursors the API never gave; confirm: delay_reasons required past the deadline, or whitespace-only.
MEANING_CHECKED = frozenset({
    "POST /v1/privacy/incidents", "GET /v1/privacy/incidents", "GET /v1/privacy/incidents/{incident_id}",
    "POST /v1/privacy/incidents/{incident_id}/confirm",
})
