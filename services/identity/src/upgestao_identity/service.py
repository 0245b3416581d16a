"""nameko entrypoints of the identity service (thin: validation of shapes, then the use cases).

Every method runs in the caller's request context (request id, actor,
source address) carried by nameko's context data; personal data goes in and
out only through the unit of work (audited by construction).
"""

from __future__ import annotations

import base64
import binascii
import functools

from upgestao_kernel.errors import ServiceError, field_error, validation_error
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.limits import PHOTO_MAX_BYTES
from upgestao_kernel.nameko_ext import Database, HealthRpc, Metrics, reliable_handler, rpc
from upgestao_kernel.unit_of_work import UnitOfWork

from .adapters.hashing_pool import HasherBusy
from .adapters.projections import projections
from .adapters.sql_repositories import with_sql_repositories
from .domain.datamap import data_map_document
from .entrypoints.api_keys_rpc import ApiKeysRpc
from .entrypoints.dependencies import Identity
from .entrypoints.errors import PROBLEMS  # noqa: F401  (registers identity's refusals with @rpc's edge table)
from .entrypoints.sharing_rpc import SharingRpc
from .service_layer import customers, directory, notices, roles, sessions, subjects, users
from .service_layer.auth import Auth, checked_password, hashing_busy

MAX_PHOTO_BYTES = PHOTO_MAX_BYTES


def hashing(method):
    """A method that checks or hashes a password: a full bcrypt queue is a 503, not a wait past the deadline."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except HasherBusy:
            raise hashing_busy() from None

    return wrapper


class IdentityService(ApiKeysRpc, SharingRpc, HealthRpc):
    name = "identity"

    db = Database(projections=projections, personal_data=True)
    metrics = Metrics()  # /metrics on <SERVICE>_METRICS_ADDRESS, RPC timings, outbox depth and lag
    identity = Identity()

    def not_ready_reason(self) -> str | None:
        return self.identity.starting

    def _auth(self) -> Auth:
        c = self.identity
        return Auth(self._uow, c.hasher, c.issuer, c.settings, c.now)

    def _uow(self) -> UnitOfWork:
        """A unit of work of this request (keyed, when the request is), with identity's repositories."""
        return with_sql_repositories(self.db.unit_of_work())

    # -- keys and permissions (for the gateway) ---------------------------------

    @rpc
    def public_keys(self) -> dict:
        """JWKS of the access-token signing keys."""
        return self.identity.issuer.jwks()

    @rpc
    def role_permissions(self) -> dict:
        with self._uow() as uow:
            return roles.permissions_by_role(uow)

    @rpc
    def data_map(self) -> dict:
        return {"items": data_map_document()}

    # -- authentication ----------------------------------------------------------

    @rpc(sensitive_arguments=("password",), keep_reply=False)  # a reply of tokens is never stored
    @hashing
    def login(self, email, password) -> dict:
        return self._auth().login(email, password)

    @rpc(sensitive_arguments=("refresh_token",), keep_reply=False)
    def refresh(self, refresh_token) -> dict:
        return self._auth().refresh(refresh_token)

    @rpc
    def logout(self, session_id: str | None) -> None:
        self._auth().logout(session_id)

    @rpc
    def list_sessions(self, current_session_id: str | None = None) -> dict:
        with self._uow() as uow:
            return sessions.list_own(uow, current_session_id, self.identity.now())

    @rpc
    def delete_session(self, session_id: str) -> None:
        with self._uow() as uow:
            sessions.delete_own(uow, session_id)

    @rpc(sensitive_arguments=("current_password", "new_password"), keep_reply=False)
    @hashing
    def change_password(self, current_password, new_password, current_session_id: str | None = None) -> dict:
        return self._auth().change_password(current_password, new_password, current_session_id)

    @rpc
    def request_password_reset(self, email) -> None:
        self._auth().request_reset(email)

    @rpc(sensitive_arguments=("token", "new_password"), keep_reply=False)
    @hashing
    def confirm_password_reset(self, token, new_password) -> dict:
        return self._auth().confirm_reset(token, new_password)

    # -- staff users --------------------------------------------------------------

    @rpc(sensitive_arguments=("data.password",))
    @hashing
    def create_user(self, data: dict) -> dict:
        data = _mapping(data)
        password = data.pop("password", None)
        email = data.get("email") if isinstance(data.get("email"), str) else None
        c = self.identity
        with self._uow() as uow:  # authorise, then validate everything before paying for a hash
            users.require(uow, "users.create", action="create", resource_type="user")
            if password in (None, ""):
                raise validation_error([field_error("password", "is required")])
            checked_password(password, email)
            users.clean_fields({k: v for k, v in data.items() if k not in users.NOT_PROFILE_FIELDS},
                               allowed=users.USER_PROFILE_FIELDS, required=users.REQUIRED_USER,
                               today=c.today(), minimum_age=c.settings.minimum_age)
            if data.get("locale") is not None:
                users.checked_locale(data["locale"])
        password_hash = c.hasher.hash(password)
        with self._uow() as uow:
            created = users.register(uow, data, password_hash=password_hash, today=c.today(),
                                     minimum_age=c.settings.minimum_age)
            return users.get_as_creator(uow, created["id"])

    @rpc
    def get_user(self, user_id: str) -> dict:
        with self._uow() as uow:
            return users.get(uow, user_id)

    @rpc
    def me(self) -> dict:
        with self._uow() as uow:
            return users.get(uow, users.require_actor(uow))

    @rpc
    def list_users(self, limit: int = 50, cursor: str | None = None) -> dict:
        with self._uow() as uow:
            return users.list_page(uow, limit, cursor)

    @rpc(sensitive_arguments=("changes.current_password",))
    @hashing
    def update_me(self, changes: dict) -> dict:
        c = self.identity
        changes = self._proven(_mapping(changes), own=True)
        with self._uow() as uow:
            return users.update_own(uow, changes, today=c.today(), minimum_age=c.settings.minimum_age)

    @rpc(sensitive_arguments=("changes.current_password",))
    @hashing
    def update_user(self, user_id: str, changes: dict) -> dict:
        c = self.identity
        with self._uow() as uow:
            own = uow.context.actor_id == user_id
        changes = self._proven(_mapping(changes), own=own)
        with self._uow() as uow:
            return users.update(uow, user_id, changes, today=c.today(), minimum_age=c.settings.minimum_age)

    def _proven(self, changes: dict, *, own: bool) -> dict:
        """One's own e-mail changes only with the current password (checked, and charged to the login
        budgets, before the change's unit of work opens); ``current_password`` is no profile field."""
        current = changes.pop("current_password", None)
        if own and "email" in changes:
            if not isinstance(current, str) or not current:
                raise validation_error([field_error("current_password", "is required to change one's e-mail")])
            self._auth().check_current_password(current, purpose="e-mail change")
        return changes

    @rpc
    def deactivate_user(self, user_id: str) -> dict:
        with self._uow() as uow:
            return users.deactivate(uow, user_id)

    @rpc
    def set_photo(self, user_id: str, content_b64: str) -> dict:
        try:
            content = base64.b64decode(content_b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise validation_error([field_error("photo", "is not base64")]) from None
        if len(content) > MAX_PHOTO_BYTES:
            raise ServiceError("payload-too-large", f"A photo must not exceed {MAX_PHOTO_BYTES} bytes.", 413)
        # a slot first (a full pool is a 503 before anything is claimed or audited), then authorised before
        # any pixel is looked at, then decoded off the hub outside any transaction
        with users.photo_slot(self.identity.photos) as run:
            with self._uow() as uow:
                users.may_set_photo(uow, user_id)
            photo = users.sanitized_photo(content, run)
        with self._uow() as uow:
            return users.set_photo(uow, user_id, photo)

    @rpc
    def get_photo(self, user_id: str) -> dict:
        with self._uow() as uow:
            return users.get_photo(uow, user_id)

    # -- customers ------------------------------------------------------------------

    @rpc
    def create_customer(self, data: dict) -> dict:
        with self._uow() as uow:
            return customers.register(uow, _mapping(data), today=self.identity.today())

    @rpc
    def get_customer(self, customer_id: str) -> dict:
        with self._uow() as uow:
            return customers.get(uow, customer_id)

    @rpc
    def list_customers(self, limit: int = 50, cursor: str | None = None) -> dict:
        with self._uow() as uow:
            return customers.search(uow, email=None, phone=None, limit=limit, cursor=cursor)

    @rpc(sensitive_arguments=("criteria.email", "criteria.phone"))
    def search_customers(self, criteria: dict) -> dict:
        """Customers by exact e-mail and/or phone (``POST /v1/customers/search``: never in a URL)."""
        criteria = _mapping(criteria)
        with self._uow() as uow:
            return customers.search(uow, email=criteria.get("email"), phone=criteria.get("phone"),
                                    limit=criteria.get("limit", 50), cursor=criteria.get("cursor"))

    # -- notices (for the notifier only) ---------------------------------------------------

    @rpc(keep_reply=False)  # a reply holding a reset token is never stored
    def notice(self, notice_id: str, recipient_id: str | None = None, cursor: str | None = None) -> dict:
        """What the notifier must send for the notice event ``notice_id`` announced (403 to anyone else), in
        the notice protocol: to every recipient, or to ``recipient_id`` only; ``cursor`` pages a campaign."""
        with self._uow() as uow:
            return notices.fetch(uow, notice_id, self.identity.now(), recipient_id, cursor)

    @rpc
    def update_customer(self, customer_id: str, changes: dict) -> dict:
        with self._uow() as uow:
            return customers.update(uow, customer_id, _mapping(changes), today=self.identity.today())

    # -- the directory (for messaging only) ---------------------------------------------

    @rpc
    def directory(self, ids: list) -> dict:
        """Which of ``ids`` are staff users (role, active) or customers: ids only, no personal value."""
        with self._uow() as uow:
            return directory.lookup(uow, ids)

    # -- data subjects (for privacy only: LGPD art. 18) ------------------------------------

    @rpc(keep_reply=False)  # a reply holding a person's whole profile is never stored
    def export_subject(self, subject_id: str) -> dict:
        """Everything identity holds about ``subject_id`` (audited, purpose ``data subject access``)."""
        with self._uow() as uow:
            return subjects.export(uow, subject_id)

    @rpc
    def erase_subject(self, subject_id: str, mode: str = "deletion", request_id: str | None = None) -> dict:
        """Deletion, anonymisation or blocking of ``subject_id``, confirmed by ``identity.subject_erased.v1``."""
        with self._uow() as uow:
            return subjects.erase(uow, subject_id, mode, request_id)

    @rpc
    def unblock_subject(self, subject_id: str, request_id: str | None = None) -> dict:
        """The DPO (``privacy.review``, through privacy) lifts a blocking: ``identity.subject_unblocked.v1``."""
        with self._uow() as uow:
            return subjects.unblock(uow, subject_id, request_id)

    @reliable_handler("privacy", ["privacy.erasure_requested.v1"])
    def on_erasure_requested(self, event: EventEnvelope) -> None:
        """Privacy asks every service to erase a data subject (request_id, subject_id, mode): erased here, then
        confirmed; a redelivered event is handled once, a repeated request confirmed again."""
        with self.db.handling(event) as uow:
            if uow is not None:
                subjects.erase_requested(with_sql_repositories(uow), event.data)

    @rpc(keep_reply=False)
    def contacts(self, subject_ids: list) -> dict:
        """Address, name and language of each of ``subject_ids`` identity can write to (purpose notification)."""
        with self._uow() as uow:
            return subjects.contacts(uow, subject_ids)

    @rpc(sensitive_arguments=("email",))
    def find_subject(self, email: str) -> dict:
        """Whose ``email`` is: ``{"subject_id", "kind"}`` (``user``, ``customer``; None: nobody's)."""
        with self._uow() as uow:
            return subjects.find_subject(uow, email)

    @rpc(sensitive_arguments=("changes",))
    def apply_correction(self, subject_id: str, changes: dict, correction_id: str) -> dict:
        """A correction the calling reviewer (``privacy.review``) approved: the changed field names."""
        c = self.identity
        with self._uow() as uow:
            return subjects.apply_correction(uow, subject_id, changes, correction_id, today=c.today(),
                                             minimum_age=c.settings.minimum_age)

    @rpc
    def subject_ids(self, criterion: dict, limit: int = subjects.MAX_IDS_PAGE, cursor: str | None = None) -> dict:
        """A page of the ids a breach criterion names (``every_user``, ``every_customer``)."""
        with self._uow() as uow:
            return subjects.subject_ids(uow, criterion, limit, cursor)

    # -- roles ------------------------------------------------------------------------

    @rpc
    def list_roles(self) -> dict:
        with self._uow() as uow:
            return roles.list_roles(uow)

    @rpc
    def update_role(self, name: str, permissions: list, self_editable_fields: list) -> dict:
        with self._uow() as uow:
            return roles.update_role(uow, name, list(permissions), list(self_editable_fields))


def _mapping(value) -> dict:
    if not isinstance(value, dict):
        raise validation_error([field_error("_schema", "must be an object")])
    return dict(value)
