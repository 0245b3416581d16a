"""Liveness and readiness probes of a service process, for Kubernetes (issue 16).

With ``UPGESTAO_PROBE_ADDRESS=host:port`` (validated at start; unset or empty: no listener, the default),
every ``run`` and ``relay`` process answers on that address:

- ``GET /livez``: 200 while the process is alive and its event loop turns. The answer comes from a green
  thread of the process's own hub: a hub that is blocked does not answer, and the kubelet's timeout fires.
- ``GET /readyz``: 200 only when the process can do its job (``run``, ``nameko_ext.readiness``: the nameko
  container is started, every broker connection of its consumers is up and its database answers a
  ``SELECT 1``; ``relay``: its last
  pass over the outbox completed within :data:`RELAY_MAX_PASS_AGE_S` and its broker connection is up);
  503 otherwise, with a small JSON body naming the failing checks (a fixed reason or an error's type, never a
  message, so no personal data and no stack trace).
- any other path: 404; another method: 405. ``HEAD`` is a ``GET`` without the body.

The listener is tiny: one green socket, at most :data:`MAX_CONNECTIONS` requests served at once (more are
closed at once), a request read within :data:`READ_TIMEOUT_S`, ``Connection: close``, nothing logged per
probe. A database check is cached for :data:`DATABASE_CHECK_TTL_S` so probes cannot load the database.

The image's health check needs no service code::

    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9000/livez', timeout=2)"

or ``python -m upgestao_<svc> probe livez`` (``readyz``), which reads the same variable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from .logging import get_logger
from .side_port import SidePortListener, host_port, http_response, request_line

log = get_logger(__name__)

PROBE_ADDRESS = "UPGESTAO_PROBE_ADDRESS"
MAX_CONNECTIONS = 8
READ_TIMEOUT_S = 2.0
DATABASE_CHECK_TTL_S = 1.5
DATABASE_CHECK_TIMEOUT_S = 2.0
RELAY_MAX_PASS_AGE_S = 30.0

# (check name, problem): problem None when the check passed
Check = tuple[str, "str | None"]
Readiness = Callable[[], Sequence[Check]]


def probe_address(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """``UPGESTAO_PROBE_ADDRESS`` as ``(host, port)``; ``None`` when unset or empty. ``[::]:9000`` for IPv6."""
    return host_port(PROBE_ADDRESS, environ.get(PROBE_ADDRESS), "0.0.0.0:9000")


# -- the listener ----------------------------------------------------------------------------------------

class ProbeServer(SidePortListener):
    """The HTTP listener: ``/livez`` and ``/readyz`` (see the module), in green threads of this process."""

    def __init__(self, address: tuple[str, int], readiness: Readiness, *,
                 max_connections: int = MAX_CONNECTIONS, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        super().__init__(address, PROBE_ADDRESS, lambda head: respond(head, readiness), "probes",
                         max_connections=max_connections, read_timeout_s=read_timeout_s)
        self.readiness = readiness


def respond(request: bytes, readiness: Readiness) -> bytes:
    """The whole HTTP/1.1 response to a request's head (``request``), ``Connection: close``."""
    line = request_line(request)
    if line is None:
        return _response(400, {"status": "bad request"}, head=False)
    method, path = line
    if path not in ("/livez", "/readyz"):
        return _response(404, {"status": "not found"}, head=method == "HEAD")
    if method not in ("GET", "HEAD"):
        return _response(405, {"status": "method not allowed"}, head=False, extra="Allow: GET, HEAD\r\n")
    if path == "/livez":
        return _response(200, {"status": "alive"}, head=method == "HEAD")
    status, body = readiness_answer(readiness)
    return _response(status, body, head=method == "HEAD")


def readiness_answer(readiness: Readiness) -> tuple[int, dict]:
    """``(200, {"status": "ready"})`` or ``(503, {"status": "not ready", "failing": {check: problem}})``."""
    try:
        checks = list(readiness())
    except Exception as exc:  # a check that breaks says so by its type, never its message
        checks = [("probe", f"failed ({type(exc).__name__})")]
    failing = {name: problem for name, problem in checks if problem is not None}
    if failing:
        return 503, {"status": "not ready", "failing": failing}
    return 200, {"status": "ready"}


def _response(status: int, body: dict, *, head: bool, extra: str = "") -> bytes:
    return http_response(status, json.dumps(body, sort_keys=True).encode(), "application/json", head=head,
                         extra=extra)


# -- the checks ------------------------------------------------------------------------------------------

class CachedCheck:
    """``check()`` (a problem or ``None``) run at most once per ``ttl_s``; callers meanwhile get its last
    answer, and one at a time runs it."""

    def __init__(self, check: Callable[[], str | None], ttl_s: float = DATABASE_CHECK_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: str | None = None
        self._at: float | None = None

    def __call__(self) -> str | None:
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at >= self._ttl_s:
                self._answer = self._check()
                self._at = self._clock()
            return self._answer


def database_problem(engine, timeout_s: float = DATABASE_CHECK_TIMEOUT_S) -> str | None:
    """``SELECT 1`` on ``engine`` within ``timeout_s`` (green: PostgreSQL through psycogreen): ``None`` when
    it answered, else why not (the error's type only)."""
    import eventlet
    import sqlalchemy as sa

    timeout = eventlet.Timeout(timeout_s)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except eventlet.Timeout as exc:
        if exc is not timeout:
            raise
        return f"no answer within {timeout_s:g} s"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        timeout.cancel()
    return None


class RelayReadiness:
    """Readiness of ``relay``: its last pass over the outbox completed within ``max_pass_age_s`` (a loop stuck
    without failing shows here), its last passes did not fail (a pass reads the database, and publishes when
    rows wait), and the broker connection it holds is up (an idle relay holds none until rows come)."""

    def __init__(self, relay, max_pass_age_s: float = RELAY_MAX_PASS_AGE_S,
                 clock: Callable[[], float] = time.monotonic, loops: Sequence = ()) -> None:
        """``loops``: the threads of the service's other publishing loops (``relay_loops``: privacy's audit
        stream); one that ended while the relay runs is a check that fails."""
        self.relay = relay
        self.max_pass_age_s = max_pass_age_s
        self._clock = clock
        self.loops = tuple(loops)

    def __call__(self) -> list[Check]:
        last = self.relay.last_pass_at
        if last is None:
            outbox = "no pass yet"
        elif self._clock() - last > self.max_pass_age_s:
            outbox = f"no pass for more than {self.max_pass_age_s:g} s"
        else:
            outbox = None
        failures = self.relay.failures
        ended = sorted(thread.name for thread in self.loops if not thread.is_alive())
        return [("outbox", outbox),
                ("passes", f"{failures} failed in a row" if failures else None),
                ("broker", "not connected" if self.relay.broker_connected is False else None),
                ("loops", f"ended: {', '.join(ended)}" if ended else None)]


# -- the image's health check ----------------------------------------------------------------------------

def probe(address: tuple[str, int], path: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """``GET path`` on a local probe listener: ``(status, body)``; a wildcard host is asked on loopback."""
    import http.client

    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address[0], address[0])
    connection = http.client.HTTPConnection(host, address[1], timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()
