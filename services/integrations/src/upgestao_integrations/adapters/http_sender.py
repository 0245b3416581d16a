"""One webhook POST to an endpoint, behind the SSRF guard, with a hard deadline and kept-alive connections.

Every call resolves the URL's host, checks EVERY address it resolves to with
:func:`~upgestao_integrations.domain.network.refusal` (one refused address refuses the host: a name that
answers a public and a private address is a DNS rebinding attempt), then connects to a permitted address
itself, so nothing re-resolves the name between the check and the connection. HTTPS verifies the certificate
against the URL's host name (and sends it as SNI) while the TCP connection goes to the checked address.
Redirects are never followed (a 3xx is returned as it is: the schedule counts it a failure). The whole
attempt (connect, TLS, send, status and headers, and reading up to ``max_response_bytes`` of the body) runs
against one deadline of ``timeout_s``: every socket operation waits at most what is left of it, so a receiver
that drips bytes cannot stretch an attempt.

Connections are kept alive and reused per (scheme, host, port, address) — a few idle ones each — so a
stream of deliveries to one endpoint does not pay a TCP and TLS handshake per message. Only the standard
library's ``socket``/``ssl``/``http.client`` are used: under eventlet's monkey-patching (the service runs
patched) every wait yields to the other greenlets.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..domain.network import AllowedNetworks, IPAddress, Target, parse_target, refusal

Resolver = Callable[..., list[tuple[Any, ...]]]

TIMEOUT = "timeout"
# Headers the sender owns: the caller cannot move the request to another virtual host or break its framing.
_OWNED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})


class _DeadlineExpired(Exception):
    pass


@dataclass(frozen=True)
class SendResult:
    """One attempt: the answer's status and lower-cased headers, or why there was none.

    ``refused`` (the URL or an address is not allowed: nothing was sent) and ``error`` (no answer: ``timeout``,
    a connection or TLS error) exclude a status; ``response_bytes`` is how much of the body was read (at most
    ``max_response_bytes``) and ``response_truncated`` whether there was more."""

    status_code: int | None
    headers: dict[str, str] = field(default_factory=dict)
    duration_ms: float = 0.0
    error: str | None = None
    refused: str | None = None
    response_bytes: int = 0
    response_truncated: bool = False


class _DeadlineReader(io.RawIOBase):
    """The raw stream under http.client's buffered reader: every read waits only what is left of the deadline."""

    def __init__(self, owner: _DeadlineSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock = self._owner.sock
        sock.settimeout(self._owner.remaining())
        try:
            return sock.recv_into(buffer)
        except ssl.SSLWantReadError:  # pragma: no cover - a blocking SSL socket raises timeout instead
            raise TimeoutError("timed out") from None


class _DeadlineSocket:
    """What http.client sees as its socket: sends and reads bounded by the current attempt's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = time.monotonic()

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.remaining())
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if "w" in mode:
            raise ValueError("read-only")
        return io.BufferedReader(_DeadlineReader(self), 8192)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def stale(self) -> bool:
        """Whether an idle kept-alive connection was closed by the server (readable while idle = EOF or junk)."""
        try:
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                return True
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to ``host`` (the Host header, SNI and certificate name) made to the checked ``ip``."""

    def __init__(self, target: Target, ip: IPAddress, context: ssl.SSLContext | None) -> None:
        super().__init__(target.host, target.port)
        self.target = target
        self.ip = ip
        self.context = context
        self.last_used = time.monotonic()

    def open(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        raw = socket.create_connection((str(self.ip), self.target.port), timeout=left)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.target.scheme == "https":
                assert self.context is not None
                raw.settimeout(max(deadline - time.monotonic(), 0.001))
                raw = self.context.wrap_socket(raw, server_hostname=self.target.host)
        except BaseException:
            raw.close()
            raise
        self.sock = _DeadlineSocket(raw)

    def connect(self) -> None:  # http.client reconnects by itself only if we let it: never
        raise http.client.NotConnected("the sender opens its connections itself")

    def arm(self, deadline: float) -> None:
        assert isinstance(self.sock, _DeadlineSocket)
        self.sock.deadline = deadline


class WebhookSender:
    """Posts webhooks (see the module's doc). Thread- and greenlet-safe; ``close()`` drops idle connections."""

    def __init__(self, allowed: AllowedNetworks, timeout_s: float = 15.0, resolver: Resolver = socket.getaddrinfo,
                 max_response_bytes: int = 64 * 1024, *, ssl_context: ssl.SSLContext | None = None,
                 max_idle_per_key: int = 4, max_idle_s: float = 30.0, max_keys: int = 512,
                 stale_check_after_s: float = 1.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.allowed = allowed
        self.timeout_s = float(timeout_s)
        self.resolver = resolver
        self.max_response_bytes = int(max_response_bytes)
        self.ssl_context = ssl_context
        self.max_idle_per_key = max_idle_per_key
        self.max_idle_s = max_idle_s
        self.max_keys = max_keys
        # a connection idle longer than this is polled for the server's close before reuse; a fresher one is
        # reused at once (if the server closed it anyway, the request is made once more on a new connection)
        self.stale_check_after_s = stale_check_after_s
        self._idle: dict[tuple[str, str, int, str], list[_PinnedConnection]] = {}
        self._lock = threading.Lock()
        self._default_context: ssl.SSLContext | None = None
        self.connections_opened = 0  # observability (and the reuse test)

    # -- the attempt ---------------------------------------------------------------------------------------

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started = time.monotonic()
        deadline = started + self.timeout_s

        def done(**kwargs: Any) -> SendResult:
            return SendResult(duration_ms=(time.monotonic() - started) * 1000.0, **kwargs)

        try:
            target = parse_target(url)
        except ValueError as exc:
            return done(status_code=None, refused=f"invalid URL: {exc}")
        try:
            addresses = self._resolve(target)
            if time.monotonic() >= deadline:
                raise _DeadlineExpired
        except _DeadlineExpired:
            return done(status_code=None, error=TIMEOUT)
        except OSError as exc:
            return done(status_code=None, error=f"dns: {_reason(exc)}")
        if not addresses:
            return done(status_code=None, error="dns: no address")
        for ip in addresses:
            reason = refusal(ip, self.allowed)
            if reason is not None:
                return done(status_code=None, refused=f"the host resolves to {ip}: {reason}")
        request_headers = {k: v for k, v in headers.items() if k.lower() not in _OWNED_HEADERS}
        try:
            status, answer_headers, read, truncated = self._exchange(target, addresses, bytes(body),
                                                                      request_headers, deadline)
        except (TimeoutError, _DeadlineExpired):
            return done(status_code=None, error=TIMEOUT)
        except ssl.SSLCertVerificationError as exc:
            return done(status_code=None, error=f"tls: certificate not valid for the host ({exc.verify_message})")
        except ssl.SSLError as exc:
            return done(status_code=None, error=f"tls: {exc.reason or exc.__class__.__name__}")
        except ConnectionRefusedError:
            return done(status_code=None, error="connection refused")
        except (http.client.HTTPException, ValueError) as exc:
            return done(status_code=None, error=f"protocol: {exc.__class__.__name__}")
        except OSError as exc:
            return done(status_code=None, error=f"connection: {_reason(exc)}")
        return done(status_code=status, headers=answer_headers, response_bytes=read, response_truncated=truncated)

    def _resolve(self, target: Target) -> list[IPAddress]:
        try:
            literal = ipaddress.ip_address(target.host)
        except ValueError:
            literal = None
        if literal is not None:
            return [literal]
        infos = self.resolver(target.host, target.port, 0, socket.SOCK_STREAM)
        addresses: list[IPAddress] = []
        for info in infos:
            sockaddr = info[4]
            text = str(sockaddr[0])
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                raise OSError(f"unusable address in the answer ({text[:64]})") from None
            if isinstance(ip, ipaddress.IPv6Address) and len(sockaddr) >= 4 and sockaddr[3]:
                ip = ipaddress.IPv6Address(f"{ip}%{sockaddr[3]}")
            if ip not in addresses:
                addresses.append(ip)
        return addresses

    def _exchange(self, target: Target, addresses: list[IPAddress], body: bytes, headers: dict[str, str],
                  deadline: float) -> tuple[int, dict[str, str], int, bool]:
        connection, reused = self._checkout(target, addresses, deadline)
        try:
            try:
                response = self._request(connection, target, body, headers, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                # the server closed the idle connection as we reused it: once more on a fresh one
                connection.close()
                connection = self._open(target, addresses, deadline)
                response = self._request(connection, target, body, headers, deadline)
            answer_headers: dict[str, str] = {}
            for name, value in response.getheaders():
                key = name.lower()
                answer_headers[key] = f"{answer_headers[key]}, {value}" if key in answer_headers else value
            read, truncated = self._drain(response)
            keep = not truncated and response.isclosed() and not response.will_close
            if keep:
                self._checkin(connection)
            else:
                connection.close()
            return response.status, answer_headers, read, truncated
        except BaseException:
            connection.close()
            raise

    @staticmethod
    def _request(connection: _PinnedConnection, target: Target, body: bytes, headers: dict[str, str],
                 deadline: float) -> http.client.HTTPResponse:
        connection.arm(deadline)
        connection.request("POST", target.path, body=body, headers=headers)
        return connection.getresponse()

    def _drain(self, response: http.client.HTTPResponse) -> tuple[int, bool]:
        """Read (and discard) the answer's body up to the limit; ``(bytes read, whether more was left)``.

        The status is the answer: a body that stalls past the deadline or breaks off leaves it standing (the
        connection is then dropped, not reused)."""
        read = 0
        while read < self.max_response_bytes:
            if response.length == 0:  # all of a length-delimited body read: read() completes and releases it
                response.read()
                return read, False
            try:
                chunk = response.read1(min(16384, self.max_response_bytes - read))
            except (TimeoutError, http.client.IncompleteRead, OSError):
                return read, True
            if not chunk:
                return read, False
            read += len(chunk)
        if response.isclosed():
            return read, False
        # exactly at the limit: is there more? (a length-delimited body tells without reading)
        if response.length == 0:
            response.read()
            return read, False
        return read, True

    # -- the pool ------------------------------------------------------------------------------------------

    @staticmethod
    def _key(target: Target, ip: IPAddress) -> tuple[str, str, int, str]:
        return (target.scheme, target.host, target.port, str(ip))

    def _checkout(self, target: Target, addresses: list[IPAddress],
                  deadline: float) -> tuple[_PinnedConnection, bool]:
        now = time.monotonic()
        stale: list[_PinnedConnection] = []
        found: _PinnedConnection | None = None
        with self._lock:
            for ip in addresses:
                idle = self._idle.get(self._key(target, ip))
                while idle and found is None:
                    candidate = idle.pop()
                    if now - candidate.last_used > self.max_idle_s:
                        stale.append(candidate)
                    else:
                        found = candidate
                if found is not None:
                    break
        for connection in stale:
            connection.close()
        if found is not None:
            assert isinstance(found.sock, _DeadlineSocket)
            if now - found.last_used < self.stale_check_after_s or not found.sock.stale():
                return found, True
            found.close()
        return self._open(target, addresses, deadline), False

    def _open(self, target: Target, addresses: list[IPAddress], deadline: float) -> _PinnedConnection:
        context = None
        if target.scheme == "https":
            context = self.ssl_context or self._system_context()
        last_error: BaseException | None = None
        for ip in addresses:  # every one of them passed the guard
            connection = _PinnedConnection(target, ip, context)
            try:
                connection.open(deadline)
            except TimeoutError:
                raise
            except ssl.SSLError:
                raise
            except OSError as exc:
                last_error = exc
                continue
            with self._lock:
                self.connections_opened += 1
            return connection
        assert last_error is not None
        raise last_error

    def _system_context(self) -> ssl.SSLContext:
        """The system's trust store, verifying certificates and host names (loaded once)."""
        if self._default_context is None:
            self._default_context = ssl.create_default_context()
        return self._default_context

    def _checkin(self, connection: _PinnedConnection) -> None:
        connection.last_used = time.monotonic()
        key = self._key(connection.target, connection.ip)
        evicted: list[_PinnedConnection] = []
        with self._lock:
            if key not in self._idle and len(self._idle) >= self.max_keys:
                oldest = min(self._idle, key=lambda k: max((c.last_used for c in self._idle[k]), default=0.0))
                evicted.extend(self._idle.pop(oldest))
            idle = self._idle.setdefault(key, [])
            idle.append(connection)
            while len(idle) > self.max_idle_per_key:
                evicted.append(idle.pop(0))
        for old in evicted:
            old.close()

    def close(self) -> None:
        with self._lock:
            idle = [connection for connections in self._idle.values() for connection in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return exc.strerror or "name not resolved"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:200] or exc.__class__.__name__
