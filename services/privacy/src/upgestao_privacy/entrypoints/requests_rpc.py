"""RPC methods of privacy's requests area (mixed into the service):
data-subject requests, the contact channel and the notices privacy's e-mails need.

Thin: argument shapes, then :class:`~upgestao_privacy.service_layer.requests.RequestCases`. The gateway's
``/v1/privacy/requests`` and ``/v1/privacy/contact`` routes call them; ``notice`` answers the notifier's
broker user only.
"""

from __future__ import annotations

from typing import Any

from upgestao_kernel.errors import ProblemFactory, invalid_field, problem
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.nameko_ext.rpc import register_problems

from ..domain.contact import CodeExhausted, CodeExpired, CodeUsed
from ..domain.requests import InvalidTransition, InvalidValue
from ..service_layer.requests import RequestCases, load_request_settings

PROBLEMS: dict[type[Exception], ProblemFactory] = {
    InvalidValue: lambda exc: invalid_field(exc.field, exc.message),
    InvalidTransition: problem("conflict", 409, lambda exc: f"A request {exc.state} cannot be {exc.action}."),
    CodeExpired: problem("code-expired", 410, "The code has expired: file the request again."),
    CodeExhausted: problem("code-exhausted", 403, "Too many wrong codes: this code is dead; file the request again."),
    CodeUsed: problem("code-used", 409, "The code was already used: the request is verified."),
}
register_problems(PROBLEMS)

_SETTINGS = None


def _settings():
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = load_request_settings()
    return _SETTINGS


class RequestsRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""

    def _request_cases(self) -> RequestCases:
        return RequestCases(self.db.unit_of_work, self.roles.permissions_of, identity=self.identity,
                            settings=_settings())

    # -- a signed-in person's requests, the DPO's queue
    @rpc
    def file_request(self, type: Any) -> dict:
        return self._request_cases().file(type)

    @rpc
    def list_requests(self, filters: Any = None, limit: Any = 50, cursor: Any = None) -> dict:
        return self._request_cases().list(filters if isinstance(filters, dict) else {}, limit, cursor)

    @rpc
    def overdue_requests(self, limit: Any = 50, cursor: Any = None) -> dict:
        return self._request_cases().overdue(limit, cursor)

    @rpc
    def get_request(self, request_id: Any) -> dict:
        return self._request_cases().get(request_id)

    @rpc
    def start_request(self, request_id: Any) -> dict:
        return self._request_cases().start(request_id)

    @rpc
    def complete_request(self, request_id: Any, note: Any = None) -> dict:
        return self._request_cases().complete(request_id, note)

    @rpc
    def deny_request(self, request_id: Any, reason: Any = None) -> dict:
        return self._request_cases().deny(request_id, reason)

    @rpc
    def cancel_request(self, request_id: Any, reason: Any = None) -> dict:
        return self._request_cases().cancel(request_id, reason)

    @rpc
    def extend_request(self, request_id: Any, due_at: Any = None, reason: Any = None) -> dict:
        return self._request_cases().extend(request_id, due_at, reason)

    # -- the contact channel (nobody signed in)
    @rpc(sensitive_arguments=("email", "message"))
    def contact_request(self, email: Any, type: Any, message: Any = None) -> dict:
        return self._request_cases().contact(email, type, message)

    @rpc(sensitive_arguments=("code",))
    def verify_contact_request(self, request_id: Any, code: Any) -> dict:
        return self._request_cases().verify_contact(request_id, code)

    # -- notices (for the notifier only)
    @rpc(keep_reply=False)  # a reply holding a code or an address is never stored
    def notice(self, notice_id: str, recipient_id: str | None = None, cursor: str | None = None) -> dict:
        """What the notifier must send for the notice event ``notice_id`` announced (403 to anyone else), in
        the notice protocol; dispatched on the event's type (``service_layer/notices.py``)."""
        return self._request_cases().notice(notice_id, recipient_id, cursor)
