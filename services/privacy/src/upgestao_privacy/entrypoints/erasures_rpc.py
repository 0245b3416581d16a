"""RPC methods and event handlers of privacy's erasures area (mixed into the service):
erasure orchestration across services and access/portability bundles.

Handlers (reliable: retried, then parked; each event handled once, ``self.db.handling``):

* ``privacy.request_started.v1`` -> an erasure (deletion, anonymisation, blocking: ``privacy.erasure_requested.v1``
  to the participants) or a bundle (access, portability: gathered, stored sealed, the request completed with
  its single-use link). Other types are other areas'.
* ``identity.subject_erased.v1``, ``messaging.subject_erased.v1``, ``integrations.subject_erased.v1`` -> the
  participant's confirmation; the last one completes the request.

RPCs:

* ``erasure_progress(request_id)``: the request's subject or requester, or a holder of ``privacy.review``
  (anyone else: 404, as for a missing request, the attempt audited as denied).
* ``lift_blocking(request_id)``: ``privacy.review``; identity's ``unblock_subject`` with the DPO's token.
* ``export_download(token)``, ``export_part(token, lease, part)``: the gateway's broker user only (the route
  ``GET /v1/privacy/exports/{token}`` needs no session: the link is the credential); anyone else 403, audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from upgestao_kernel.errors import conflict, forbidden, not_found
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.logging import get_logger
from upgestao_kernel.nameko_ext import reliable_handler, rpc

from ..domain.erasures import NotBlocked
from ..service_layer import erasures as erasure_cases
from ..service_layer import exports as export_cases

log = get_logger(__name__)

GATEWAY = "gateway"
REVIEW = "privacy.review"
DELIVERIES_PAGE = 200


class ErasureRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""

    # -- request_started: erasures and bundles ----------------------------------------------------

    @reliable_handler("privacy", ["privacy.request_started.v1"])
    def erasure_on_request_started(self, event: EventEnvelope) -> None:
        data = dict(event.data)
        kind = data.get("type")
        if not (erasure_cases.is_erasure(kind) or export_cases.is_export(kind)):
            return  # another area's request type
        request_id = data.get("request_id") or event.stream_id.split("-", 1)[-1]
        subject_id = data.get("subject_id")
        if not isinstance(subject_id, str) or not subject_id:
            raise ValueError("privacy.request_started.v1 without a subject_id")  # parked: a request needs one
        # the audit summary is read BEFORE the handling unit of work opens: reading it inside opened a second
        # unit of work on the same database, which on SQLite waits for the write gate the first one holds (the
        # service hung on every access or erasure request under `make up`; PostgreSQL did not show it)
        summary = self._queries().subject_summary(subject_id)
        with self.db.handling(event) as uow:
            if uow is None:
                return
            if erasure_cases.is_erasure(kind):
                recipients = [e["recipient"] for e in summary.get("shared_with", []) if e.get("recipient")]
                erasure_cases.start_erasure(uow, request_id, subject_id, kind, erasure_cases.participants(),
                                            recipients)
            else:
                export_cases.prepare_export(uow, request_id, subject_id, kind, self._export_sources(summary),
                                            export_cases.ExportSettings.from_env())

    def _export_sources(self, audit_summary: dict) -> export_cases.ExportSources:
        return export_cases.ExportSources(
            identity=lambda sid: self.identity.export_subject(sid),
            messaging=lambda sid: self.messaging.export_subject(sid),
            deliveries=self._deliveries_to,
            audit_summary=lambda sid: audit_summary,
        )

    def _deliveries_to(self, subject_id: str) -> Iterator[dict]:
        cursor = None
        while True:
            page = self.notifier.deliveries({"recipient_id": subject_id}, DELIVERIES_PAGE, cursor)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- the participants' confirmations ----------------------------------------------------------

    def _confirmed(self, service: str, event: EventEnvelope) -> None:
        with self.db.handling(event) as uow:
            if uow is None:
                return
            outcome = erasure_cases.confirm_erasure(uow, service, dict(event.data),
                                                    event.event_id)
        log.info("privacy.erasure_confirmation", service=service, outcome=outcome)

    @reliable_handler("identity", ["identity.subject_erased.v1"])
    def erasure_confirmed_by_identity(self, event: EventEnvelope) -> None:
        self._confirmed("identity", event)

    @reliable_handler("messaging", ["messaging.subject_erased.v1"])
    def erasure_confirmed_by_messaging(self, event: EventEnvelope) -> None:
        self._confirmed("messaging", event)

    @reliable_handler("integrations", ["integrations.subject_erased.v1"])
    def erasure_confirmed_by_integrations(self, event: EventEnvelope) -> None:
        """Integrations told every integration that received the person's data (``subject.erased``, R4.3)."""
        self._confirmed("integrations", event)

    # -- progress ---------------------------------------------------------------------------------

    @rpc
    def erasure_progress(self, request_id: Any) -> dict:
        from ..service_layer import requests as request_cases

        with self.db.unit_of_work() as uow:
            rid = request_id if isinstance(request_id, str) and len(request_id) <= 64 else None
            request = request_cases.get_request(uow, rid) if rid else None
            ctx = uow.context
            own = request is not None and ctx.actor_id is not None and ctx.actor_id in (
                getattr(request, "subject_id", None), getattr(request, "requester_id", None))
            if request is None or not (own or REVIEW in self.roles.permissions_of(ctx.actor_role)):
                if request is not None:
                    # another person's request is answered as a missing one (as the requests area does)
                    uow.deny(action="read", resource_type="privacy_request", resource_id=rid,
                             subject_id=getattr(request, "subject_id", None), fields=("erasure",),
                             purpose="authorization")
                raise not_found("request")
            progress = erasure_cases.erasure_progress(uow, rid)
            if progress is None:
                raise not_found("erasure")
            uow.audit_access(action="read", resource_type="privacy_request", resource_id=rid,
                             subject_id=progress["subject_id"], fields=("erasure",), purpose="data subject request")
        return {"request_id": rid, **progress}

    @rpc
    def lift_blocking(self, request_id: Any) -> dict:
        """The DPO (``privacy.review``) lifts a completed blocking: identity unblocks the person (the DPO's token
        rides along: identity checks it again)."""
        with self.db.unit_of_work() as uow:
            rid = request_id if isinstance(request_id, str) and len(request_id) <= 64 else None
            if REVIEW not in self.roles.permissions_of(uow.context.actor_role) or not uow.context.actor_id:
                uow.deny(action="update", resource_type="privacy_request", resource_id=rid, subject_id=None,
                         fields=("blocking",), purpose="authorization")
                raise forbidden(f"Your role does not grant {REVIEW}.", permission=REVIEW)
            try:
                progress = erasure_cases.lift_blocking(uow, rid or "", self.identity.unblock_subject)
            except LookupError:
                raise not_found("erasure") from None
            except NotBlocked:
                raise conflict("Only a completed blocking, not lifted yet, can be lifted.") from None
            uow.audit_access(action="update", resource_type="privacy_request", resource_id=rid,
                             subject_id=progress["subject_id"], fields=("blocking",), purpose="blocking lifted")
        return {"request_id": rid, **progress}

    # -- the bundle's download (the gateway only) -------------------------------------------------

    @staticmethod
    def _only_gateway(uow: Any, action: str) -> None:
        if uow.context.caller_service != GATEWAY:
            uow.deny(action=action, resource_type=export_cases.RESOURCE, resource_id=None, subject_id=None,
                     fields=(), purpose="authorization")
            raise forbidden("Only the gateway asks this.")

    @rpc(sensitive_arguments=("token",), keep_reply=False)  # the reply holds the lease: never stored
    def export_download(self, token: Any) -> dict:
        with self.db.unit_of_work() as uow:
            self._only_gateway(uow, "export")
            return export_cases.start_download(uow, token)

    @rpc(sensitive_arguments=("token", "lease"), keep_reply=False)  # a part is personal data: never stored
    def export_part(self, token: Any, lease: Any, part: Any) -> str:
        with self.db.unit_of_work() as uow:
            self._only_gateway(uow, "read")
            return export_cases.read_part(uow, token, lease, part)
