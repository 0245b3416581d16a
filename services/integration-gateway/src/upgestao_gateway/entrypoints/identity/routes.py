"""The identity routes of the gateway: people, roles, authentication.

Each handler shapes the request for one identity RPC and its answer for the
client; identity decides (and audits) everything about personal data. Every
authenticated route names the permission it needs (checked here first, and
again by identity).

``personal_data=True`` marks the routes that read or change a field of the
data map (``GET /v1/data-map``): profiles, users, customers, photos, and the
credentials and e-mail of the authentication routes; identity audits each
success. Sessions, token refresh and logout carry ids and times only; roles
and the data map are no one's data.
"""

from __future__ import annotations

import base64

from upgestao_kernel.limits import PHOTO_MAX_BYTES
from werkzeug.wrappers import Response

from ..http.bodies import BinaryResponse, RawBody
from ..http.request import GatewayRequest
from ..http.responses import Reply
from ..http.routing import route
from ..privacy_consent.schemas import MeSchema
from .schemas import (
    AcceptedSchema,
    CustomerCreateSchema,
    CustomerPageSchema,
    CustomerPatchSchema,
    CustomerSchema,
    CustomerSearchSchema,
    DataMapSchema,
    LoginSchema,
    MePatchSchema,
    PageQuerySchema,
    PasswordChangedSchema,
    PasswordChangeSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    PhotoSchema,
    RefreshSchema,
    RoleListSchema,
    RoleSchema,
    RoleUpdateSchema,
    SessionListSchema,
    TokenPairSchema,
    UserCreateSchema,
    UserPageSchema,
    UserPatchSchema,
    UserSchema,
    UserStatusChangeSchema,
)

AUTH = ("auth",)
PEOPLE = ("users",)
CUSTOMERS = ("customers",)
ROLES = ("roles",)
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_PHOTO_BYTES = PHOTO_MAX_BYTES


def _tokens(answer: dict) -> Reply:
    return Reply({k: answer[k] for k in ("access_token", "refresh_token", "token_type", "expires_in")},
                 headers={"Cache-Control": "no-store"})


class IdentityRoutes:
    """Mixed into the gateway service (which provides ``self.rpc`` and ``self.access``).

    Routes that revoke sessions tell this gateway's revocation view at once, so
    the very next request with such a token is refused here even before the
    ``identity.session_revoked.v1`` event has come round through the stream.
    """

    # -- authentication ------------------------------------------------------------

    @route("POST", "/v1/auth/login", personal_data=True, body=LoginSchema, response=TokenPairSchema,
           errors=(401, 403, 429, 503), tags=AUTH, summary="Log in with e-mail and password")
    def login(self, request: GatewayRequest, body: dict) -> Reply:
        return _tokens(self.rpc.identity.login(body["email"], body["password"]))

    @route("POST", "/v1/auth/refresh", personal_data=False, body=RefreshSchema, response=TokenPairSchema,
           errors=(401, 503), tags=AUTH, summary="Swap a refresh token for a new pair (the old one is spent)")
    def refresh(self, request: GatewayRequest, body: dict) -> Reply:
        return _tokens(self.rpc.identity.refresh(body["refresh_token"]))

    @route("POST", "/v1/auth/logout", personal_data=False, status=204, auth="required", permission="sessions.delete",
           errors=(503,), tags=AUTH, summary="End the current session")
    def logout(self, request: GatewayRequest) -> None:
        self.rpc.identity.logout(request.principal.session_id)
        self.access.revoked_here([request.principal.session_id])

    @route("GET", "/v1/auth/sessions", personal_data=False, response=SessionListSchema, auth="required",
           permission="sessions.read", errors=(503,), tags=AUTH, summary="List one's own active sessions")
    def list_sessions(self, request: GatewayRequest) -> dict:
        return self.rpc.identity.list_sessions(request.principal.session_id)

    @route("DELETE", "/v1/auth/sessions/<uuid:session_id>", personal_data=False, status=204, auth="required",
           permission="sessions.delete", errors=(404, 503), tags=AUTH, summary="End one of one's own sessions")
    def delete_session(self, request: GatewayRequest, session_id) -> None:
        self.rpc.identity.delete_session(str(session_id))
        self.access.revoked_here([str(session_id)])

    @route("POST", "/v1/auth/password", personal_data=True, body=PasswordChangeSchema, response=PasswordChangedSchema,
           auth="required", permission="password.change", errors=(429, 503), tags=AUTH, keyed=False,
           summary="Change one's password (every other session ends)")
    def change_password(self, request: GatewayRequest, body: dict) -> dict:
        answer = self.rpc.identity.change_password(body["current_password"], body["new_password"],
                                                   request.principal.session_id)
        self.access.revoked_here(answer.get("revoked_session_ids"))
        return answer

    @route("POST", "/v1/auth/password-reset", personal_data=True, body=PasswordResetRequestSchema,
           response=AcceptedSchema, status=202, errors=(503,), tags=AUTH,
           summary="Ask for a password-reset e-mail (always accepted, whether or not the e-mail is known)")
    def request_password_reset(self, request: GatewayRequest, body: dict) -> dict:
        self.rpc.identity.request_password_reset(body["email"])
        return {"status": "accepted"}

    @route("POST", "/v1/auth/password-reset/confirm", personal_data=True, body=PasswordResetConfirmSchema, status=204,
           errors=(400, 503), tags=AUTH, summary="Set a new password with a reset token (single use, 1 hour)")
    def confirm_password_reset(self, request: GatewayRequest, body: dict) -> None:
        answer = self.rpc.identity.confirm_password_reset(body["token"], body["new_password"])
        self.access.revoked_here((answer or {}).get("revoked_session_ids"))

    # -- own profile ------------------------------------------------------------------

    @route("GET", "/v1/me", personal_data=True, response=MeSchema, auth="required", permission="profile.read",
           errors=(503,), tags=PEOPLE, summary="One's own profile (and the privacy-policy version to accept, if any)")
    def me(self, request: GatewayRequest) -> dict:
        return self.me_with_policy()  # identity.me + privacy.policy_status (PrivacyConsentRoutes)

    @route("PATCH", "/v1/me", personal_data=True, body=MePatchSchema, response=UserSchema, auth="required",
           permission="profile.update", errors=(409, 429, 503), tags=PEOPLE,
           summary="Edit one's own profile (fields the role allows are applied; the others are filed as a "
                   "correction request: 202 {id, fields, status, applied})")
    def update_me(self, request: GatewayRequest, body: dict) -> dict | Reply:
        return self.update_me_or_file(body)  # PrivacyConsentRoutes

    # -- staff users ------------------------------------------------------------------

    @route("POST", "/v1/users", personal_data=True, body=UserCreateSchema, response=UserSchema, status=201,
           auth="required", permission="users.create", errors=(409, 503), tags=PEOPLE, summary="Create a staff user")
    def create_user(self, request: GatewayRequest, body: dict) -> Reply:
        user = self.rpc.identity.create_user(body)
        return Reply(user, headers={"Location": f"/v1/users/{user['id']}"})

    @route("GET", "/v1/users", personal_data=True, query=PageQuerySchema, response=UserPageSchema, auth="required",
           permission="users.list", errors=(503,), tags=PEOPLE, summary="List staff users (cursor pagination)")
    def list_users(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.identity.list_users(query["limit"], query.get("cursor"))

    @route("GET", "/v1/users/<uuid:user_id>", personal_data=True, response=UserSchema, auth="required",
           permission="users.read", errors=(404, 503), tags=PEOPLE, summary="A staff user")
    def get_user(self, request: GatewayRequest, user_id) -> dict:
        return self.rpc.identity.get_user(str(user_id))

    @route("PATCH", "/v1/users/<uuid:user_id>", personal_data=True, body=UserPatchSchema, response=UserSchema,
           auth="required", permission="users.update", errors=(404, 409, 429, 503), tags=PEOPLE,
           summary="Edit a staff user, including the role (a role change ends the user's sessions; never one's "
                   "own role; the dpo role only by a dpo)")
    def update_user(self, request: GatewayRequest, user_id, body: dict) -> dict:
        answer = self.rpc.identity.update_user(str(user_id), body)
        self.access.revoked_here(answer.get("revoked_session_ids"))
        return answer["user"]

    @route("POST", "/v1/users/<uuid:user_id>/deactivate", personal_data=True, response=UserStatusChangeSchema,
           auth="required", permission="users.deactivate", errors=(404, 409, 503), tags=PEOPLE,
           summary="Deactivate a staff user (every session ends at once)")
    def deactivate_user(self, request: GatewayRequest, user_id) -> dict:
        answer = self.rpc.identity.deactivate_user(str(user_id))
        self.access.revoked_here(answer.get("revoked_session_ids"))
        return answer

    @route("PUT", "/v1/users/<uuid:user_id>/photo", personal_data=True, body=RawBody(PHOTO_TYPES, MAX_PHOTO_BYTES),
           response=PhotoSchema, auth="required", permission="profile.update", errors=(404, 409, 503), tags=PEOPLE,
           summary="Upload a profile photo (JPEG, PNG or WebP, ≤ 2 MiB; metadata stripped). One's own needs "
                   "profile.update and the role's self-editable 'photo'; another user's needs users.update")
    def put_photo(self, request: GatewayRequest, user_id, body: bytes) -> dict:
        return self.rpc.identity.set_photo(str(user_id), base64.b64encode(body).decode("ascii"))

    @route("GET", "/v1/users/<uuid:user_id>/photo", personal_data=True, response=BinaryResponse(PHOTO_TYPES),
           auth="required", permission="profile.read", errors=(404, 503), tags=PEOPLE,
           summary="A profile photo (one's own needs profile.read; another user's needs users.read)")
    def get_photo(self, request: GatewayRequest, user_id) -> Response:
        photo = self.rpc.identity.get_photo(str(user_id))
        return Response(base64.b64decode(photo["content_b64"]), status=200, content_type=photo["content_type"],
                        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})

    # -- customers --------------------------------------------------------------------

    @route("POST", "/v1/customers", personal_data=True, body=CustomerCreateSchema, response=CustomerSchema, status=201,
           auth="required", permission="customers.create", errors=(409, 503), tags=CUSTOMERS,
           summary="Create a customer (an e-mail or a phone is required; duplicates refused)")
    def create_customer(self, request: GatewayRequest, body: dict) -> Reply:
        customer = self.rpc.identity.create_customer(body)
        return Reply(customer, headers={"Location": f"/v1/customers/{customer['id']}"})

    @route("GET", "/v1/customers", personal_data=True, query=PageQuerySchema, response=CustomerPageSchema,
           auth="required", permission="customers.list", errors=(503,), tags=CUSTOMERS,
           summary="List customers (cursor pagination; to find one by e-mail or phone: POST /v1/customers/search)")
    def list_customers(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.identity.list_customers(query["limit"], query.get("cursor"))

    @route("POST", "/v1/customers/search", personal_data=True, body=CustomerSearchSchema, response=CustomerPageSchema,
           auth="required", permission="customers.list", errors=(503,), tags=CUSTOMERS, keyed=False,
           summary="Find customers by exact e-mail and/or phone (in the body, never in a URL that proxies log; "
                   "cursor pagination)")
    def search_customers(self, request: GatewayRequest, body: dict) -> dict:
        return self.rpc.identity.search_customers(body)

    @route("GET", "/v1/customers/<uuid:customer_id>", personal_data=True, response=CustomerSchema, auth="required",
           permission="customers.read", errors=(404, 503), tags=CUSTOMERS, summary="A customer")
    def get_customer(self, request: GatewayRequest, customer_id) -> dict:
        return self.rpc.identity.get_customer(str(customer_id))

    @route("PATCH", "/v1/customers/<uuid:customer_id>", personal_data=True, body=CustomerPatchSchema,
           response=CustomerSchema, auth="required", permission="customers.update", errors=(404, 409, 503),
           tags=CUSTOMERS, summary="Edit a customer")
    def update_customer(self, request: GatewayRequest, customer_id, body: dict) -> dict:
        return self.rpc.identity.update_customer(str(customer_id), body)

    # -- roles and the data map ------------------------------------------------------------

    @route("GET", "/v1/roles", personal_data=False, response=RoleListSchema, auth="required", permission="roles.read",
           errors=(503,), tags=ROLES, summary="Roles, their permissions and self-editable fields")
    def list_roles(self, request: GatewayRequest) -> dict:
        return self.rpc.identity.list_roles()

    @route("PUT", "/v1/roles/<any(admin,supervisor,attendant,dpo):name>", personal_data=False, body=RoleUpdateSchema,
           response=RoleSchema, auth="required", permission="roles.update", errors=(404, 503), tags=ROLES,
           summary="Change a role's permissions and self-editable fields (never the role one holds: 403; audit.read "
                   "only for a compliance role: 422)")
    def update_role(self, request: GatewayRequest, name: str, body: dict) -> dict:
        return self.rpc.identity.update_role(name, body["permissions"], body["self_editable_fields"])

    @route("GET", "/v1/data-map", personal_data=False, response=DataMapSchema, auth="required",
           permission="datamap.read", errors=(503,), tags=ROLES,
           summary="The personal-data map: every personal field and its category (R1.1)")
    def data_map(self, request: GatewayRequest) -> dict:
        return self.rpc.identity.data_map()
