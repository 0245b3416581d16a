"""Access and portability bundles (LGPD art. 18 II and V; R4.2, R9.1): gathered on ``privacy.request_started.v1``
of type access or portability, stored sealed, delivered once behind an expiring link.

:func:`prepare_export` (in the event handler's unit of work) gathers, one section at a time, identity's and
messaging's ``export_subject``, the notifier's deliveries to the person, privacy's own records of them and the
audit summary (who accessed their data, why, and with whom it was shared, each third party with its
privacy-policy address); each section is written into the bundle's JSON text, cut into parts of
:data:`~..domain.exports.PART_CHARS` characters, each sealed under the person (audited) and stored, before
the next section is asked for. Then a random token is made, its hash kept as the link's stream, and the
request completed with the download URL (H3's ``complete_request``): the token exists only there (the
e-mail that announces the bundle).

Download (the gateway's ``GET /v1/privacy/exports/{token}``, no session: a customer has none; the link is the
credential, single use, 7 days by default): :func:`start_download` marks the link used and hands a lease
(audited as ``export``); :func:`read_part` opens one part for that lease (audited as ``read``); the last part
deletes the stored parts. A second use answers 410, an unknown token 404.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from upgestao_kernel.config import ConfigError, int_setting
from upgestao_kernel.errors import ServiceError, invalid_field, not_found
from upgestao_kernel.unit_of_work import is_erased

from ..adapters.erasure_tables import SUBJECT_KEYS, export_parts_of, subject_events
from ..domain.exports import (
    EXPORT_TYPES,
    LINK_TTL,
    SCHEMA_VERSION,
    BundleWriter,
    Export,
    ExportLink,
    LinkRefused,
    field_names,
    looks_like_secret,
    new_secret,
    secret_hash,
)

PURPOSE = "data subject access"
RESOURCE = "subject_bundle"
FIELD = "bundle_part"
LINK_TTL_VAR = "PRIVACY_EXPORT_LINK_TTL_S"
BASE_URL_VAR = "PRIVACY_PUBLIC_BASE_URL"
FALLBACK_BASE_URL_VAR = "NOTIFIER_PUBLIC_URL"  # the same public address, which the platform sets for every process
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
POLICIES_VAR = "PRIVACY_THIRD_PARTY_POLICIES"
DOWNLOAD_PATH = "/v1/privacy/exports/"


@dataclass(frozen=True)
class ExportSettings:
    link_ttl: timedelta = LINK_TTL
    # the gateway's public address (PRIVACY_PUBLIC_BASE_URL, else NOTIFIER_PUBLIC_URL): the link is
    # base_url + /v1/privacy/exports/<token>
    base_url: str = DEFAULT_BASE_URL
    # each third party's privacy-policy address, by the recipient's name in the audit log's share records
    third_party_policies: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExportSettings:
        """Raises ``ConfigError`` naming the variable (``check-config`` and the service's start call it)."""
        env = os.environ if environ is None else environ
        ttl = int_setting(env, LINK_TTL_VAR, int(LINK_TTL.total_seconds()), 60, 30 * 86400)
        try:
            policies = json.loads(env.get(POLICIES_VAR) or "{}")
        except ValueError as exc:
            raise ConfigError(POLICIES_VAR, f"not JSON: {exc}") from None
        if not isinstance(policies, dict):
            raise ConfigError(POLICIES_VAR, "a JSON object of recipient -> privacy-policy URL")
        base_url = (env.get(BASE_URL_VAR) or env.get(FALLBACK_BASE_URL_VAR) or DEFAULT_BASE_URL).strip().rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(BASE_URL_VAR, "an http(s) URL, the gateway's public address")
        return cls(link_ttl=timedelta(seconds=ttl), base_url=base_url,
                   third_party_policies={str(k): str(v) for k, v in policies.items()})


@dataclass
class ExportSources:
    """Where the sections come from (the service's RPC proxies; fakes in the unit tests)."""

    identity: Callable[[str], dict]  # identity.export_subject
    messaging: Callable[[str], dict]  # messaging.export_subject
    deliveries: Callable[[str], Iterator[dict]]  # the notifier's delivery records to the person, page by page
    audit_summary: Callable[[str], dict]  # audit_subject_summary (as the system: audited as audit_query)


def is_export(request_type: Any) -> bool:
    return request_type in EXPORT_TYPES


def prepare_export(uow: Any, request_id: str, subject_id: str, kind: str, sources: ExportSources,
                   settings: ExportSettings, now: datetime | None = None,
                   complete: Callable[..., Any] | None = None) -> str | None:
    """Gather and store the bundle, issue its link, complete the request; the download URL (None when this
    request's bundle exists already: a repeated start)."""
    if uow.load(Export, request_id) is not None:
        return None
    now = now or datetime.now(UTC)
    expires_at = now + settings.link_ttl
    parts = export_parts_of(uow)
    count = 0

    def store(pieces: Iterator[str]) -> None:
        nonlocal count
        for piece in pieces:
            sealed = uow.personal.seal(subject_id=subject_id, resource_type=RESOURCE, resource_id=request_id,
                                       values={FIELD: piece}, purpose=PURPOSE)[FIELD]
            parts.put(request_id, count, subject_id, sealed, now)
            count += 1

    writer = BundleWriter()
    names: set[str] = set()

    def section(name: str, value: Any) -> None:
        field_names(value, names)
        store(writer.section(name, value))

    store(writer.header({"request_id": request_id, "subject_id": subject_id, "type": kind,
                         "generated_at": now.isoformat(), "expires_at": expires_at.isoformat()}))
    section("identity", sources.identity(subject_id))
    section("messaging", sources.messaging(subject_id))
    section("notifications", _deliveries(sources, subject_id))
    section("privacy", own_records(uow, subject_id))
    section("audit", _audit(sources.audit_summary(subject_id), settings))
    store(writer.close())

    token = new_secret()
    uow.save(Export.prepare(request_id, subject_id, kind, count, writer.size, expires_at))
    uow.save(ExportLink.issue(token, request_id, subject_id, count, expires_at, sorted(names)))
    url = f"{settings.base_url}{DOWNLOAD_PATH}{token}"
    if complete is None:
        from .erasures import complete_request as complete
    complete(uow, request_id, outcome="completed", download_url=url,
             download_ttl_s=int(settings.link_ttl.total_seconds()), answer={
        "bundle": {"schema_version": SCHEMA_VERSION, "parts": count, "size": writer.size,
                   "expires_at": expires_at.isoformat()}})
    return url


def _deliveries(sources: ExportSources, subject_id: str) -> dict[str, Any]:
    """The notifier's delivery records to the person (ids, kinds, states, times: the notifier keeps no
    address nor body), or why they could not be had: the rest of the bundle is not held back for them."""
    try:
        return {"available": True, "items": list(sources.deliveries(subject_id))}
    except ServiceError as exc:
        return {"available": False, "reason": exc.slug, "items": []}
    except Exception as exc:  # a RemoteError, a timeout: said, not hidden
        return {"available": False, "reason": type(exc).__name__, "items": []}


def _audit(summary: dict, settings: ExportSettings) -> dict[str, Any]:
    """The audit summary with its third parties: each recipient once, its name and privacy-policy URL as the
    summary gives them (privacy's read model of the integrations), else as the setting names them (R9.1)."""
    parties: dict[str, dict[str, Any]] = {}
    for entry in summary.get("shared_with", []):
        recipient = entry.get("recipient")
        if not recipient:
            continue
        party = parties.setdefault(recipient, {"recipient": recipient, "name": None, "privacy_policy_url": None})
        party["name"] = party["name"] or entry.get("name")
        party["privacy_policy_url"] = (party["privacy_policy_url"] or entry.get("privacy_policy_url")
                                       or settings.third_party_policies.get(recipient))
    return {**summary, "third_parties": [parties[r] for r in sorted(parties)]}


def own_records(uow: Any, subject_id: str) -> list[dict[str, Any]]:
    """Privacy's records of the person (their requests, corrections, consents, acceptances, erasures), each
    event with its sealed values opened (audited) where they are sealed under the person or the request."""
    records = []
    for event in subject_events(uow, subject_id):
        data = dict(event.data)
        sealed = data.pop("sealed", None) or {}
        values: dict[str, Any] = {}
        if sealed:
            names_them = any(data.get(key) == subject_id for key in SUBJECT_KEYS)
            values = _open(uow, event.stream_id, subject_id, sealed, names_them)
        records.append({"stream": event.stream_id.split("-", 1)[0], "id": event.stream_id.split("-", 1)[-1],
                        "type": event.type, "occurred_at": event.occurred_at.isoformat(), "data": data,
                        "values": values})
    return records


def _open(uow: Any, stream_id: str, subject_id: str, sealed: Mapping[str, Any], names_them: bool) -> dict[str, Any]:
    """The values sealed under the person (an event naming them) or under the record itself (a contact-channel
    request's address, before it was anyone's): the likelier first, so a wrong guess is rarely audited."""
    aggregate_id = stream_id.split("-", 1)[-1]
    for owner in ((subject_id, aggregate_id) if names_them else (aggregate_id, subject_id)):
        try:
            opened = uow.personal.open(subject_id=owner, resource_type="privacy_record", resource_id=aggregate_id,
                                       sealed={k: v for k, v in sealed.items() if isinstance(v, str) or v is None},
                                       purpose=PURPOSE)
        except Exception:  # sealed under the other owner (or nobody's any more)
            continue
        return {k: (None if is_erased(v) else v) for k, v in opened.items()}
    return {}


# -- the download


def _refused(reason: str) -> ServiceError:
    detail = "This download link has expired." if reason == "expired" else "This download link was used already."
    return ServiceError("gone", detail, 410, {"reason": reason})


def _link(uow: Any, token: Any) -> ExportLink:
    if not looks_like_secret(token):
        raise not_found("export")
    link = uow.load(ExportLink, secret_hash(token))
    if link is None:
        raise not_found("export")
    return link


def start_download(uow: Any, token: Any, now: datetime | None = None) -> dict[str, Any]:
    """Use the link ``token`` (once): ``{request_id, parts, lease, filename}``; audited as ``export``."""
    now = now or datetime.now(UTC)
    link = _link(uow, token)
    lease = new_secret()
    try:
        link.use(lease, now)
    except LinkRefused as exc:
        raise _refused(exc.reason) from None
    uow.save(link)  # at the version read: of two downloads at once, one wins
    # the record names every member the bundle gives away (the profile's fields, "body", ...): names only
    uow.audit_access(action="export", resource_type=RESOURCE, resource_id=link.request_id, subject_id=link.subject_id,
                     fields=("bundle", *link.fields), purpose=PURPOSE)
    return {"request_id": link.request_id, "parts": link.parts, "lease": lease,
            "filename": f"dados-{link.request_id}.json"}


def read_part(uow: Any, token: Any, lease: Any, part: Any, now: datetime | None = None) -> str:
    """Part ``part`` of the bundle, for the download holding ``lease``; the last one ends the download (the
    stored parts deleted)."""
    now = now or datetime.now(UTC)
    link = _link(uow, token)
    try:
        link.check_lease(lease, now)
    except LinkRefused as exc:
        raise _refused(exc.reason) from None
    if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < link.parts:
        raise invalid_field("part", f"must be an integer from 0 to {link.parts - 1}")
    store = export_parts_of(uow)
    row = store.get(link.request_id or "", part)
    if row is None:
        raise _refused("used")
    text = uow.personal.open(subject_id=row["subject_id"], resource_type=RESOURCE, resource_id=link.request_id,
                             sealed={FIELD: row["sealed"]}, purpose=PURPOSE)[FIELD]
    if is_erased(text) or text is None:  # the person was erased since: nothing to give
        raise _refused("used")
    if part == link.parts - 1:
        store.delete(link.request_id or "")
        link.purge()
        uow.save(link)
    return text
