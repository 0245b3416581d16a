"""The gateway's routes for privacy's access bundles' downloads and erasure progress.

* ``GET /v1/privacy/exports/{token}`` -- the bundle of an access or portability request (LGPD art. 18 II, V),
  as one JSON document (``schema_version`` 1.0, schema: ``services/privacy/docs/subject_bundle.schema.json``).
  **No session**: the link announced by e-mail is the credential (a customer has no session to sign in with;
  a former user neither), so it is single use (a second use answers 410), expires (7 days by default,
  ``PRIVACY_EXPORT_LINK_TTL_S``; then 410), is 256 random bits (an unknown token: 404) of which privacy keeps
  only the hash, and its use is audited (``export``, and a ``read`` per part). The body is streamed part by
  part (128 Ki characters each), never held whole. The token travels in the path: the access log writes the
  route's template, not the path.
* ``GET /v1/privacy/requests/{id}/erasure`` -- an erasure request's progress: which services confirmed, which
  are still pending, the third parties told; for the person (``privacy.self``) or the DPO (``privacy.review``).
* ``POST /v1/privacy/requests/{id}/unblock`` -- the DPO lifts a completed blocking (identity unblocks the person).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..http.bodies import StreamResponse
from ..http.problems import Problem
from ..http.request import GatewayRequest
from ..http.routing import route
from ..http.streaming import Stream
from .schemas import ErasureProgressSchema

PRIVACY = ("privacy",)
JSON = "application/json"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
BUNDLE_DESCRIPTION = (
    "The person's data as one JSON document (UTF-8): {schema_version, format, request_id, subject_id, type, "
    "generated_at, expires_at, sections: {identity, messaging, notifications, privacy, audit}} -- the JSON Schema "
    "is services/privacy/docs/subject_bundle.schema.json. Streamed; a transfer that fails midway is cut without "
    "its final chunk (and the link is spent: file a new request)."
)


class PrivacyExportRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    @route("GET", "/v1/privacy/exports/<token>", personal_data=True, response=StreamResponse(JSON, BUNDLE_DESCRIPTION),
           auth="none", errors=(404, 410, 503), tags=PRIVACY,
           summary="Download an access or portability bundle (single-use, expiring link; no session)",
           description="The link of the e-mail that announced the bundle. It works once: a second use answers 410, "
                       "as does an expired link; an unknown one 404. The download is audited.")
    def download_privacy_export(self, request: GatewayRequest, token: str) -> Stream:
        if not TOKEN.match(token):
            raise Problem("not-found", "No such export.")
        started = self.rpc.privacy.export_download(token)
        parts, lease = int(started["parts"]), started["lease"]
        filename = re.sub(r"[^A-Za-z0-9_.-]", "", str(started.get("filename") or "dados.json"))
        return Stream(self._bundle_parts(token, lease, parts), headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        })

    def _bundle_parts(self, token: str, lease: str, parts: int) -> Iterator[str]:
        for part in range(parts):
            yield self.rpc.privacy.export_part(token, lease, part)

    @route("GET", "/v1/privacy/requests/<uuid:request_id>/erasure", personal_data=False,
           response=ErasureProgressSchema, auth="required", permission="privacy.self",
           alternatives=("privacy.review",), errors=(403, 404, 503), tags=PRIVACY,
           summary="An erasure request's progress across services (pending and confirmed)",
           description="For the person the request is about, or the DPO. `participants` maps each service to "
                       "`pending` or `confirmed`; `recipients` are the third parties told (R4.3).")
    def privacy_erasure_progress(self, request: GatewayRequest, request_id) -> dict:
        return self.rpc.privacy.erasure_progress(str(request_id))

    @route("POST", "/v1/privacy/requests/<uuid:request_id>/unblock", personal_data=True,
           response=ErasureProgressSchema, auth="required", permission="privacy.review", errors=(404, 409, 503),
           tags=PRIVACY, summary="Lift a completed blocking (LGPD art. 18 IV): the person's data is processed again",
           description="The DPO only. Identity lifts the person's blocked status (audited there, `update` of "
                       "`status`); 409 when the request's erasure is not a completed blocking or was lifted.")
    def lift_privacy_blocking(self, request: GatewayRequest, request_id) -> dict:
        return self.rpc.privacy.lift_blocking(str(request_id))
