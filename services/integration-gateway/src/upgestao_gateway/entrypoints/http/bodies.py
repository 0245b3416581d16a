"""Request and response bodies that are not JSON (a profile photo, say).

``route(..., body=RawBody(content_types=("image/jpeg", "image/png"), max_bytes=2 * 1024 * 1024))``
gives the handler ``body`` as ``bytes``: another Content-Type is 415, more
than ``max_bytes`` is 413 (this limit replaces the 1 MiB JSON limit for the
route), an empty body is 400.

``response=BinaryResponse(("image/jpeg", "image/png"))`` documents a binary
answer; the handler returns a werkzeug ``Response`` itself.

``response=StreamResponse("application/x-ndjson", "One JSON object a line")``
declares a streamed answer: the handler returns a
:class:`~upgestao_gateway.entrypoints.http.streaming.Stream` of chunks,
produced in the route's worker while they are sent (see
:mod:`upgestao_gateway.entrypoints.http.streaming`).
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_RAW_BYTES = 64 * 1024 * 1024


def _content_types(values: tuple[str, ...] | list[str], what: str) -> tuple[str, ...]:
    types = tuple(value.strip().lower() for value in values)
    if not types or any("/" not in value or ";" in value or "*" in value for value in types):
        raise ValueError(f"{what} needs explicit media types such as 'image/png', got {values!r}")
    return types


@dataclass(frozen=True)
class RawBody:
    content_types: tuple[str, ...]
    max_bytes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_types", _content_types(self.content_types, "RawBody"))
        if not isinstance(self.max_bytes, int) or not 0 < self.max_bytes <= _MAX_RAW_BYTES:
            raise ValueError(f"RawBody max_bytes must be between 1 and {_MAX_RAW_BYTES}, got {self.max_bytes!r}")


@dataclass(frozen=True)
class BinaryResponse:
    content_types: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_types", _content_types(self.content_types, "BinaryResponse"))


@dataclass(frozen=True)
class StreamResponse:
    """A streamed answer of one media type (JSON Lines, say), sent as it is produced."""

    content_type: str
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_type", _content_types((self.content_type,), "StreamResponse")[0])
