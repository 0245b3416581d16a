"""RPC methods of privacy's corrections area (mixed into the service):
correction requests, policy versions and acceptances, cookie consents.

Thin: each builds the area's dependencies and calls a use case (``service_layer/corrections.py``,
``policies.py``, ``consents.py``); the permission checks are there. The gateway is the usual caller (the
actor is the one of the verified token in the request's context); ``current_policy``, ``policy_versions``,
``policy_version`` and a visitor's ``put_consents``/``consents`` need no actor.
"""

from __future__ import annotations

from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.logging import get_logger
from upgestao_kernel.nameko_ext import reliable_handler, rpc

from ..service_layer import consents, corrections, policies
from ..service_layer.corrections import AreaDeps

log = get_logger(__name__)

REQUEST_STARTED = "privacy.request_started.v1"
CONSENT_REVOCATION = "consent_revocation"


class ConsentRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""

    def _area(self) -> AreaDeps:
        return AreaDeps(unit_of_work=self.db.unit_of_work, permissions_of=self.roles.permissions_of,
                        identity=self.identity)

    # -- corrections ---------------------------------------------------------------------------------

    @rpc(sensitive_arguments=("changes", "reason"))
    def file_correction(self, changes: dict, reason: str | None = None, source: str = "request") -> dict:
        """File a correction of one's own profile (``privacy.self``): ``{id, fields, status, ...}``."""
        return corrections.file(self._area(), changes, reason, source)

    @rpc
    def corrections(self, status: str | None = None, limit: int = 50, cursor: str | None = None) -> dict:
        """One's own corrections; every one's with ``privacy.review`` (newest first)."""
        return corrections.list_page(self._area(), status, limit, cursor)

    @rpc
    def correction(self, correction_id: str) -> dict:
        return corrections.get(self._area(), correction_id)

    @rpc
    def approve_correction(self, correction_id: str) -> dict:
        """``privacy.review``, never one's own: identity applies the change as the reviewer."""
        return corrections.approve(self._area(), correction_id)

    @rpc(sensitive_arguments=("reason",))
    def deny_correction(self, correction_id: str, reason: str | None = None) -> dict:
        return corrections.deny(self._area(), correction_id, reason)

    # -- policy versions -----------------------------------------------------------------------------

    @rpc
    def publish_policy(self, data: dict) -> dict:
        """``privacy.policies``: a new version, announced to every user by e-mail."""
        return policies.publish(self._area(), data)

    @rpc
    def current_policy(self) -> dict:
        return policies.current(self._area())

    @rpc
    def policy_versions(self) -> dict:
        return policies.versions(self._area())

    @rpc
    def policy_version(self, version: str) -> dict:
        return policies.version(self._area(), version)

    @rpc
    def policy_status(self) -> dict:
        """``{"current_version", "policy_acceptance_required": {"version"} | None}`` for the caller."""
        return policies.status(self._area())

    @rpc
    def accept_policy(self, version: str) -> dict:
        return policies.accept(self._area(), version)

    @rpc
    def policy_acceptances(self) -> dict:
        return policies.acceptances_of(self._area())

    # -- cookie consents -----------------------------------------------------------------------------

    @rpc(sensitive_arguments=("data.visitor_id",))
    def put_consents(self, data: dict) -> dict:
        """The signed-in user's choice, or an anonymous visitor's (``visitor_id``; issued when absent)."""
        return consents.choose(self._area(), data)

    @rpc(sensitive_arguments=("visitor_id",))
    def consents(self, visitor_id: str | None = None) -> dict:
        """The current choice and the full history, newest first (one's own, or the visitor's)."""
        return consents.history(self._area(), visitor_id)

    @reliable_handler("privacy", [REQUEST_STARTED])
    def on_consent_revocation_started(self, event: EventEnvelope) -> None:
        """A ``consent_revocation`` request went in progress: every optional consent of its subject is
        withdrawn, then the request is completed."""
        data = event.data
        if data.get("request_type", data.get("type")) != CONSENT_REVOCATION:
            return
        if not data.get("subject_id"):
            raise ValueError("privacy.request_started.v1 without a subject_id")  # parked: a request needs one
        from ..service_layer.requests import complete_request  # H3's

        with self.db.handling(event) as uow:
            if uow is None:
                return
            withdrawn = consents.revoke_for_request(uow, data["request_id"], data["subject_id"])
            complete_request(uow, data["request_id"], answer={"consents_withdrawn": withdrawn,
                                                              "consents_kept": ["essential"]})
            log.info("privacy.consent_revocation_done", request_id=data["request_id"], withdrawn=len(withdrawn))
