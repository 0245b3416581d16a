"""The gateway's routes for privacy's data-subject requests and the privacy contact channel (LGPD art. 18).

A signed-in person files for themself (``privacy.self``: verified by their session), lists and reads their
own requests and cancels an open one; the DPO (``privacy.review``) sees every request, the overdue queue,
and starts, completes, denies (a reason), cancels and extends (a reason) them. Someone else's request is a
404. Anyone else uses the contact channel: ``POST /v1/privacy/contact`` (no sign-in, rate-limited per client
address and per address, always 202 with a request id whether or not the address is known) e-mails a
6-digit code; ``POST /v1/privacy/contact/{id}/verify`` gives it back (10 minutes, single use, 3 attempts).
Privacy checks every permission again and audits every transition.
"""

from __future__ import annotations

from ..http.request import GatewayRequest
from ..http.routing import route
from .schemas import (
    CodeSchema,
    ContactAcceptedSchema,
    ContactSchema,
    ExtendSchema,
    NewRequestSchema,
    NoteSchema,
    OptionalReasonSchema,
    OverduePageSchema,
    PageQuerySchema,
    ReasonSchema,
    RequestDetailSchema,
    RequestPageSchema,
    RequestSchema,
    RequestsQuerySchema,
    VerifiedSchema,
)

PRIVACY = ("privacy",)
SELF = "privacy.self"
REVIEW = "privacy.review"
_ID = "/v1/privacy/requests/<uuid:request_id>"


class PrivacyRequestRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    @route("POST", "/v1/privacy/requests", personal_data=True, body=NewRequestSchema, response=RequestSchema,
           status=201, auth="required", permission=SELF, errors=(403, 503), tags=PRIVACY,
           summary="File a data-subject request for oneself (verified by the session: pending at once)")
    def file_privacy_request(self, request: GatewayRequest, body: dict) -> dict:
        return self.rpc.privacy.file_request(body["type"])

    @route("GET", "/v1/privacy/requests", personal_data=False, query=RequestsQuerySchema,
           response=RequestPageSchema, auth="required", permission=SELF, errors=(403, 503), tags=PRIVACY,
           summary="One's own requests; every request with privacy.review (by due date)")
    def list_privacy_requests(self, request: GatewayRequest, query: dict) -> dict:
        filters = {k: query[k] for k in ("state", "type", "mine") if query.get(k) is not None}
        return self.rpc.privacy.list_requests(filters, query["limit"], query.get("cursor"))

    @route("GET", "/v1/privacy/requests/overdue", personal_data=False, query=PageQuerySchema,
           response=OverduePageSchema, auth="required", permission=REVIEW, errors=(503,), tags=PRIVACY,
           summary="The DPO's queue: open requests by due date, the overdue first")
    def overdue_privacy_requests(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.privacy.overdue_requests(query["limit"], query.get("cursor"))

    @route("GET", _ID, personal_data=True, response=RequestDetailSchema, auth="required", permission=SELF,
           errors=(404, 503), tags=PRIVACY, summary="A request with its history (one's own, or any for a reviewer)")
    def get_privacy_request(self, request: GatewayRequest, request_id) -> dict:
        return self.rpc.privacy.get_request(str(request_id))

    @route("POST", f"{_ID}/start", personal_data=True, response=RequestDetailSchema, auth="required",
           permission=REVIEW, errors=(404, 409, 503), tags=PRIVACY,
           summary="Start work on a request (privacy answers confirmation, sharing_info and consent_info at once)")
    def start_privacy_request(self, request: GatewayRequest, request_id) -> dict:
        return self.rpc.privacy.start_request(str(request_id))

    @route("POST", f"{_ID}/complete", personal_data=True, body=NoteSchema, response=RequestDetailSchema,
           auth="required", permission=REVIEW, errors=(404, 409, 503), tags=PRIVACY,
           summary="Close a request answered by hand (a correction), with an optional note")
    def complete_privacy_request(self, request: GatewayRequest, request_id, body: dict) -> dict:
        return self.rpc.privacy.complete_request(str(request_id), body.get("note"))

    @route("POST", f"{_ID}/deny", personal_data=True, body=ReasonSchema, response=RequestDetailSchema,
           auth="required", permission=REVIEW, errors=(404, 409, 503), tags=PRIVACY,
           summary="Deny a request, with the reason (told to the requester)")
    def deny_privacy_request(self, request: GatewayRequest, request_id, body: dict) -> dict:
        return self.rpc.privacy.deny_request(str(request_id), body["reason"])

    @route("POST", f"{_ID}/cancel", personal_data=True, body=OptionalReasonSchema, response=RequestDetailSchema,
           auth="required", permission=SELF, errors=(404, 409, 503), tags=PRIVACY,
           summary="Withdraw an open request (its requester, or the DPO)")
    def cancel_privacy_request(self, request: GatewayRequest, request_id, body: dict) -> dict:
        return self.rpc.privacy.cancel_request(str(request_id), body.get("reason"))

    @route("POST", f"{_ID}/extend", personal_data=True, body=ExtendSchema, response=RequestDetailSchema,
           auth="required", permission=REVIEW, errors=(404, 409, 503), tags=PRIVACY,
           summary="Move a request's due date later, with the reason")
    def extend_privacy_request(self, request: GatewayRequest, request_id, body: dict) -> dict:
        return self.rpc.privacy.extend_request(str(request_id), body["due_at"].isoformat(), body["reason"])

    # -- the contact channel (no sign-in)

    @route("POST", "/v1/privacy/contact", personal_data=True, body=ContactSchema, response=ContactAcceptedSchema,
           status=202, errors=(429, 503), tags=PRIVACY,
           summary="File a data-subject request without an account: a 6-digit code is e-mailed (always accepted)")
    def privacy_contact(self, request: GatewayRequest, body: dict) -> dict:
        return self.rpc.privacy.contact_request(body["email"], body["type"], body.get("message"))

    @route("POST", "/v1/privacy/contact/<uuid:request_id>/verify", personal_data=True, body=CodeSchema,
           response=VerifiedSchema, errors=(403, 404, 409, 410, 503), tags=PRIVACY,
           summary="Give the e-mailed code back (10 minutes, single use, 3 attempts): the request goes to the DPO")
    def verify_privacy_contact(self, request: GatewayRequest, request_id, body: dict) -> dict:
        return self.rpc.privacy.verify_contact_request(str(request_id), body["code"])
