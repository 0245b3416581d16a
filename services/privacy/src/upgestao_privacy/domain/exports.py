"""Access and portability bundles (LGPD art. 18 II and V, R4.2, R9.1): what every service holds about a person,
as one JSON document, behind a single-use, expiring link.

* ``export-<request id>`` (:class:`Export`): the bundle was gathered (``privacy.export_prepared.v1``: its parts,
  size and when its link expires); the bundle's text is stored apart, in parts sealed under the person
  (``export_parts``), so erasing the person makes a bundle not yet fetched unreadable too.
* ``export-link-<sha256 of the token>`` (:class:`ExportLink`): the link. The token is random (32 bytes) and
  handed out once, in the request's completion (the e-mail); only its hash is kept, as the stream's id, so a
  download finds the link by hashing what it was given. The first download appends ``ExportLinkUsed`` at the
  version it read: two downloads at once, one wins; the second use of a link is refused (410). A download is
  a lease: the parts are fetched with the lease's secret (hash kept), for :data:`LEASE_TTL` only.

The bundle's format (``schema_version``) is :data:`SCHEMA_VERSION`, described by the JSON Schema
``services/privacy/docs/subject_bundle.schema.json``. :class:`BundleWriter` makes its text piece by piece,
so a section is serialised member by member (:func:`fragments`), cut into parts, sealed and stored before the
next is gathered: memory is bounded by the largest section as the service answered it (messaging's
``export_subject`` answers in one reply), never the bundle's text.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from upgestao_kernel.events import Aggregate

from .events import PrivacyEvent

SCHEMA_VERSION = "1.0"
BUNDLE_FORMAT = "upgestao-subject-bundle"
EXPORT_TYPES = ("access", "portability")
SECTIONS = ("identity", "messaging", "notifications", "privacy", "audit")
PART_CHARS = 128 * 1024  # characters of the bundle's text per sealed part (sealing one costs ~5x its size at once)
LINK_TTL = timedelta(days=7)
LEASE_TTL = timedelta(minutes=15)


def new_secret() -> str:
    """A single-use secret (a link's token, a download's lease): 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_secret(value: Any) -> bool:
    return isinstance(value, str) and 20 <= len(value) <= 128 and all(
        c.isalnum() or c in "-_" for c in value)


# -- events


@dataclass(frozen=True)
class ExportPrepared(PrivacyEvent, subject="request_id",
                     publishes=("request_id", "subject_id", "kind", "parts", "size", "expires_at")):
    """A bundle of what every service holds about ``subject_id`` was gathered and stored (sealed, in ``parts``
    parts, ``size`` characters); its link expires at ``expires_at`` (ISO-8601)."""

    subject_id: str
    kind: str
    parts: int
    size: int
    expires_at: str
    schema_version: str = SCHEMA_VERSION


@dataclass(frozen=True)
class ExportLinkIssued(PrivacyEvent, subject="link_id", publishes=False):
    """The link of a bundle (stream id: the token's hash; the token itself is never stored). ``fields``: the
    names of the bundle's members that hold a value (what its download's audit record names)."""

    request_id: str
    subject_id: str
    parts: int
    expires_at: str
    fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportLinkUsed(PrivacyEvent, subject="link_id", publishes=False):
    """The link was used: its one download began (``lease_hash``: the hash of the secret its parts are
    fetched with, until ``lease_expires_at``)."""

    lease_hash: str
    lease_expires_at: str


@dataclass(frozen=True)
class ExportPartsPurged(PrivacyEvent, subject="link_id", publishes=False):
    """The bundle's stored parts were deleted (its download ended)."""

    parts: int


class Export(Aggregate):
    """Id: the request's id."""

    stream_type = "export"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.subject_id: str | None = None
        self.parts = 0
        self.expires_at: str | None = None

    @classmethod
    def prepare(cls, request_id: str, subject_id: str, kind: str, parts: int, size: int,
                expires_at: datetime) -> Export:
        if kind not in EXPORT_TYPES:
            raise ValueError(f"not an export type: {kind!r}")
        export = cls(request_id)
        export.trigger(ExportPrepared(subject_id=subject_id, kind=kind, parts=parts, size=size,
                                      expires_at=expires_at.isoformat()))
        return export

    def when_export_prepared(self, subject_id: str, kind: str, parts: int, size: int, expires_at: str,
                             schema_version: str = SCHEMA_VERSION) -> None:
        self.subject_id, self.parts, self.expires_at = subject_id, parts, expires_at


class LinkRefused(Exception):
    """A link that cannot be used: ``reason`` is ``expired`` or ``used``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExportLink(Aggregate):
    """Id: the hash of the link's token."""

    stream_type = "export-link"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.request_id: str | None = None
        self.subject_id: str | None = None
        self.parts = 0
        self.expires_at: datetime | None = None
        self.lease_hash: str | None = None
        self.lease_expires_at: datetime | None = None
        self.purged = False
        self.fields: list[str] = []

    @classmethod
    def issue(cls, token: str, request_id: str, subject_id: str, parts: int, expires_at: datetime,
              fields: list[str] | None = None) -> ExportLink:
        link = cls(secret_hash(token))
        link.trigger(ExportLinkIssued(request_id=request_id, subject_id=subject_id, parts=parts,
                                      expires_at=expires_at.isoformat(), fields=sorted(set(fields or ()))))
        return link

    @property
    def used(self) -> bool:
        return self.lease_hash is not None

    def use(self, lease: str, now: datetime) -> None:
        """Begin the link's one download with ``lease`` (its parts are fetched with it)."""
        if self.used or self.purged:
            raise LinkRefused("used")
        if self.expires_at is None or now >= self.expires_at:
            raise LinkRefused("expired")
        self.trigger(ExportLinkUsed(lease_hash=secret_hash(lease), lease_expires_at=(now + LEASE_TTL).isoformat()))

    def check_lease(self, lease: Any, now: datetime) -> None:
        """The download under way is ``lease``'s, and still open."""
        if self.purged or not self.used:
            raise LinkRefused("used")
        if not looks_like_secret(lease) or not secrets.compare_digest(secret_hash(lease), self.lease_hash or ""):
            raise LinkRefused("used")
        if self.lease_expires_at is None or now >= self.lease_expires_at:
            raise LinkRefused("expired")

    def purge(self) -> None:
        if not self.purged:
            self.trigger(ExportPartsPurged(parts=self.parts))

    def when_export_link_issued(self, request_id: str, subject_id: str, parts: int, expires_at: str,
                                fields: list[str] | None = None) -> None:
        self.request_id, self.subject_id, self.parts = request_id, subject_id, parts
        self.expires_at = datetime.fromisoformat(expires_at)
        self.fields = list(fields or ())

    def when_export_link_used(self, lease_hash: str, lease_expires_at: str) -> None:
        self.lease_hash, self.lease_expires_at = lease_hash, datetime.fromisoformat(lease_expires_at)

    def when_export_parts_purged(self, parts: int) -> None:
        self.purged = True


# -- the bundle's text, piece by piece


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def fragments(value: Any, depth: int = 4) -> Iterator[str]:
    """``dumps(value)`` in pieces: containers down to ``depth`` levels are opened member by member, so no
    more than one leaf's text (a message, say) exists at a time besides the value itself."""
    if depth <= 0 or not isinstance(value, (dict, list)) or not value:
        yield dumps(value)
    elif isinstance(value, dict):
        for n, key in enumerate(sorted(value)):
            yield ("{" if n == 0 else ",") + dumps(str(key)) + ":"
            yield from fragments(value[key], depth - 1)
        yield "}"
    else:
        for n, item in enumerate(value):
            yield "," if n else "["
            yield from fragments(item, depth - 1)
        yield "]"


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a member's name (not a key that is an id, a UUID)
MAX_FIELDS = 200


def field_names(value: Any, into: set[str]) -> set[str]:
    """The names of the members of ``value`` (at any depth) that hold a value: what a bundle gives away."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item not in (None, "", [], {}) and isinstance(key, str) and _NAME.match(key) and len(into) < MAX_FIELDS:
                into.add(key)
            field_names(item, into)
    elif isinstance(value, list):
        for item in value:
            field_names(item, into)
    return into


class BundleWriter:
    """The bundle's JSON text made in order (:meth:`header`, :meth:`section` for each of :data:`SECTIONS`,
    :meth:`close`), handed out in parts of at most ``part_chars`` characters as soon as they are full."""

    def __init__(self, part_chars: int = PART_CHARS) -> None:
        self.part_chars = part_chars
        self._buffer: list[str] = []
        self._buffered = 0
        self._sections = 0
        self.size = 0

    def _write(self, text: str) -> Iterator[str]:
        self.size += len(text)
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= self.part_chars:
            joined = "".join(self._buffer)
            full = len(joined) // self.part_chars * self.part_chars
            for start in range(0, full, self.part_chars):
                yield joined[start:start + self.part_chars]
            rest = joined[full:]
            self._buffer, self._buffered = ([rest] if rest else []), len(rest)

    def header(self, meta: dict[str, Any]) -> Iterator[str]:
        """The bundle's top-level members (``schema_version``, ``format``, ids, times, ``third_parties``)."""
        head = dumps({"schema_version": SCHEMA_VERSION, "format": BUNDLE_FORMAT, **meta})
        yield from self._write(head[:-1] + ',"sections":{')

    def section(self, name: str, value: Any) -> Iterator[str]:
        if name not in SECTIONS:
            raise ValueError(f"not a bundle section: {name!r}")
        prefix = "," if self._sections else ""
        self._sections += 1
        yield from self._write(f"{prefix}{dumps(name)}:")
        for fragment in fragments(value):  # a section's text is never held whole (10,000 messages: megabytes)
            yield from self._write(fragment)

    def close(self) -> Iterator[str]:
        yield from self._write("}}")
        if self._buffered:
            yield "".join(self._buffer)
        self._buffer, self._buffered = [], 0
