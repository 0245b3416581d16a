"""The gateway's routes for the integrations service (issue 15): the webhook endpoints' registry, their
messages and attempts, resend and recover. Every route needs ``integrations.manage`` (admins); the
integrations service checks it again with the caller's token and audits each call.

* ``POST /v1/integrations`` registers an endpoint: 201 with its signing secret, shown this once
  (``Cache-Control: no-store``), and ``Location``. ``GET`` lists (cursor pages) and reads one, ``PATCH``
  changes its settings or its status; ``POST …/secret/rotate`` draws a new secret (answered once, no-store;
  the old one keeps signing for 24 h).
* ``GET …/messages?status=`` lists its messages with their attempts, ``GET …/messages/{msg_id}`` reads one,
  ``POST …/messages/{msg_id}/resend`` queues one again (202, the same ``webhook-id``).
* ``POST …/recover {"since"}`` starts a background job re-queuing every failed message since then (202,
  ``Location`` of the job); ``GET …/recoveries/{job_id}`` its progress.

Ids in paths are the service's (``int_…``, ``msg_…``, ``rec_…``), not UUIDs: one of
another shape is answered 404 before the service is asked, never quoted back. The answers hold names of
tools, URLs, field names, ids and states: no person's data (``personal_data=False``); the deliveries that
carry a person's data are audited by the integrations service as shares, one by one.
"""

from __future__ import annotations

import re
from typing import Any

from ..http.problems import Problem
from ..http.request import GatewayRequest
from ..http.responses import Reply
from ..http.routing import route
from .schemas import (
    INTEGRATION_ID_PATTERN,
    MESSAGE_ID_PATTERN,
    RECOVERY_ID_PATTERN,
    IntegrationCreatedSchema,
    IntegrationCreateSchema,
    IntegrationPageSchema,
    IntegrationPatchSchema,
    IntegrationSchema,
    IntegrationsQuerySchema,
    RecoverSchema,
    RecoverySchema,
    RotatedSecretSchema,
    WebhookMessagePageSchema,
    WebhookMessageSchema,
    WebhookMessagesQuerySchema,
)

INTEGRATIONS = ("integrations",)
PERMISSION = "integrations.manage"
# The path variables are not named ``*_id``: a refused request's audit record takes the first ``*_id`` variable
# as its subject (a person's id), and an integration, a message or a job is nobody (nor would a malformed id
# sent by someone without the permission be kept in the audit log).
_ID = "/v1/integrations/<integration>"
_MESSAGE = f"{_ID}/messages/<message>"
_INTEGRATION_ID = re.compile(INTEGRATION_ID_PATTERN)
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)
_RECOVERY_ID = re.compile(RECOVERY_ID_PATTERN)
# a secret is answered once: no cache, no proxy, no browser may keep it
SECRET_HEADERS = {"Cache-Control": "no-store"}


def integration_id_of(value: str) -> str:
    """The integration id of a path, or a 404 (an id of another shape names nothing)."""
    if not _INTEGRATION_ID.fullmatch(value):
        raise Problem("not-found", "No such integration.")
    return value


def message_id_of(value: str) -> str:
    if not _MESSAGE_ID.fullmatch(value):
        raise Problem("not-found", "No such message.")
    return value


def recovery_id_of(value: str) -> str:
    if not _RECOVERY_ID.fullmatch(value):
        raise Problem("not-found", "No such recovery.")
    return value


def recovery_location(integration_id: str, recovery: dict[str, Any]) -> str:
    return f"/v1/integrations/{integration_id}/recoveries/{recovery['id']}"


class IntegrationRoutes:
    """Mixed into :class:`~upgestao_gateway.service.GatewayService` (which provides ``self.rpc``)."""

    # -- the registry

    @route("POST", "/v1/integrations", personal_data=False, body=IntegrationCreateSchema,
           response=IntegrationCreatedSchema, status=201, auth="required", permission=PERMISSION,
           errors=(409, 503), tags=INTEGRATIONS,
           summary="Register a webhook endpoint (its signing secret is answered this once)",
           description="The endpoint is sent the subscribed event types, carrying only the allowed fields. "
                       "address, birth_date, gender, photo, job_title and credentials can never be selected "
                       "(422 naming the field). The answer holds `secret` (whsec_…): keep it, it is never "
                       "shown again (Cache-Control: no-store); verify each delivery's webhook-signature with it "
                       "(Standard Webhooks 1.0).")
    def register_integration(self, request: GatewayRequest, body: dict) -> Reply:
        created = self.rpc.integrations.register(body["name"], body["url"], body["events"], body["fields"],
                                                 body["privacy_policy_url"])
        return Reply(created, headers={**SECRET_HEADERS, "Location": f"/v1/integrations/{created['id']}"})

    @route("GET", "/v1/integrations", personal_data=False, query=IntegrationsQuerySchema,
           response=IntegrationPageSchema, auth="required", permission=PERMISSION, errors=(503,), tags=INTEGRATIONS,
           summary="The integrations (cursor pagination; never their secrets)")
    def list_integrations(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.integrations.integrations(query["limit"], query.get("cursor"))

    @route("GET", _ID, personal_data=False, response=IntegrationSchema, auth="required", permission=PERMISSION,
           errors=(404, 503), tags=INTEGRATIONS, summary="An integration's settings and state (never its secret)")
    def get_integration(self, request: GatewayRequest, integration: str) -> dict:
        return self.rpc.integrations.integration(integration_id_of(integration))

    @route("PATCH", _ID, personal_data=False, body=IntegrationPatchSchema, response=IntegrationSchema,
           auth="required", permission=PERMISSION, errors=(404, 409, 503), tags=INTEGRATIONS,
           summary="Change an integration's settings, or enable or disable it",
           description="Any of name, url, events, fields, privacy_policy_url and status. Disabled by hand, its "
                       "reason is `manual` (no e-mail); enabled again, its failures are forgotten.")
    def update_integration(self, request: GatewayRequest, integration: str, body: dict) -> dict:
        return self.rpc.integrations.update_integration(integration_id_of(integration), body)

    @route("POST", f"{_ID}/secret/rotate", personal_data=False, response=RotatedSecretSchema, auth="required",
           permission=PERMISSION, errors=(404, 409, 503), tags=INTEGRATIONS,
           summary="Draw a new signing secret (answered this once); the old one keeps signing for 24 h",
           description="During those 24 h each delivery carries both signatures, so a receiver can switch to "
                       "the new secret at its own pace.")
    def rotate_integration_secret(self, request: GatewayRequest, integration: str) -> Reply:
        rotated = self.rpc.integrations.rotate_secret(integration_id_of(integration))
        return Reply(rotated, headers=SECRET_HEADERS)

    # -- messages and their attempts

    @route("GET", f"{_ID}/messages", personal_data=False, query=WebhookMessagesQuerySchema,
           response=WebhookMessagePageSchema, auth="required", permission=PERMISSION, errors=(404, 503),
           tags=INTEGRATIONS,
           summary="An integration's messages with their attempts (newest first, cursor pagination)")
    def list_integration_messages(self, request: GatewayRequest, integration: str, query: dict) -> dict:
        return self.rpc.integrations.webhook_messages(integration_id_of(integration), query.get("status"),
                                                      query["limit"], query.get("cursor"))

    @route("GET", _MESSAGE, personal_data=False, response=WebhookMessageSchema, auth="required", permission=PERMISSION,
           errors=(404, 503), tags=INTEGRATIONS, summary="A message with every attempt (never its payload)")
    def get_integration_message(self, request: GatewayRequest, integration: str, message: str) -> dict:
        return self.rpc.integrations.webhook_message(integration_id_of(integration), message_id_of(message))

    @route("POST", f"{_MESSAGE}/resend", personal_data=False, response=WebhookMessageSchema, status=202,
           auth="required", permission=PERMISSION, errors=(404, 409, 503), tags=INTEGRATIONS,
           summary="Send a message again (the same webhook-id: a receiver recognises a repeat)")
    def resend_integration_message(self, request: GatewayRequest, integration: str, message: str) -> dict:
        return self.rpc.integrations.resend(integration_id_of(integration), message_id_of(message))

    # -- recovery

    @route("POST", f"{_ID}/recover", personal_data=False, body=RecoverSchema, response=RecoverySchema, status=202,
           auth="required", permission=PERMISSION, errors=(404, 409, 503), tags=INTEGRATIONS,
           summary="Send again every failed message since a time (a background job: follow its Location)")
    def recover_integration(self, request: GatewayRequest, integration: str, body: dict) -> Reply:
        integration_id = integration_id_of(integration)
        job = self.rpc.integrations.recover(integration_id, body["since"].isoformat())
        return Reply(job, headers={"Location": recovery_location(integration_id, job)})

    @route("GET", f"{_ID}/recoveries/<recovery>", personal_data=False, response=RecoverySchema,
           auth="required", permission=PERMISSION, errors=(404, 503), tags=INTEGRATIONS,
           summary="A recovery's progress (running, then completed)")
    def get_integration_recovery(self, request: GatewayRequest, integration: str, recovery: str) -> dict:
        return self.rpc.integrations.recovery(integration_id_of(integration), recovery_id_of(recovery))
