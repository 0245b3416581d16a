"""The stream's protocol: what a client may send, what it is sent, and why a socket is closed.

Client to server (text frames, JSON objects, at most ``max_message_bytes``):

    {"type": "auth", "token": "<access token>", "last_seq": 123}   first message (unless the token came in
                                                                   Sec-WebSocket-Protocol); again later with a
                                                                   renewed token of the same user
    {"type": "ping"}                                               answered {"type": "pong"}

Server to client:

    {"type": "ready", "seq": <the current sequence id>}            authenticated; events after ``seq`` follow
    {"type": "message.created", "seq": 124, "data": {...}}         an event (message.created, message.updated,
                                                                   conversation.updated, conversation.assigned,
                                                                   conversation.read)
    {"type": "resync", "seq": <the current sequence id>}           ``last_seq`` is older than the replay window:
                                                                   read the state again over HTTP
    {"type": "pong"}

The access token travels in the first message or in the ``Sec-WebSocket-Protocol`` header as
``upgestao.bearer.<token>`` beside ``upgestao.v1`` (the only protocol echoed back), with
``upgestao.resume.<last_seq>`` to resume (a socket authenticated so starts without waiting for a message):
never in the URL, where proxies and access logs keep it. A request with a query string is refused before
the upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..access.authentication import MAX_TOKEN_LENGTH
from .settings import normalise_origin

SUBPROTOCOL = "upgestao.v1"
BEARER_PROTOCOL_PREFIX = "upgestao.bearer."
RESUME_PROTOCOL_PREFIX = "upgestao.resume."
PATH = "/v1/stream"

# Close codes (RFC 6455 section 7.4; 4000-4999 are the application's)
NORMAL = 1000  # the client ended the stream
GOING_AWAY = 1001  # the gateway is stopping: reconnect
PROTOCOL_ERROR = 1002  # a frame RFC 6455 forbids (RSV bits, an unknown opcode, an unmasked frame, ...)
INVALID_DATA = 1007  # a text message that is not UTF-8
POLICY_VIOLATION = 1008  # a message that is not the protocol's
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013  # access cannot be checked now (identity's keys, the revocation view)
UNAUTHENTICATED = 4001  # no valid token in time, a revoked or expired token, another user's token
FORBIDDEN = 4003  # a valid token without conversations.read nor chats.use
TOO_SLOW = 4008  # the client did not read what it was sent
TOO_MANY = 4029  # the user's (or the gateway's) socket cap

READ_PERMISSIONS = ("conversations.read", "chats.use")
MAX_CLOSE_REASON_BYTES = 123


class ProtocolViolation(ValueError):
    """A client message that is not the protocol's (the socket is closed with 1008)."""


class _AuthMessage(Schema):
    type = fields.String(required=True, validate=validate.Equal("auth"))
    token = fields.String(required=True, validate=validate.Length(min=1, max=MAX_TOKEN_LENGTH))
    last_seq = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=-1))


class _PingMessage(Schema):
    type = fields.String(required=True, validate=validate.Equal("ping"))


_SCHEMAS: Mapping[str, Schema] = {"auth": _AuthMessage(), "ping": _PingMessage()}


@dataclass(frozen=True)
class ClientMessage:
    type: str
    token: str | None = None
    last_seq: int | None = None


def parse_client_message(raw: Any) -> ClientMessage:
    """A client's text frame as a :class:`ClientMessage`; :class:`ProtocolViolation` otherwise (its text
    never quotes the message: it may hold a token)."""
    if not isinstance(raw, str):
        raise ProtocolViolation("messages are JSON text frames")
    try:
        document = json.loads(raw)
    except ValueError:
        raise ProtocolViolation("not JSON") from None
    if not isinstance(document, dict):
        raise ProtocolViolation("not a JSON object")
    schema = _SCHEMAS.get(document.get("type"))  # type: ignore[arg-type]
    if schema is None:
        raise ProtocolViolation("unknown message type")
    try:
        loaded = schema.load(document)
    except ValidationError as exc:  # the protocol's fields by name; the client's own keys are not quoted
        fields_named = sorted(name for name in exc.messages if name in schema.fields)
        others = ["unknown fields"] if len(fields_named) < len(exc.messages) else []
        raise ProtocolViolation("invalid " + ", ".join(fields_named + others)) from None
    return ClientMessage(loaded["type"], loaded.get("token"), loaded.get("last_seq"))


def close_reason(text: str) -> str:
    """``text`` as a close frame's reason: at most 123 bytes of UTF-8 (a control frame carries 125, the code
    2 of them), whole characters (what cannot be encoded replaced)."""
    raw = text.encode("utf-8", "replace")
    return raw[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def offered_protocols(header: str | None) -> list[str]:
    return [part.strip() for part in (header or "").split(",") if part.strip()]


def token_from_protocols(protocols: list[str]) -> str | None:
    """The access token offered as ``upgestao.bearer.<token>`` (the last one, if several), else None."""
    token = None
    for protocol in protocols:
        if protocol.startswith(BEARER_PROTOCOL_PREFIX):
            token = protocol[len(BEARER_PROTOCOL_PREFIX):]
    return token or None


def resume_from_protocols(protocols: list[str]) -> int | None:
    """The ``last_seq`` offered as ``upgestao.resume.<n>`` beside a header token, else None (from now)."""
    for protocol in protocols:
        if protocol.startswith(RESUME_PROTOCOL_PREFIX):
            digits = protocol[len(RESUME_PROTOCOL_PREFIX):]
            if digits.isascii() and digits.isdigit() and len(digits) <= 19:
                return int(digits)
    return None


def origin_allowed(origin: str | None, host: str | None, scheme: str, allowed: tuple[str, ...]) -> bool:
    """Whether a browser page of ``origin`` may open the stream (cross-site WebSocket hijacking: a browser
    sends the user's cookies, never their bearer token, but the rule is kept strict all the same).

    No ``Origin`` (not a browser): allowed. Otherwise it must be one of ``allowed``, or, when that list is
    empty, name the host the request was sent to (``Host``)."""
    if origin is None:
        return True
    normalised = normalise_origin(origin)
    if normalised is None:
        return False
    if allowed:
        return normalised in allowed
    if not host:
        return False
    return normalised in {normalise_origin(f"{scheme}://{host}"), normalise_origin(f"https://{host}")}


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
