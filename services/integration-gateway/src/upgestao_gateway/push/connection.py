"""``GET /v1/stream``: the WebSocket upgrade and the life of one socket.

:class:`StreamEndpoint` is called by the gateway's WSGI application for the stream's path, before its
routing (:class:`upgestao_gateway.entrypoints.http.server.GatewayApp`). Before the upgrade it refuses, as
problem+json: another method (405), a query string (400: the token must never be in the URL, where proxies
and access logs keep it), a request that is not a WebSocket upgrade (426), an ``Origin`` not allowed (403),
and a gateway at its socket cap (503). The handshake and the frames sent are eventlet's RFC 6455
implementation (``eventlet.websocket``), without compression (nothing to gain on a few hundred bytes an event,
and no decompression bomb to bound); the frames received are read by :class:`BoundedWebSocket` (eventlet's
reader, stricter where a frame fuzz found it lax: tests/fuzz/test_fuzz_stream_frames.py), client messages
bounded in size and in fragments.

A socket then has a reader (the request's green thread: authentication, pings, token renewals) and a writer
(:class:`SocketSink`: a bounded queue of frames, those queued together written at once, pings when idle, the
closing handshake). The dispatcher
never writes to a socket itself: a client that does not read fills its queue and is closed (4008), and
nobody else waits for it.
"""

from __future__ import annotations

import codecs
import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

import eventlet
from eventlet import websocket
from eventlet.event import Event
from eventlet.queue import Empty, Full, LightQueue
from upgestao_kernel.logging import get_logger
from werkzeug.wrappers import Request

from ..access.authentication import Authenticator
from ..domain.principal import Principal
from ..entrypoints.http.problems import Problem, forbidden, malformed_request, method_not_allowed, service_unavailable
from ..entrypoints.http.request import REQUEST_ID_HEADER
from ..entrypoints.http.responses import problem_response
from . import protocol
from .hub import JoinRefused, PushHub, Subscriber
from .settings import PushSettings

log = get_logger(__name__)

_CLOSE = object()  # the writer's last item
CLOSING_WAIT_S = 2.0  # how long the closing handshake may take before the socket is closed anyway
MAX_WRITE_FRAMES = 64  # frames written to a socket in one go, at most
MAX_FRAGMENTS = 64  # fragments of one client message, at most (a browser sends a message in one frame)
_TEXT = 0x1
_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})  # continuation, text, binary, close, ping, pong


class _Message:
    """A data message being received (or one control frame): its size and fragments counted as they come,
    a text message's UTF-8 checked fragment by fragment (eventlet's checks it only when the message ends, and
    its error escapes the frame reader: 1011 instead of 1007)."""

    def __init__(self, opcode: int, deadline: float) -> None:
        self.opcode = opcode
        self.deadline = deadline  # time.monotonic() by which its last fragment must have come
        self.finished = False
        self.size = 0
        self.fragments = 0
        self._parts: list[str | bytes] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")() if opcode == _TEXT else None

    def push(self, data: bytes, final: bool) -> None:
        self.finished = final
        self.size += len(data)
        self.fragments += 1
        if self._decoder is None:
            self._parts.append(data)
            return
        try:
            self._parts.append(self._decoder.decode(data, final))
        except UnicodeDecodeError:
            raise websocket.FailedConnectionError(protocol.INVALID_DATA, "Text must be UTF-8.") from None

    def getvalue(self) -> str | bytes:
        return ("" if self._decoder is not None else b"").join(self._parts)


class BoundedWebSocket(websocket.RFC6455WebSocket):
    """eventlet's RFC 6455 socket with its frame reader replaced (this one, for a server without extensions),
    failing the connection where eventlet's does not:

    * any RSV bit, 1002 (eventlet refuses a frame with RSV1: one with only RSV2 or RSV3 went through);
    * a text message that is not UTF-8, 1007 (eventlet's error escaped its reader: 1011, "Internal Server
      Error");
    * a *message* over ``max_frame_length`` (all its fragments, not only each frame), 1009, said from the
      declared length, before its bytes are read;
    * more than :data:`MAX_FRAGMENTS` fragments in a message, 1009: eventlet kept every fragment, empty
      ones too, and summed them all again at each (quadratic: 20,000 empty fragments, 120 kB, held the
      process's CPU for seconds, and every other socket with it);
    * a message whose frames do not all come within ``message_timeout_s`` of its first header, 1008: a
      socket that stalled or trickled mid-message was only ended by the idle timeout, which each byte reset.

    Its other checks are eventlet's (masking, opcodes, control frames, continuations), in the same order.
    ``closed_with``: the code eventlet's reader closed the socket with (a failed connection, a client's close
    answered), for the log."""

    closed_with: int | None = None
    message_timeout_s: float = 10.0  # PushSettings.message_timeout_s, set by the handler

    def close(self, close_data=None) -> None:
        if close_data is not None and self.closed_with is None:
            self.closed_with = close_data[0]
        super().close(close_data=close_data)

    def _recv_frame(self, message: _Message | None = None) -> _Message:
        if message is None:  # between messages: the wait is the socket's idle timeout
            header = self._get_bytes(2)
            deadline = time.monotonic() + self.message_timeout_s
        else:  # inside a fragmented one: its deadline holds, for the next fragment's header too
            header, deadline = None, message.deadline
        late = websocket.FailedConnectionError(
            protocol.POLICY_VIOLATION, f"A message must arrive within {self.message_timeout_s:g} seconds.")
        with eventlet.Timeout(max(0.001, deadline - time.monotonic()), late):
            return self._recv_rest(header or self._get_bytes(2), message, deadline)

    def _recv_rest(self, header: bytes, message: _Message | None, deadline: float) -> _Message:
        first, second = header
        final = bool(first & 0x80)
        opcode = first & 0x0F
        if first & 0x70:
            raise websocket.FailedConnectionError(protocol.PROTOCOL_ERROR, "RSV bits must be 0: no extension.")
        if opcode not in _OPCODES:
            raise websocket.FailedConnectionError(protocol.PROTOCOL_ERROR, "Unknown opcode received.")
        if not second & 0x80:
            raise websocket.FailedConnectionError(protocol.PROTOCOL_ERROR, "A client must mask its frames.")
        length = second & 0x7F
        control = bool(opcode & 0x8)
        if control and (not final or length > 125):
            raise websocket.FailedConnectionError(protocol.PROTOCOL_ERROR,
                                                  "Control frames are unfragmented, at most 125 bytes.")
        if not control and opcode and message is not None:
            raise websocket.FailedConnectionError(protocol.PROTOCOL_ERROR, "A new message inside a fragmented one.")
        if not control and not opcode and message is None:
            raise websocket.FailedConnectionError(protocol.PROTOCOL_ERROR, "A continuation without a start.")
        if length == 126:
            length = struct.unpack("!H", self._get_bytes(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._get_bytes(8))[0]
        if control or message is None:
            message = _Message(opcode, deadline)
        if message.size + length > self.max_frame_length:
            raise websocket.FailedConnectionError(protocol.MESSAGE_TOO_BIG, "Message too big.")
        if message.fragments >= MAX_FRAGMENTS:
            raise websocket.FailedConnectionError(protocol.MESSAGE_TOO_BIG, "Too many fragments.")
        mask = self._get_bytes(4)
        message.push(_unmask(self._get_bytes(length), mask) if length else b"", final)
        return message


def _unmask(data: bytes, mask: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``mask``, as one big integer (eventlet's goes byte by byte)."""
    key = (mask * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


class _Handshake(websocket.WebSocketWSGI):
    """eventlet's handshake, building a :class:`BoundedWebSocket`, offering no extension."""

    def _handle_hybi_request(self, environ):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)  # no permessage-deflate
        ws = super()._handle_hybi_request(environ)
        ws.__class__ = BoundedWebSocket  # eventlet builds its own class; ours reads the frames (above)
        return ws


class SocketSink:
    """The writer side of one socket: frames queued by the dispatcher, written by a green thread (the frames
    waiting when it wakes in one write: the same bytes, one system call)."""

    def __init__(self, ws: websocket.RFC6455WebSocket, settings: PushSettings) -> None:
        self.ws = ws
        self.settings = settings
        self.queue: LightQueue = LightQueue(settings.outbox_messages)
        self.closing: tuple[int, str] | None = None
        self.reader_done = Event()

    def send(self, message: Mapping[str, Any]) -> bool:
        """Queue a frame; False when the client is too far behind (the caller closes it)."""
        if self.closing is not None:
            return True  # going away: nothing more is sent, and that is no fault of the client
        try:
            self.queue.put_nowait(protocol.encode(message))
        except Full:
            return False
        return True

    def _ready_after(self, first: str | bytes) -> tuple[list[str | bytes], bool]:
        """``first`` and the frames queued behind it (up to :data:`MAX_WRITE_FRAMES`), and whether the close
        came among them: a dispatch round queues one frame per event for a socket, written together."""
        frames = [first]
        while len(frames) < MAX_WRITE_FRAMES:
            try:
                frame = self.queue.get_nowait()
            except Empty:
                break
            if frame is _CLOSE:
                return frames, True
            frames.append(frame)
        return frames, False

    def close(self, code: int, reason: str) -> None:
        """End the socket with ``code`` (the frames still queued are dropped when the client is too slow)."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        if code == protocol.TOO_SLOW:
            while not self.queue.empty():
                self.queue.get_nowait()
        try:
            self.queue.put_nowait(_CLOSE)
        except Full:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSE)

    def write_forever(self) -> None:
        ws = self.ws
        try:
            while True:
                try:
                    frame = self.queue.get(timeout=self.settings.ping_s)
                except Empty:
                    ws.send(b"", control_code=0x9)  # a ping: the client's pong proves it alive
                    continue
                if frame is _CLOSE:
                    break
                frames, closing = self._ready_after(frame)
                if len(frames) == 1:
                    ws.send(frame)
                else:  # the same frames, in order, in one write (one system call, not one each)
                    ws._send(b"".join(ws._pack_message(each, masked=False) for each in frames))
                if closing:
                    break
        except OSError:
            pass  # the client went away: the reader sees it too
        finally:
            code, reason = self.closing or (protocol.GOING_AWAY, "")
            ws._send_closing_frame(ignore_send_errors=True, close_data=(code, protocol.close_reason(reason)))
            try:
                ws.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with eventlet.Timeout(CLOSING_WAIT_S, False):
                self.reader_done.wait()
            if not self.reader_done.ready():  # the client did not answer the close: end it here
                try:
                    ws.socket.close()
                except OSError:
                    pass


class StreamEndpoint:
    """The WSGI side of ``GET /v1/stream`` (see the module docstring)."""

    def __init__(self, hub: PushHub, settings: PushSettings, authenticator: Authenticator) -> None:
        self.hub = hub
        self.settings = settings
        self.authenticator = authenticator
        self._handshake = _Handshake(self._handle, max_frame_length=settings.max_message_bytes)
        self._handshake.support_legacy_versions = False
        self._handshake.supported_protocols = [protocol.SUBPROTOCOL]

    # -- before the upgrade

    def __call__(self, request: Request, start_response: Callable) -> Any:
        environ = request.environ
        refusal = self._refusal(request)
        if refusal is not None:
            log.info("push.refused", status=refusal.status, reason=refusal.detail,
                     request_id=getattr(request, "request_id", None))
            response = problem_response(refusal, request)
            response.headers[REQUEST_ID_HEADER] = getattr(request, "request_id", "")
            return response(environ, start_response)
        environ["upgestao.push.request_id"] = getattr(request, "request_id", None)
        return self._handshake(environ, start_response)

    def _refusal(self, request: Request) -> Problem | None:
        environ = request.environ
        if request.method != "GET":
            return method_not_allowed(("GET",))
        if environ.get("QUERY_STRING"):
            return malformed_request("The stream takes no query string: send the access token in the first "
                                     "message or in the Sec-WebSocket-Protocol header, never in the URL.")
        connection = {part.strip().lower() for part in environ.get("HTTP_CONNECTION", "").split(",")}
        if "upgrade" not in connection or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return Problem("malformed-request", "This is a WebSocket: send an upgrade request (RFC 6455).",
                           status=426, title="Upgrade required", headers={"Upgrade": "websocket",
                                                                           "Connection": "Upgrade"})
        if not protocol.origin_allowed(environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST"),
                                       environ.get("wsgi.url_scheme", "http"), self.settings.origins):
            return forbidden("This origin may not open the stream.")
        if not self.hub.may_open():
            return service_unavailable("The gateway has too many open streams; try again later.")
        return None

    # -- after the upgrade

    def _handle(self, ws: websocket.RFC6455WebSocket) -> None:
        ws.socket.settimeout(self.settings.idle_timeout_s)
        ws.message_timeout_s = self.settings.message_timeout_s
        sink = SocketSink(ws, self.settings)
        writer = eventlet.spawn(sink.write_forever)
        subscriber: Subscriber | None = None
        self.hub.sockets += 1
        opened = time.monotonic()
        try:
            subscriber = self._serve(ws, sink)
        except OSError:
            pass  # reset, timed out (no pong in idle_timeout_s), closed under us
        except Exception as exc:  # eventlet's frame reader failing: this socket ends, the gateway goes on
            log.warning("push.socket_failed", error=type(exc).__name__)
            sink.close(protocol.INTERNAL_ERROR, "")
        finally:
            self.hub.sockets -= 1
            if subscriber is not None:
                self.hub.leave(subscriber)
            sink.reader_done.send(True)
            if sink.closing is None:  # the client ended it (or went away), or broke the protocol: eventlet closed
                sink.close(getattr(ws, "closed_with", None) or protocol.NORMAL, "")
            with eventlet.Timeout(CLOSING_WAIT_S + 1.0, False):
                writer.wait()
            writer.kill()
            log.info("push.closed", user_id=subscriber.user_id if subscriber else None,
                     code=sink.closing[0] if sink.closing else None, seconds=round(time.monotonic() - opened, 1),
                     request_id=ws.environ.get("upgestao.push.request_id"))

    def _serve(self, ws: websocket.RFC6455WebSocket, sink: SocketSink) -> Subscriber | None:
        """Authenticate, join the hub, then read until the socket ends; the subscriber it was."""
        offered = protocol.offered_protocols(ws.environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"))
        token = protocol.token_from_protocols(offered)
        last_seq = protocol.resume_from_protocols(offered)
        if token is None:
            first = None
            with eventlet.Timeout(self.settings.auth_timeout_s, False):
                first = self._next(ws, sink)
                if first is None:
                    return None
            if first is None:
                sink.close(protocol.UNAUTHENTICATED,
                           f"Authenticate within {self.settings.auth_timeout_s:g} seconds.")
                return None
            if first.type != "auth":
                sink.close(protocol.UNAUTHENTICATED, "The first message must be an auth message.")
                return None
            token, last_seq = first.token, first.last_seq
        principal = self._authenticate(token, sink)
        if principal is None:
            return None
        try:
            subscriber = self.hub.join(principal, token, sink, last_seq)
        except JoinRefused as refused:
            sink.close(refused.code, refused.reason)
            return None
        while not subscriber.closed and sink.closing is None:
            message = self._next(ws, sink)
            if message is None:
                break
            if message.type == "ping":
                sink.send({"type": "pong"})
            else:  # auth: a renewed token (last_seq means nothing any more: the stream is open)
                renewed = self._authenticate(message.token, sink)
                if renewed is None:
                    break
                if not self.hub.renew(subscriber, renewed, message.token):
                    sink.close(protocol.UNAUTHENTICATED, "A stream stays with the user who opened it.")
                    break
        return subscriber

    def _next(self, ws: websocket.RFC6455WebSocket, sink: SocketSink) -> protocol.ClientMessage | None:
        """The client's next message; None when the socket ended or the message was refused (closed)."""
        raw = ws.wait()
        if raw is None or sink.closing is not None:
            return None
        try:
            return protocol.parse_client_message(raw)
        except protocol.ProtocolViolation as exc:
            sink.close(protocol.POLICY_VIOLATION, str(exc))
            return None

    def _authenticate(self, token: str, sink: SocketSink) -> Principal | None:
        """The principal of ``token``, verified exactly as an HTTP request's bearer token is (signature,
        expiry, revocation, the role's permissions); None (the socket closed) otherwise."""
        request = Request({"REQUEST_METHOD": "GET", "PATH_INFO": protocol.PATH, "SERVER_NAME": "stream",
                           "SERVER_PORT": "0", "wsgi.url_scheme": "http", "HTTP_AUTHORIZATION": f"Bearer {token}"})
        try:
            principal = self.authenticator.authenticate(request)
        except Problem as problem:
            if problem.status == 401:
                sink.close(protocol.UNAUTHENTICATED, problem.detail)
            elif problem.status == 503:
                sink.close(protocol.TRY_AGAIN_LATER, problem.detail)
            else:
                sink.close(protocol.POLICY_VIOLATION, "The access token could not be accepted.")
            return None
        if principal is None:
            sink.close(protocol.UNAUTHENTICATED, "A valid access token is required.")
            return None
        if not any(principal.can(permission) for permission in protocol.READ_PERMISSIONS):
            sink.close(protocol.FORBIDDEN, "This user may not read conversations or chats.")
            return None
        return principal
