"""The gateway's routes for privacy's corrections, policy versions and cookie consents (issue 14).

* Corrections (R5.1): ``POST /v1/privacy/corrections`` files one about oneself (``privacy.self``; ``PATCH /v1/me``
  also files one for the fields the role may not edit: see the identity routes); ``GET`` lists one's own (every
  one's with ``privacy.review``); ``POST .../{id}/approve`` and ``.../{id}/deny`` (``privacy.review``, never
  one's own correction; a denial needs a reason).
* Policy versions (R11.1): ``POST /v1/privacy/policies`` (``privacy.policies``) publishes and announces one by
  e-mail; ``GET /v1/privacy/policies``, ``/current`` and ``/{version}`` are public;
  ``POST /v1/privacy/policies/{version}/accept`` records the caller's acceptance (``GET /v1/me`` says when one
  is due); ``GET /v1/privacy/policy-acceptances`` is the caller's history.
* Cookie consents (R7.1): ``PUT``/``GET /v1/privacy/consents`` for the signed-in user (``privacy.self``);
  ``PUT``/``GET /v1/privacy/consents/visitor`` for an anonymous visitor, known by the random visitor id the
  API issues (the ``Visitor-Id`` header on GET, so it is never in a URL).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError
from upgestao_kernel.errors import ServiceError

from ..http.problems import Problem
from ..http.request import GatewayRequest
from ..http.responses import Reply
from ..http.routing import route
from ..http.schemas import Pattern
from .schemas import (
    VISITOR_PATTERN,
    AcceptanceListSchema,
    AcceptanceSchema,
    ConsentPutSchema,
    ConsentStateSchema,
    CorrectionCreateSchema,
    CorrectionDenySchema,
    CorrectionPageSchema,
    CorrectionSchema,
    CorrectionsQuerySchema,
    PolicyCreateSchema,
    PolicyListSchema,
    PolicySchema,
    VisitorConsentPutSchema,
)

PRIVACY = ("privacy",)
SELF = "privacy.self"
REVIEW = "privacy.review"
VISITOR_HEADER = "Visitor-Id"
_VISITOR = Pattern(VISITOR_PATTERN)


def visitor_header(request: GatewayRequest) -> str:
    value = request.headers.get(VISITOR_HEADER)
    try:
        if value is None:
            raise ValidationError("missing")
        _VISITOR(value)
    except ValidationError:
        raise Problem("validation-error", "The request headers are invalid.",
                      errors=[{"field": VISITOR_HEADER, "message": "must be the visitor id this API issued"}]) from None
    return value


class PrivacyConsentRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    # -- corrections ---------------------------------------------------------------------------------

    @route("POST", "/v1/privacy/corrections", personal_data=True, body=CorrectionCreateSchema,
           response=CorrectionSchema, status=201, auth="required", permission=SELF, errors=(503,), tags=PRIVACY,
           summary="File a correction of one's own profile (reviewed by the DPO)")
    def file_correction(self, request: GatewayRequest, body: dict) -> Reply:
        filed = self.rpc.privacy.file_correction(body["changes"], body.get("reason"), "request")
        return Reply(filed, headers={"Location": f"/v1/privacy/corrections/{filed['id']}"})

    @route("GET", "/v1/privacy/corrections", personal_data=True, query=CorrectionsQuerySchema,
           response=CorrectionPageSchema, auth="required", permission=SELF, errors=(503,), tags=PRIVACY,
           summary="Correction requests: one's own; every one with privacy.review (newest first)")
    def list_corrections(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.privacy.corrections(query.get("status"), query["limit"], query.get("cursor"))

    @route("GET", "/v1/privacy/corrections/<uuid:correction_id>", personal_data=True, response=CorrectionSchema,
           auth="required", permission=SELF, errors=(404, 503), tags=PRIVACY, summary="A correction request")
    def get_correction(self, request: GatewayRequest, correction_id) -> dict:
        return self.rpc.privacy.correction(str(correction_id))

    @route("POST", "/v1/privacy/corrections/<uuid:correction_id>/approve", personal_data=True,
           response=CorrectionSchema, auth="required", permission=REVIEW, errors=(404, 409, 503), tags=PRIVACY,
           summary="Approve a correction: identity applies it as the reviewer (never one's own; the requester is "
                   "e-mailed)")
    def approve_correction(self, request: GatewayRequest, correction_id) -> dict:
        return self.rpc.privacy.approve_correction(str(correction_id))

    @route("POST", "/v1/privacy/corrections/<uuid:correction_id>/deny", personal_data=True,
           body=CorrectionDenySchema, response=CorrectionSchema, auth="required", permission=REVIEW,
           errors=(404, 409, 503), tags=PRIVACY,
           summary="Deny a correction with a reason (never one's own; the requester is e-mailed)")
    def deny_correction(self, request: GatewayRequest, correction_id, body: dict) -> dict:
        return self.rpc.privacy.deny_correction(str(correction_id), body["reason"])

    # -- policy versions -----------------------------------------------------------------------------

    @route("POST", "/v1/privacy/policies", personal_data=False, body=PolicyCreateSchema, response=PolicySchema,
           status=201, auth="required", permission="privacy.policies", errors=(409, 503), tags=PRIVACY,
           summary="Publish a privacy-policy version (every user is e-mailed and must accept it)")
    def publish_policy(self, request: GatewayRequest, body: dict) -> Reply:
        data = {**body, "effective_at": body["effective_at"].isoformat()}
        published = self.rpc.privacy.publish_policy(data)
        return Reply(published, headers={"Location": f"/v1/privacy/policies/{published['version']}"})

    @route("GET", "/v1/privacy/policies", personal_data=False, response=PolicyListSchema, errors=(503,),
           tags=PRIVACY, summary="The privacy-policy versions, newest first (texts left out)")
    def list_policies(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.policy_versions()

    @route("GET", "/v1/privacy/policies/current", personal_data=False, response=PolicySchema, errors=(404, 503),
           tags=PRIVACY, summary="The privacy policy in effect, with its text")
    def current_policy(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.current_policy()

    @route("GET", "/v1/privacy/policies/<version>", personal_data=False, response=PolicySchema, errors=(404, 503),
           tags=PRIVACY, summary="A privacy-policy version, with its text")
    def get_policy(self, request: GatewayRequest, version: str) -> dict:
        return self.rpc.privacy.policy_version(version)

    @route("POST", "/v1/privacy/policies/<version>/accept", personal_data=True, response=AcceptanceSchema,
           auth="required", permission=SELF, errors=(404, 409, 503), tags=PRIVACY,
           summary="Accept a privacy-policy version (recorded once; GET /v1/me says when one is due)")
    def accept_policy(self, request: GatewayRequest, version: str) -> dict:
        return self.rpc.privacy.accept_policy(version)

    @route("GET", "/v1/privacy/policy-acceptances", personal_data=True, response=AcceptanceListSchema,
           auth="required", permission=SELF, errors=(503,), tags=PRIVACY,
           summary="One's acceptances of privacy-policy versions, newest first")
    def policy_acceptances(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.policy_acceptances()

    # -- cookie consents -----------------------------------------------------------------------------

    @route("PUT", "/v1/privacy/consents", personal_data=True, body=ConsentPutSchema, response=ConsentStateSchema,
           auth="required", permission=SELF, errors=(503,), tags=PRIVACY,
           summary="Choose one's cookie consents per purpose (essential always on); withdrawal is the same PUT")
    def put_consents(self, request: GatewayRequest, body: dict) -> dict:
        return self.rpc.privacy.put_consents(dict(body))

    @route("GET", "/v1/privacy/consents", personal_data=True, response=ConsentStateSchema, auth="required",
           permission=SELF, errors=(503,), tags=PRIVACY,
           summary="One's cookie consents and their full history, newest first")
    def get_consents(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.consents()

    @route("PUT", "/v1/privacy/consents/visitor", personal_data=False, body=VisitorConsentPutSchema,
           response=ConsentStateSchema, errors=(429, 503), tags=PRIVACY,
           summary="An anonymous visitor's cookie consents (a visitor id is issued when none is given: keep it)")
    def put_visitor_consents(self, request: GatewayRequest, body: dict) -> dict:
        return self.rpc.privacy.put_consents(dict(body))

    @route("GET", "/v1/privacy/consents/visitor", personal_data=False, response=ConsentStateSchema,
           errors=(422, 503), tags=PRIVACY,  # 422: no Visitor-Id header, or not one this API issued
           summary="An anonymous visitor's cookie consents and history (the visitor id in the Visitor-Id header)")
    def get_visitor_consents(self, request: GatewayRequest) -> dict:
        return self.rpc.privacy.consents(visitor_header(request))

    # -- GET/PATCH /v1/me (the identity routes call these) --------------------------------------------

    def me_with_policy(self) -> dict[str, Any]:
        """identity.me, and whether a policy version is to be accepted (one RPC to privacy)."""
        me = self.rpc.identity.me()
        status = self.rpc.privacy.policy_status()
        return {**me, "policy_acceptance_required": status.get("policy_acceptance_required")}

    def update_me_or_file(self, body: dict) -> Reply | dict:
        """``PATCH /v1/me``: the fields the role may edit are applied; the others are filed as one correction
        (202 ``{id, fields, status, applied}``)."""
        try:
            return self.rpc.identity.update_me(body)["user"]
        except ServiceError as exc:
            if exc.slug != "correction-required" or not (exc.extensions or {}).get("fields"):
                raise
            refused = [name for name in exc.extensions["fields"] if name in body]
        editable = {k: v for k, v in body.items() if k not in refused}
        applied = []
        if set(editable) - {"current_password"}:
            self.rpc.identity.update_me(editable)
            applied = sorted(set(editable) - {"current_password"})
        filed = self.rpc.privacy.file_correction({name: body[name] for name in refused}, None, "profile_edit")
        return Reply({"id": filed["id"], "fields": filed["fields"], "status": filed["status"], "applied": applied},
                     status=202, headers={"Location": f"/v1/privacy/corrections/{filed['id']}"})
