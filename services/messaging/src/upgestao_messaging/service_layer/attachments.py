"""Attachments: uploaded into a conversation or chat, linked to the message that sends them, described with
each read of that message, downloaded by those who see the container, shredded with their data subject.

The container is checked by the caller (the visibility rule is :mod:`..domain.visibility`'s, applied by the
message use cases): :func:`upload` takes a container already seen to be the uploader's to write in, with
the data subject its values are sealed under (the conversation's customer, or in a chat the uploader);
:func:`download` takes the rule as a predicate over ``(container_kind, container_id)``.

Every value goes through the unit of work's audited door: the bytes (base64, vault values are strings),
the name and the SHA-256 are sealed on upload (``attachment``, ``attachment_name``,
``attachment_sha256``); a description opens name and digest, a download all three, each an audit record
naming the subject, the attachment and the fields. An attachment not yet sent is its uploader's alone:
anyone else asking for it (or linking it) is answered as if it did not exist, and so is one whose
container the asker may not see. An uploader keeps at most :data:`PENDING_MAX` of them unsent;
:func:`purge_unlinked` removes those abandoned for longer than :data:`UNLINKED_TTL`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from upgestao_kernel.errors import conflict, invalid_field, not_found
from upgestao_kernel.unit_of_work import is_erased

from ..adapters.attachment_store import AttachmentRecord
from ..domain.attachments import check_content, safe_name
from ..domain.visibility import Viewer
from .access import Attachments

RESOURCE = "attachment"
CONTENT = "attachment"
NAME = "attachment_name"
SHA256 = "attachment_sha256"
PENDING_MAX = 50  # unsent attachments per uploader
MAX_PER_MESSAGE = 10
UNLINKED_TTL = timedelta(hours=24)
CONTAINER_KINDS = ("conversation", "chat")

MaySee = Callable[[str, str], bool]  # (container_kind, container_id) -> the asker may see it


def view(record: AttachmentRecord, *, name: str, sha256: str) -> dict[str, Any]:
    """What a client is told of an attachment (the contract's ``Attachment``)."""
    return {"id": record.id, "name": name, "content_type": record.content_type, "size": record.size,
            "sha256": sha256}


def upload(uow: Any, viewer: Viewer, *, name: object, content: bytes, container_kind: str, container_id: str,
           subject_id: str, now: datetime) -> dict[str, Any]:
    """Keep ``content`` (type sniffed, ≤ 10 MiB) sealed under ``subject_id`` for the viewer to send into the
    container; 422 naming ``content`` or ``name``, 409 when the uploader has too many unsent."""
    if container_kind not in CONTAINER_KINDS:
        raise ValueError(f"container_kind must be one of {CONTAINER_KINDS}")
    clean_name = safe_name(name)
    checked = check_content(content)
    if uow.attachments.pending_count(viewer.user_id) >= PENDING_MAX:
        raise conflict(f"You have {PENDING_MAX} attachments not yet sent: send them first (unsent ones are "
                       f"removed after {int(UNLINKED_TTL.total_seconds() // 3600)} hours).")
    attachment_id = str(uuid.uuid4())
    sealed = uow.personal.seal(
        subject_id=subject_id, resource_type=RESOURCE, resource_id=attachment_id, purpose="attachment upload",
        values={CONTENT: base64.b64encode(content).decode("ascii"), NAME: clean_name, SHA256: checked.sha256})
    record = AttachmentRecord(
        id=attachment_id, container_kind=container_kind, container_id=container_id, subject_id=subject_id,
        message_id=None, uploader_id=viewer.user_id, content_type=checked.content_type, size=checked.size,
        name_sealed=sealed[NAME], sha256_sealed=sealed[SHA256], content_sealed=sealed[CONTENT], created_at=now,
        linked_at=None, erased=False)
    uow.attachments.add(record)
    return view(record, name=clean_name, sha256=checked.sha256)


def _canonical_ids(attachment_ids: object) -> list[str]:
    if not isinstance(attachment_ids, list | tuple):
        raise invalid_field("attachment_ids", "must be a list of attachment ids")
    if len(attachment_ids) > MAX_PER_MESSAGE:
        raise invalid_field("attachment_ids", f"at most {MAX_PER_MESSAGE} attachments per message")
    ids = []
    for value in attachment_ids:
        try:
            canonical = str(uuid.UUID(value)) if isinstance(value, str) else None
        except ValueError:
            canonical = None
        if canonical is None:
            raise invalid_field("attachment_ids", "must be attachment ids (UUIDs)")
        if canonical not in ids:
            ids.append(canonical)
    return ids


def link(uow: Any, attachment_ids: Sequence[str], *, message_id: str, container_kind: str, container_id: str,
         uploader_id: str, now: datetime) -> list[str]:
    """Give the attachments to the message being sent; every one must have been uploaded by the sender into
    this container and be unsent (else 422 ``attachment_ids``, the whole send refused). Returns the ids."""
    ids = _canonical_ids(attachment_ids)
    if not ids:
        return []
    linked = uow.attachments.link(ids, message_id=message_id, container_kind=container_kind,
                                  container_id=container_id, uploader_id=uploader_id, at=now)
    if linked != len(ids):  # someone else's, another container's, already sent, erased, or none at all
        raise invalid_field("attachment_ids", "no such attachment to send here: each must be one you uploaded "
                                              "into this conversation or chat and not sent yet")
    return ids


def describe(uow: Any, attachment_ids: Sequence[str], *, purpose: str = "message read") -> dict[str, dict[str, Any]]:
    """``{id: Attachment}`` of the sent attachments among ``attachment_ids`` (names and digests opened,
    audited: one record per attachment, all in one statement, and one statement for their subjects' keys);
    erased ones are left out."""
    described: dict[str, dict[str, Any]] = {}
    if not attachment_ids:
        return described
    wanted = list(dict.fromkeys(attachment_ids))
    records = uow.attachments.get_many(wanted)
    sent = [(attachment_id, records[attachment_id]) for attachment_id in wanted  # in the order asked (the audit's)
            if attachment_id in records and not records[attachment_id].erased
            and records[attachment_id].message_id is not None]
    opened = uow.personal.open_each(resource_type=RESOURCE, purpose=purpose, items=[
        (record.subject_id, record.id, {NAME: record.name_sealed, SHA256: record.sha256_sealed}) for _, record in sent])
    for (attachment_id, record), values in zip(sent, opened, strict=True):
        if is_erased(values[NAME]) or values[NAME] is None:
            continue
        described[attachment_id] = view(record, name=values[NAME], sha256=values[SHA256])
    return described


def download(uow: Any, viewer: Viewer, attachment_id: object, *, may_see: MaySee) -> dict[str, Any]:
    """The attachment with its bytes (``content_b64``), opened (audited ``attachment download``): for the
    uploader before it is sent, then for whoever ``may_see`` its container; 404 ``not-found`` otherwise, the
    same as for one that does not exist."""
    try:
        aid = str(uuid.UUID(attachment_id)) if isinstance(attachment_id, str) else None
    except ValueError:
        aid = None
    record = uow.attachments.get(aid, with_content=True) if aid else None
    if record is None or record.erased:
        raise not_found("attachment")
    allowed = (record.uploader_id == viewer.user_id if record.message_id is None
               else may_see(record.container_kind, record.container_id))
    if not allowed:
        uow.deny(action="read", resource_type=RESOURCE, resource_id=record.id, subject_id=None, fields=(),
                 purpose="visibility")
        raise not_found("attachment")
    opened = uow.personal.open(subject_id=record.subject_id, resource_type=RESOURCE, resource_id=record.id,
                               sealed={CONTENT: record.content_sealed, NAME: record.name_sealed,
                                       SHA256: record.sha256_sealed}, purpose="attachment download")
    if any(is_erased(value) or value is None for value in opened.values()):
        raise not_found("attachment")  # its subject was shredded between the read and now
    try:
        content = base64.b64decode(opened[CONTENT], validate=True)
    except (binascii.Error, ValueError):
        raise RuntimeError(f"attachment {record.id}: stored content is not base64") from None
    if hashlib.sha256(content).hexdigest() != opened[SHA256] or len(content) != record.size:
        raise RuntimeError(f"attachment {record.id}: stored content does not match its digest")
    return {**view(record, name=opened[NAME], sha256=opened[SHA256]), "content_b64": opened[CONTENT],
            "message_id": record.message_id}


def purge_subject(uow: Any, subject_id: str) -> int:
    """Erasure: the sealed values of every attachment under ``subject_id`` are dropped (the subject's key is
    shredded by the caller: they were unreadable already); returns how many attachments were erased now."""
    return uow.attachments.erase_subject(subject_id)


def export_subject(uow: Any, subject_id: str) -> list[dict[str, Any]]:
    """Everything kept of the subject's attachments (names and digests opened, purpose ``data subject
    access``; the bytes are not repeated in an export, their digest identifies them)."""
    exported = []
    for record in uow.attachments.of_subject(subject_id):
        item = {"id": record.id, "container_kind": record.container_kind, "container_id": record.container_id,
                "message_id": record.message_id, "uploader_id": record.uploader_id,
                "content_type": record.content_type, "size": record.size, "created_at": record.created_at.isoformat(),
                "erased": record.erased, "name": None, "sha256": None}
        if not record.erased:
            opened = uow.personal.open(subject_id=subject_id, resource_type=RESOURCE, resource_id=record.id,
                                       sealed={NAME: record.name_sealed, SHA256: record.sha256_sealed},
                                       purpose="data subject access")
            item.update({k: None if is_erased(v) else v for k, v in (("name", opened[NAME]),
                                                                      ("sha256", opened[SHA256]))})
        exported.append(item)
    return exported


def purge_unlinked(uow: Any, *, now: datetime, limit: int = 500) -> int:
    """Remove attachments uploaded more than :data:`UNLINKED_TTL` ago and never sent (a sweep's step)."""
    return uow.attachments.delete(uow.attachments.unlinked_before(now - UNLINKED_TTL, limit))


class SealedAttachments(Attachments):
    """This module behind the message use cases' port (``Deps(attachments=SealedAttachments(now))``)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def link(self, uow: Any, attachment_ids: Sequence[str], *, container_kind: str, container_id: str,
             message_id: str, actor_id: str) -> None:
        link(uow, attachment_ids, message_id=message_id, container_kind=container_kind, container_id=container_id,
             uploader_id=actor_id, now=self._now())

    def describe(self, uow: Any, attachment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return describe(uow, attachment_ids)

    def purge_subject(self, uow: Any, subject_id: str) -> int:
        return purge_subject(uow, subject_id)
