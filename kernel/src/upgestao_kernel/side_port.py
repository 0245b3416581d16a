"""A process's side port: the tiny HTTP/1.1 listener behind its probes (:mod:`.probes`) and its metrics
(:mod:`.metrics`), never the public one.

One green socket in the process's own hub; at most ``max_connections`` requests served at once (more are
closed at once: a flood cannot grow the process); a request's head read within ``read_timeout_s``;
``Connection: close``; nothing logged per request. What is answered is the owner's ``respond(head) -> bytes``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from .config import ConfigError
from .logging import get_logger

log = get_logger(__name__)

MAX_REQUEST_BYTES = 8192
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def host_port(variable: str, raw: str | None, example: str) -> tuple[str, int] | None:
    """``host:port`` as ``(host, port)``; ``None`` when unset or empty; ``[::]:9100`` for IPv6. A
    :class:`ConfigError` naming ``variable`` otherwise (``example`` shows the expected form)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    host, sep, port_text = raw.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() or c in "/@?#" for c in host):
        raise ConfigError(variable, f"expected host:port (e.g. {example}), got {raw!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(variable, f"the port must be a number between 1 and 65535, got {port_text!r}")
    return host, int(port_text)


def request_line(head: bytes) -> tuple[str, str] | None:
    """``(method, path without its query)`` of a request's head; ``None`` when its first line is malformed."""
    line = head.split(b"\n", 1)[0].decode("latin-1").strip().split()
    if len(line) != 3 or not line[2].startswith("HTTP/"):
        return None
    return line[0], line[1].split("?", 1)[0]


def http_response(status: int, body: bytes, content_type: str, *, head: bool = False, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response, ``Connection: close``, never cached (``head``: without its body)."""
    header = (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
              f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n{extra}\r\n")
    return header.encode("ascii") + (b"" if head else body)


def read_head(conn) -> bytes | None:
    """A request's head (up to its blank line); ``None`` when empty or over :data:`MAX_REQUEST_BYTES`."""
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        if len(data) > MAX_REQUEST_BYTES:
            return None
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    return data or None


class SidePortListener:
    """Serve ``respond(head)`` on ``address`` in green threads of this process (see the module)."""

    def __init__(self, address: tuple[str, int], variable: str, respond: Callable[[bytes], bytes], name: str, *,
                 max_connections: int, read_timeout_s: float) -> None:
        self.address = address
        self.variable = variable
        self.respond = respond
        self.name = name  # the log events' prefix: probes.listening, metrics.connection_dropped
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self._socket = None
        self._acceptor = None
        self._pool = None

    def start(self) -> tuple[str, int]:
        """Listen (a ``ConfigError`` naming the variable when the address cannot be bound); returns the bound
        ``(host, port)``."""
        import eventlet

        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        try:
            # no SO_REUSEPORT (eventlet's default): a second process on the same port must fail, not share it
            self._socket = eventlet.listen(self.address, family=family, backlog=self.max_connections,
                                           reuse_port=False)
        except OSError as exc:
            raise ConfigError(self.variable, f"cannot listen on {self.address[0]}:{self.address[1]}: "
                                             f"{exc.strerror or type(exc).__name__}") from None
        self._pool = eventlet.GreenPool(self.max_connections)
        self._acceptor = eventlet.spawn(self._accept)
        bound = self._socket.getsockname()
        log.info(f"{self.name}.listening", port=bound[1])
        return bound[0], bound[1]

    def stop(self) -> None:
        """Stop accepting and close the socket; requests in flight end with their connection."""
        if self._acceptor is not None:
            self._acceptor.kill()
            self._acceptor = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:  # closed under us: stop() is on its way
                return
            if self._pool.free() == 0:  # bounded: a flood of requests cannot grow the process
                conn.close()
                continue
            self._pool.spawn_n(self._serve, conn)

    def _serve(self, conn) -> None:
        try:
            conn.settimeout(self.read_timeout_s)
            head = read_head(conn)
            if head is not None:
                conn.sendall(self.respond(head))
        except (OSError, TimeoutError) as exc:  # a client gone or too slow: nothing to answer
            log.debug(f"{self.name}.connection_dropped", error=type(exc).__name__)
        finally:
            conn.close()
