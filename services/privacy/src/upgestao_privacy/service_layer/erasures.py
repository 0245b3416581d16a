"""Erasure across services (R5.3, R4.3): plain functions on a unit of work, called by the erasure mixin's
event handlers (``entrypoints/erasures_rpc.py``) and by the requests area (``erasure_progress``).

1. ``privacy.request_started.v1`` of type deletion, anonymisation or blocking -> :func:`start_erasure`: the
   ``erasure-<request id>`` stream begins with ``privacy.erasure_requested.v1`` (request_id, subject_id, mode,
   participants, recipients), which identity, integrations and messaging consume.
2. ``identity.subject_erased.v1`` / ``integrations.subject_erased.v1`` / ``messaging.subject_erased.v1``
   (request_id, subject_id, mode) ->
   :func:`confirm_erasure`: the confirmation is recorded; when every participant confirmed, privacy erases its
   own records of the person (:func:`erase_own_records`; not in ``blocking``) and completes the request (H3's
   ``complete_request``) in the same transaction.
3. :func:`erasure_progress`: ``{mode, participants: {service: pending|confirmed}, pending, recipients, ...}``.

Integrations that received the person's data (R4.3): their names come from the audit log's ``share``
records (the subject's summary, ``shared_with``) and travel in ``privacy.erasure_requested.v1``'s
``recipients``; the integrations service (issue 15) consumes that event, tells each integration that received
the person's data (``subject.erased``), and confirms with ``integrations.subject_erased.v1``: it is a default
participant (:data:`DEFAULT_PARTICIPANTS`; ``PRIVACY_ERASURE_PARTICIPANTS`` overrides the list).
:data:`RECIPIENT_HOOKS` is the in-process hook for anything else that must hear of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.logging import get_logger

from ..adapters.erasure_tables import export_parts_of, subject_events
from ..domain.erasures import ERASURE_TYPES, MODES, Erasure

log = get_logger(__name__)

PARTICIPANTS_VAR = "PRIVACY_ERASURE_PARTICIPANTS"
DEFAULT_PARTICIPANTS = ("identity", "integrations", "messaging")
PURPOSE = "erasure"
RESOURCE = "data_subject_erasure"  # the audit records of an erasure's steps (ids and names only)
RETRIES = 3  # concurrent confirmations (identity's and messaging's at once): reload and record again

# called with (uow, erasure) once an erasure is requested; the integrations' hook (R4.3), documented above
RECIPIENT_HOOKS: list[Callable[[Any, Erasure], None]] = []


def participants(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The services whose confirmation an erasure waits for (``PRIVACY_ERASURE_PARTICIPANTS``, comma-separated;
    default identity, integrations and messaging)."""
    raw = (os.environ if environ is None else environ).get(PARTICIPANTS_VAR, "")
    chosen = tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))
    return chosen or DEFAULT_PARTICIPANTS


def is_erasure(request_type: Any) -> bool:
    return request_type in ERASURE_TYPES


def start_erasure(uow: Any, request_id: str, subject_id: str, mode: str, participants: tuple[str, ...] | list[str],
                  recipients: list[str]) -> Erasure | None:
    """Begin the erasure of request ``request_id`` (None when it was begun already: a repeated start)."""
    if mode not in MODES:
        raise ValueError(f"not an erasure mode: {mode!r}")
    if uow.load(Erasure, request_id) is not None:
        return None
    erasure = Erasure.start(request_id, subject_id, mode, list(participants), recipients)
    uow.save(erasure)
    uow.audit_access(action="update", resource_type=RESOURCE, resource_id=request_id, subject_id=subject_id,
                     fields=("participants", "recipients"), purpose=f"{mode} requested")
    for hook in RECIPIENT_HOOKS:
        hook(uow, erasure)
    return erasure


def complete_request(uow: Any, request_id: str, **kwargs: Any) -> Any:
    """H3's ``complete_request`` (imported when first needed: the requests area imports this module)."""
    from . import requests as request_cases

    return request_cases.complete_request(uow, request_id, **kwargs)


def confirm_erasure(uow: Any, service: str, data: Mapping[str, Any], confirmation: str,
                    complete: Callable[..., Any] = complete_request) -> str:
    """Record ``service``'s ``subject_erased`` event (``data``: request_id, subject_id, mode). Answers
    ``ignored`` (no erasure of privacy's: an erasure asked by RPC, or another person), ``repeated``,
    ``recorded`` or ``completed``."""
    request_id = data.get("request_id")
    subject_id = data.get("subject_id")
    if not isinstance(request_id, str) or not isinstance(subject_id, str):
        return "ignored"
    for attempt in range(RETRIES):
        erasure = uow.load(Erasure, request_id)
        if erasure is None:
            return "ignored"
        if not erasure.confirm(service, subject_id, confirmation):
            return "repeated" if service in erasure.participants and subject_id == erasure.subject_id else "ignored"
        done = erasure.all_confirmed and not erasure.completed
        if done:
            erasure.complete()
        try:
            uow.save(erasure)
        except ConcurrencyError:  # the other participant's confirmation landed first: read it and go again
            if attempt + 1 == RETRIES:
                raise
            continue
        uow.audit_access(action="update", resource_type=RESOURCE, resource_id=request_id, subject_id=subject_id,
                         fields=("participants",), purpose=f"{erasure.mode} confirmed by {service}")
        if done:
            finish(uow, erasure, complete)
            return "completed"
        return "recorded"
    raise AssertionError("unreachable")


def finish(uow: Any, erasure: Erasure, complete: Callable[..., Any] = complete_request) -> None:
    """Every participant confirmed: privacy's own records go, then the request completes (one transaction)."""
    if erasure.privacy_shredded:
        erase_own_records(uow, erasure.subject_id or "")
    answer = {"erasure": {"mode": erasure.mode, "participants": sorted(erasure.participants),
                          "recipients_told": list(erasure.recipients), "privacy_shredded": erasure.privacy_shredded}}
    complete(uow, erasure.id, outcome="completed", answer=answer)


def erase_own_records(uow: Any, subject_id: str) -> list[str]:
    """Privacy's own records of the person: their vault key shredded (corrections' values, consents' sealed
    details, bundles, reasons), the keys of the requests they filed (a request filed through the contact channel
    seals the address and the message under its own id; this one's too: its completion cannot be e-mailed to an
    erased person anyway) and their bundles' stored parts. The vault subjects shredded."""
    shredded = [subject_id]
    uow.personal.shred(subject_id=subject_id, resource_type="data_subject", purpose=PURPOSE)
    requests = sorted({e.stream_id[len("request-"):] for e in subject_events(uow, subject_id)
                       if e.stream_id.startswith("request-")})
    for request_id in requests:
        uow.personal.shred(subject_id=request_id, resource_type="privacy_request", purpose=PURPOSE)
        shredded.append(request_id)
    export_parts_of(uow).delete_subject(subject_id)
    return shredded


def lift_blocking(uow: Any, request_id: str, unblock: Callable[[str, str], Any]) -> dict[str, Any]:
    """The DPO lifts the completed blocking of request ``request_id``: recorded, then identity unblocks the
    person (``unblock(subject_id, request_id)``, in this unit: if identity refuses, nothing is recorded).
    Raises :class:`~..domain.erasures.NotBlocked` (409) or LookupError (no such erasure: 404)."""
    erasure = uow.load(Erasure, request_id)
    if erasure is None:
        raise LookupError(request_id)
    erasure.lift(uow.context.actor_id)
    uow.save(erasure)
    unblock(erasure.subject_id or "", request_id)
    return erasure.progress()


def erasure_progress(uow: Any, request_id: str) -> dict[str, Any] | None:
    """The erasure of request ``request_id``: ``{mode, subject_id, participants: {service: "pending" |
    "confirmed"}, pending, recipients, completed, privacy_shredded}``; None when the request has none."""
    erasure = uow.load(Erasure, request_id)
    return None if erasure is None else erasure.progress()
