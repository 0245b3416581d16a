"""The gateway's routes for identity's API keys (issue 15): create (shown once), list, read, revoke. Every
route needs ``integrations.manage``; identity checks it again with the caller's token and audits each.

* ``POST /v1/api-keys`` issues a key for an integrated tool: 201 with the key, answered this once
  (``Cache-Control: no-store``), and ``Location``;
* ``GET /v1/api-keys`` (cursor pages) and ``GET /v1/api-keys/{id}`` describe keys, never the key itself;
* ``DELETE /v1/api-keys/{id}`` revokes one at once (204): this replica drops it now, the others when
  identity's ``session_revoked`` event for the key's id reaches them (the access-events stream).

The path variable is not named ``*_id``: a refused request's audit record takes the first ``*_id`` variable
as its subject (a person's id), and a key is nobody.
"""

from __future__ import annotations

from ..http.request import GatewayRequest
from ..http.responses import Reply
from ..http.routing import route
from .schemas import ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeyPageSchema, ApiKeySchema, ApiKeysQuerySchema

API_KEYS = ("api-keys",)
PERMISSION = "integrations.manage"
# a key is answered once: no cache, no proxy, no browser may keep it
NO_STORE = {"Cache-Control": "no-store"}


class ApiKeyRoutes:
    """Mixed into :class:`~upgestao_gateway.service.GatewayService`."""

    @route("POST", "/v1/api-keys", personal_data=False, body=ApiKeyCreateSchema, response=ApiKeyCreatedSchema,
           status=201, auth="required", permission=PERMISSION, errors=(503,), tags=API_KEYS,
           summary="Issue an API key for an integrated tool (the key is answered this once)",
           description="The key (upk_…) holds the given scopes; a tool presents it as `Authorization: Bearer "
                       "upk_…` and acts with those permissions only, audited as the key. Only its hash is "
                       "kept: keep the key, it is never shown again.")
    def create_api_key(self, request: GatewayRequest, body: dict) -> Reply:
        data = {"name": body["name"], "scopes": list(body["scopes"])}
        if body.get("expires_at") is not None:
            data["expires_at"] = body["expires_at"].isoformat()
        created = self.rpc.identity.create_api_key(data)
        return Reply(created, headers={**NO_STORE, "Location": f"/v1/api-keys/{created['id']}"})

    @route("GET", "/v1/api-keys", personal_data=False, query=ApiKeysQuerySchema, response=ApiKeyPageSchema,
           auth="required", permission=PERMISSION, errors=(503,), tags=API_KEYS,
           summary="The API keys (oldest first, cursor pagination): never a key, only what each may do")
    def list_api_keys(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.identity.api_keys(query["limit"], query.get("cursor"))

    @route("GET", "/v1/api-keys/<uuid:key>", personal_data=False, response=ApiKeySchema, auth="required",
           permission=PERMISSION, errors=(404, 503), tags=API_KEYS, summary="One API key (never the key)")
    def get_api_key(self, request: GatewayRequest, key) -> dict:
        return self.rpc.identity.api_key(str(key))

    @route("DELETE", "/v1/api-keys/<uuid:key>", personal_data=False, status=204, auth="required",
           permission=PERMISSION, errors=(404, 503), tags=API_KEYS, summary="Revoke an API key, at once")
    def revoke_api_key(self, request: GatewayRequest, key) -> None:
        self.rpc.identity.revoke_api_key(str(key))
        self.access.revoked_here([str(key)])
