"""The SMTP client: ``SMTP_URL`` parsed, messages sent over a small pool of reused connections.

One :class:`SmtpMailer` per process. ``send`` hands one message to one recipient and says what became of it
(:class:`SendOutcome`): ``sent`` (2xx), ``hard_failed`` (5xx: the address is refused, not worth retrying) or
``soft_failed`` (4xx, a connection error, a timeout, or a 5xx that is the configuration's fault: to AUTH, EHLO,
STARTTLS, or MAIL FROM, which answers for our sender and not the recipient — retrying after the operator fixes
it must work, and the address must not be suppressed for it).

Connections are kept open between messages (a TLS handshake and AUTH per e-mail would cost more than the
message). Each is used by one caller at a time; the pool is a semaphore and a stack, which are green under
eventlet's monkey-patching (smtplib then runs on the patched socket), so ``send`` never blocks the hub.

Nothing is logged but the outcome's kind and code: no address, no text, no body.
"""

from __future__ import annotations

import errno
import re
import smtplib
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from urllib.parse import unquote, urlsplit

from upgestao_kernel.config import ConfigError
from upgestao_kernel.logging import get_logger

log = get_logger(__name__)

SMTP_URL = "SMTP_URL"
DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}
SENT, SOFT_FAILED, HARD_FAILED = "sent", "soft_failed", "hard_failed"
ERROR_TEXT_LIMIT = 200
# anything that looks like an e-mail address in a server's reply (often the recipient, quoted back)
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]*>?")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send: ``scheme`` is ``smtp`` (plain, no TLS), ``smtps`` (TLS from the first byte) or
    ``smtp+starttls`` (STARTTLS required: never sent in clear)."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    timeout_s: float = 10.0

    def __repr__(self) -> str:  # a URL-like summary without the password (logs, tracebacks, test output)
        user = f"{self.username}:***@" if self.username is not None else ""
        return f"SmtpSettings({self.scheme}://{user}{self.host}:{self.port}, timeout_s={self.timeout_s:g})"


def parse_smtp_url(url: str, *, timeout_s: float = 10.0) -> SmtpSettings:
    """``smtp[s|+starttls]://[user[:password]@]host[:port]`` -> :class:`SmtpSettings`.

    User and password are percent-decoded (a ``@`` or ``:`` in a password is written ``%40``, ``%3A``).
    Raises ``ConfigError("SMTP_URL", ...)``; the message never quotes the URL (it may hold the password).
    """
    if not url or not url.strip():
        raise ConfigError(SMTP_URL, "empty: expected smtp://, smtps:// or smtp+starttls://[user:password@]host[:port]")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(SMTP_URL, f"unsupported scheme {scheme!r}: use smtp://, smtps:// or smtp+starttls://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(SMTP_URL, "the port must be a number between 1 and 65535") from None
    host = parts.hostname
    if not host:
        raise ConfigError(SMTP_URL, "no host: expected e.g. smtp+starttls://user:password@mail.example.com:587")
    if port == 0:
        raise ConfigError(SMTP_URL, "the port must be a number between 1 and 65535")
    if (parts.path not in ("", "/")) or parts.query or parts.fragment:
        raise ConfigError(SMTP_URL, "expected no path, query or fragment after host:port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ConfigError(SMTP_URL, "a password without a user name")
    if not 0 < timeout_s <= 600:
        raise ConfigError(SMTP_URL, "the timeout must be between 0 and 600 seconds")
    return SmtpSettings(scheme, host, port or DEFAULT_PORTS[scheme], username, password, float(timeout_s))


@dataclass(frozen=True)
class SendOutcome:
    """What became of one message to one recipient. ``error`` is short and of a fixed form (the reply code
    and the server's text without addresses, or ``connection refused``, ``timeout``, ``disconnected``...):
    it is stored and shown, so it never holds the body or the recipient."""

    status: str
    code: int | None = None
    error: str | None = None


class _Refused(Exception):
    """A reply that ends the transaction: which stage answered what."""

    def __init__(self, stage: str, code: int, text: bytes | str):
        self.stage, self.code, self.text = stage, code, text
        super().__init__(stage, code)


class _ConfigurationRefused(Exception):
    """The server refused the session itself (greeting, EHLO, STARTTLS, AUTH): soft, with this reason."""

    def __init__(self, reason: str, code: int | None = None):
        self.reason, self.code = reason, code
        super().__init__(reason)


def reply_error(code: int, text: bytes | str) -> str:
    """``"550 mailbox unavailable"``: the code and the server's text on one line, cut to 200 characters,
    with every e-mail address in it replaced by ``<address>``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _ADDRESS.sub("<address>", " ".join(text.split()))
    return f"{code} {text}".strip()[:ERROR_TEXT_LIMIT]


def classify(code: int, text: bytes | str) -> SendOutcome:
    """A final reply to the transaction: 2xx sent, 4xx soft, 5xx hard (anything else: soft, unexpected)."""
    if 200 <= code < 300:
        return SendOutcome(SENT, code)
    if 500 <= code < 600:
        return SendOutcome(HARD_FAILED, code, reply_error(code, text))
    return SendOutcome(SOFT_FAILED, code, reply_error(code, text))


def _timed_out(exc: BaseException) -> bool:
    """smtplib reports a reply that never came as "disconnected", the timeout being its context."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _connection_error(exc: BaseException) -> str:
    """A fixed-form reason for a connection-level failure (never the exception's text: it may quote a host's
    reply or an address)."""
    if _timed_out(exc):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError, EOFError)):
        return "disconnected"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls certificate not trusted"
    if isinstance(exc, ssl.SSLError):
        return "tls error"
    if isinstance(exc, socket.gaierror):
        return "host not found"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"connection error ({errno.errorcode.get(exc.errno, exc.errno)})"
    return f"connection error ({type(exc).__name__})"


class SmtpMailer:
    """Sends over up to ``pool_size`` open connections, one caller per connection at a time."""

    def __init__(self, settings: SmtpSettings, *, pool_size: int = 4) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.settings = settings
        self._slots = threading.BoundedSemaphore(pool_size)  # green under monkey-patching
        self._idle: deque[smtplib.SMTP] = deque()  # most recently used last: reused first, the others age out
        self._lock = threading.Lock()
        self._closed = False
        self.connections_opened = 0  # for tests and the bench: how many sessions were started

    # -- the pool ---------------------------------------------------------------
    def _take(self) -> smtplib.SMTP | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        _quit(conn)

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when their send ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            _quit(conn)

    # -- sending ----------------------------------------------------------------
    def send(self, message: EmailMessage, *, sender: str, to: str) -> SendOutcome:
        """Hand ``message`` to the server for ``to`` (envelope sender ``sender``); never raises for what the
        server or the network did: the outcome says it."""
        data = message.as_bytes(policy=SMTP_POLICY)
        with self._slots:
            outcome = self._send(data, sender, to)
        log.info("smtp_send", outcome=outcome.status, code=outcome.code)
        return outcome

    def _send(self, data: bytes, sender: str, to: str) -> SendOutcome:
        conn = self._take()
        reused = conn is not None
        while True:
            if conn is None:
                try:
                    conn = self._connect()
                except _ConfigurationRefused as exc:
                    return SendOutcome(SOFT_FAILED, exc.code, exc.reason)
                except (OSError, smtplib.SMTPException, EOFError) as exc:
                    return SendOutcome(SOFT_FAILED, None, _connection_error(exc))
            try:
                outcome = self._transaction(conn, data, sender, to, reused=reused)
            except _StaleConnection:
                _drop(conn)
                conn = None
                if reused:  # a pooled connection the server had closed: one attempt on a fresh one
                    reused = False
                    continue
                return SendOutcome(SOFT_FAILED, None, "disconnected")
            except _Refused as exc:
                outcome = classify(exc.code, exc.text)
                if exc.stage == "MAIL" and outcome.status == HARD_FAILED:
                    # MAIL FROM names our sender, not the recipient: a 5xx there (530 authentication required,
                    # 553 sender not allowed) is the configuration's fault, like AUTH's, and must not put the
                    # recipient's address on the suppression list
                    outcome = SendOutcome(SOFT_FAILED, exc.code, outcome.error)
                if exc.code == 421 or not _reset(conn):  # 421: the server is closing the channel
                    _drop(conn)
                else:
                    self._give_back(conn)
                return outcome
            except (OSError, smtplib.SMTPException, EOFError) as exc:
                _drop(conn)
                return SendOutcome(SOFT_FAILED, None, _connection_error(exc))
            self._give_back(conn)
            return outcome

    def _transaction(self, conn: smtplib.SMTP, data: bytes, sender: str, to: str, *, reused: bool) -> SendOutcome:
        options: list[str] = []
        if not (sender + to).isascii():  # an internationalised address travels only where SMTPUTF8 is spoken
            if not conn.has_extn("smtputf8"):
                return SendOutcome(HARD_FAILED, None, "address needs SMTPUTF8, which the server lacks")
            options.append("SMTPUTF8")
        try:
            code, text = conn.mail(sender, options)
        except (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            if _timed_out(exc):  # a hung server, not a closed connection: another try would hang as long
                raise
            raise _StaleConnection from exc
        if code == 421 and reused:  # a server closing an idle session says 421 first (postfix: "timeout exceeded")
            raise _StaleConnection
        if code != 250:
            raise _Refused("MAIL", code, text)
        code, text = conn.rcpt(to)
        if code not in (250, 251):
            raise _Refused("RCPT", code, text)
        code, text = conn.data(data)
        if not 200 <= code < 300:
            raise _Refused("DATA", code, text)
        return SendOutcome(SENT, code)

    def _connect(self) -> smtplib.SMTP:
        """A new session: connected, greeted, TLS as the scheme says, logged in. Raises on failure."""
        s = self.settings
        timeout = s.timeout_s
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        try:
            if s.scheme == "smtps":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=context)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=timeout)
        except smtplib.SMTPConnectError as exc:  # a greeting other than 220
            raise _ConfigurationRefused(f"greeting refused: {reply_error(exc.smtp_code, exc.smtp_error)}",
                                        exc.smtp_code) from None
        self.connections_opened += 1
        try:
            code, text = conn.ehlo()
            if not 200 <= code < 300:
                code, text = conn.helo()
                if not 200 <= code < 300:
                    raise _ConfigurationRefused(f"helo refused: {reply_error(code, text)}", code)
            if s.scheme == "smtp+starttls":
                if not conn.has_extn("starttls"):
                    raise _ConfigurationRefused("starttls unavailable")
                code, text = conn.starttls(context=context)
                if code != 220:  # smtplib raises on refusal in most versions; belt and braces
                    raise _ConfigurationRefused(f"starttls refused: {reply_error(code, text)}", code)
                conn.ehlo()
            if s.username is not None:
                _login(conn, s.username, s.password or "")
        except smtplib.SMTPServerDisconnected:  # (every SMTPException is an OSError: the order matters)
            _drop(conn)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _quit(conn)
            raise _ConfigurationRefused(f"auth refused: {reply_error(exc.smtp_code, exc.smtp_error)}",
                                        exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError:
            _quit(conn)
            raise _ConfigurationRefused("auth unavailable") from None
        except smtplib.SMTPResponseException as exc:  # STARTTLS refused, HELO refused...
            _quit(conn)
            raise _ConfigurationRefused(f"session refused: {reply_error(exc.smtp_code, exc.smtp_error)}",
                                        exc.smtp_code) from None
        except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism in common
            _quit(conn)
            raise _ConfigurationRefused(f"session refused ({type(exc).__name__})") from None
        except (OSError, EOFError):
            _drop(conn)
            raise
        except BaseException:
            _drop(conn)
            raise
        return conn


# one mechanism, tried once (smtplib's login() tries every one in turn: three failures a login for a wrong
# password, which some providers count towards locking the account)
AUTH_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("AUTH")
    offered = conn.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in AUTH_MECHANISMS if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPException("no AUTH mechanism in common")
    conn.user, conn.password = username, password
    authenticate = getattr(conn, "auth_" + mechanism.lower().replace("-", "_"))
    code, text = conn.auth(mechanism, authenticate, initial_response_ok=True)
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, text)


class _StaleConnection(Exception):
    """The first command of a transaction found the connection closed."""


def _reset(conn: smtplib.SMTP) -> bool:
    """RSET after a refused transaction, so the connection can carry the next one; False if it cannot."""
    try:
        code, _ = conn.rset()
    except (OSError, smtplib.SMTPException, EOFError):
        return False
    return code == 250


def _drop(conn: smtplib.SMTP) -> None:
    """Close a connection that failed (no QUIT: it may never answer)."""
    try:
        conn.close()
    except OSError:
        pass


def _quit(conn: smtplib.SMTP) -> None:
    """QUIT politely when the connection still answers (bounded by its timeout), then close it."""
    try:
        if conn.sock is not None:
            conn.quit()
    except (OSError, smtplib.SMTPException, EOFError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass
