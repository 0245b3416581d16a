"""The gateway's routes for privacy's security incidents (R6.1, LGPD art. 48) and the platform's data map (R1.1).

The DPO (``privacy.incidents``) records an incident with every art. 48 §1 item, lists them, reads one (its
texts, the 3-business-day deadline and the notice's progress per recipient, from the notifier's delivery
records) and confirms it, which resolves the affected people and e-mails each one once. There is no route
to delete an incident (kept at least 5 years). Privacy checks the permission again and audits every step.

``GET /v1/privacy/data-map`` (``datamap.read``): every personal field of every service, gathered by privacy
from each service's own declaration; a service that did not answer is listed as unavailable.
"""

from __future__ import annotations

from ..http.request import GatewayRequest
from ..http.responses import Reply
from ..http.routing import route
from .schemas import (
    IncidentConfirmSchema,
    IncidentCreateSchema,
    IncidentPageSchema,
    IncidentQuerySchema,
    IncidentSchema,
    IncidentsQuerySchema,
    IncidentSummarySchema,
    IncidentWithProgressSchema,
    PlatformDataMapSchema,
)

INCIDENTS = ("privacy incidents",)
PERMISSION = "privacy.incidents"


def _iso(body: dict) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in body.items()}


class PrivacyIncidentRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    @route("POST", "/v1/privacy/incidents", personal_data=True, body=IncidentCreateSchema, response=IncidentSchema,
           status=201, auth="required", permission=PERMISSION, errors=(503,), tags=INCIDENTS,
           summary="Record a security incident (a draft) with every LGPD art. 48 §1 item",
           description="The texts are sealed (they may name people). The deadline to notify is 3 business days "
                       "from detected_at (ANPD Resolution 15/2024; Brazilian national holidays counted).")
    def record_incident(self, request: GatewayRequest, body: dict) -> Reply:
        incident = self.rpc.privacy.incident_record(_iso(body))
        return Reply(incident, status=201, headers={"Location": f"/v1/privacy/incidents/{incident['id']}"})

    @route("GET", "/v1/privacy/incidents", personal_data=False, query=IncidentsQuerySchema,
           response=IncidentPageSchema, auth="required", permission=PERMISSION, errors=(503,), tags=INCIDENTS,
           summary="The incidents, newest first (state, deadline, counts; no texts)")
    def list_incidents(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.privacy.incidents_list(query["limit"], query.get("cursor"))

    @route("GET", "/v1/privacy/incidents/<uuid:incident_id>", personal_data=True, query=IncidentQuerySchema,
           response=IncidentWithProgressSchema, auth="required", permission=PERMISSION, errors=(404, 503),
           tags=INCIDENTS, summary="One incident: its texts, its deadline and its notice's progress per recipient")
    def get_incident(self, request: GatewayRequest, incident_id, query: dict) -> dict:
        return self.rpc.privacy.incident_get(str(incident_id), query.get("cursor"), query["limit"])

    @route("POST", "/v1/privacy/incidents/<uuid:incident_id>/confirm", personal_data=True,
           body=IncidentConfirmSchema, response=IncidentSummarySchema, auth="required", permission=PERMISSION,
           errors=(404, 409, 503), tags=INCIDENTS,
           summary="Confirm an incident: resolve the people affected and e-mail each one (once)",
           description="409 when it is confirmed already: a notice is never sent twice. After the deadline, "
                       "delay_reasons is required (unless recorded with the incident).")
    def confirm_incident(self, request: GatewayRequest, incident_id, body: dict) -> dict:
        return self.rpc.privacy.incident_confirm(str(incident_id), body.get("delay_reasons"))

    @route("GET", "/v1/privacy/data-map", personal_data=False, response=PlatformDataMapSchema, auth="required",
           permission="datamap.read", errors=(503,), tags=("privacy",),
           summary="Every personal field of every service: category, purpose, legal basis, retention, shareable")
    def platform_data_map(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.platform_data_map()
