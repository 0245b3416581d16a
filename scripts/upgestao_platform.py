"""Start the whole UpGestão platform as processes (stdlib only).

One :class:`Platform` owns, for one data directory:

* ``python -m <pkg> migrate`` for every service (before anything starts);
* ``python -m <pkg> run`` and ``python -m <pkg> relay`` for every service,
  each writing stdout+stderr to ``<data_dir>/logs/<name>.log`` where
  ``<name>`` is ``identity``, ``identity-relay``, ... ``gateway-relay``;
* a lock file ``<data_dir>/platform.pid`` (``flock``), so a second platform
  on the same data directory is refused while the first one runs.

Two platforms with different data directories, AMQP vhosts and gateway
addresses do not interfere. A vhost other than ``/`` is created through the
RabbitMQ management API when it does not exist (without the API, a vhost that
exists is found over AMQP and used).

Each service and its relay connect as the service's own broker user
(``upgestao.<service>`` on ``/``, ``<vhost>.<service>`` elsewhere) with the
permissions of ``upgestao_kernel.broker_permissions`` (:meth:`Platform.provision_broker`):
created through the management API, else ``rabbitmqctl``; their random passwords are
kept in ``<data_dir>/broker-users.json`` (0600) and reused (a user whose password the
file lost gets a new one). ``upgestao.unrouted`` is declared and bounded by its policy.
When neither can create users outside production, every process runs on the given
``AMQP_URI``, said loudly (``UPGESTAO_BROKER_SHARED_USER=1``: the audit log cannot tell
services apart then). ``Platform.broker_uris`` holds each service's URI.

Unless ``SMTP_URL`` is given (and never in production), a local SMTP sink is started before the
services, as a supervised child like them (``mail-sink``: ``python -m upgestao_notifier sink``): it
keeps every message as an ``.eml`` file in ``<data_dir>/mail/``, and the notifier gets
``SMTP_URL=smtp://127.0.0.1:<port>`` and ``NOTIFIER_ACCEPTED_LOOKUP_DIR=<data_dir>/mail``. The port is
``smtp_sink_port`` (``make up``: 1025, or ``UPGESTAO_SMTP_SINK_PORT``), a taken port refused plainly;
a platform started from code (tests, benchmarks) gets a free one unless told otherwise.

Used by ``scripts/platformctl.py`` (``make up``), by ``bench/run.py`` and by
the end-to-end tests::

    from upgestao_platform import Platform, free_address

    with Platform(data_dir=tmp, amqp_uri=uri, http_address=free_address()) as p:
        requests.get(p.url + "/v1/ping")
        p.kill("identity")              # SIGKILL one process
        p.restart("identity")           # and start it again

Importing: add ``scripts/`` to ``sys.path`` or load this file with
``importlib`` (as ``tests/conftest.py`` does).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8000"
DEFAULT_DATA_DIR = "var"
LOCK_FILE = "platform.pid"
# the audit log's database roles (provision_database_roles): its owner migrates, a runtime role runs it
AUDIT_LOG_SERVICE = "privacy"
RUNTIME_DATABASE_VAR = "PRIVACY_DATABASE_URL"
MIGRATION_DATABASE_VAR = "PRIVACY_MIGRATION_DATABASE_URL"
BROKER_USERS_FILE = "broker-users.json"
CONFIG_ERROR_EXIT = 2  # upgestao_kernel.cli: a process stopped by its configuration (never restarted)
SHARED_USER_ENV = "UPGESTAO_BROKER_SHARED_USER"  # upgestao_kernel.broker_permissions.SHARED_USER_ENV
# the local SMTP sink (``python -m upgestao_notifier sink``): started unless SMTP_URL is given
MAIL_SINK = "mail-sink"  # its process and log name
# the integrations service's SSRF guard refuses loopback unless allowed: a local run (never production) allows it,
# so that a webhook receiver on this machine can be tried; UPGESTAO_WEBHOOK_ALLOWED_NETWORKS given wins
WEBHOOK_NETWORKS_ENV = "UPGESTAO_WEBHOOK_ALLOWED_NETWORKS"
METRICS_SUFFIX, RELAY_METRICS_SUFFIX = "_METRICS_ADDRESS", "_RELAY_METRICS_ADDRESS"  # upgestao_kernel.metrics
# every process's /metrics address, for a Prometheus (file_sd format; `make up` writes it, `make observe` reads it)
METRICS_TARGETS_FILE = "metrics-targets.json"
METRICS_JOB = "upgestao"  # the targets' job label, as in Kubernetes (deploy/k8s/base/monitoring.yaml)
PROBE_ADDRESS_ENV = "UPGESTAO_PROBE_ADDRESS"  # upgestao_kernel.probes: set per pod, never for make up's processes
LOCAL_WEBHOOK_NETWORKS = "127.0.0.0/8,::1/128"
MAIL_SERVICE = "notifier"  # the service that sends mail (and owns the sink command)
SINK_HOST = "127.0.0.1"
DEFAULT_SINK_PORT = 1025  # make up's
SINK_PORT_ENV = "UPGESTAO_SMTP_SINK_PORT"
SMTP_URL_ENV = "SMTP_URL"
ACCEPTED_LOOKUP_ENV = "NOTIFIER_ACCEPTED_LOOKUP_DIR"  # the notifier asks the sink's files what it accepted
MAIL_DIR = "mail"


# Every service's pyproject.toml declares its definition in this entry-point group
# (``identity = "upgestao_identity.definition:DEFINITION"``): the one list of the services.
SERVICE_GROUP = "upgestao.services"
HTTP_SERVICE = "gateway"  # the HTTP front door: its port is checked, its /readyz awaited, it stops first


@dataclass(frozen=True)
class Service:
    name: str  # nameko service name, also the log and process name
    package: str  # python -m <package> <command>


def installed_services() -> tuple[Service, ...]:
    """The services installed (``make venv``), read from their entry points without importing them
    (this script is stdlib only): from this interpreter's path and the repository's virtualenv, which
    runs them. By name, the HTTP front door last."""
    venv_site = sorted(str(path) for path in (ROOT / ".venv" / "lib").glob("python*/site-packages"))
    found: dict[str, Service] = {}
    for distribution in importlib.metadata.distributions(path=[*sys.path, *venv_site]):
        for entry_point in distribution.entry_points:
            if entry_point.group == SERVICE_GROUP:
                found.setdefault(entry_point.name, Service(entry_point.name, entry_point.module.partition(".")[0]))
    return tuple(sorted(found.values(), key=lambda service: (service.name == HTTP_SERVICE, service.name)))


SERVICES: tuple[Service, ...] = installed_services()
SERVICE_NAMES = tuple(s.name for s in SERVICES)


class PlatformError(Exception):
    """The platform cannot start (or went down); the message says why."""


# -- small helpers ------------------------------------------------------------


def default_python() -> str:
    """The repository's virtualenv if there is one, else this interpreter."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def env_prefix(service: str) -> str:
    """``integration-gateway`` -> ``INTEGRATION_GATEWAY`` (``upgestao_kernel.config.env_prefix``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", service).upper()


def metrics_variable(process: str) -> str:
    """The variable of a process's ``/metrics`` address: ``identity`` -> ``IDENTITY_METRICS_ADDRESS``,
    ``identity-relay`` -> ``IDENTITY_RELAY_METRICS_ADDRESS``."""
    if process.endswith("-relay"):
        return env_prefix(process.removesuffix("-relay")) + RELAY_METRICS_SUFFIX
    return env_prefix(process) + METRICS_SUFFIX


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise PlatformError(f"HTTP address {address!r}: expected host:port, e.g. 127.0.0.1:8000")
    return host.strip("[]") or "127.0.0.1", int(port)


def _load_listen_ports():
    """``upgestao_kernel/listen_ports.py`` (stdlib only), loaded by its path: this script imports no package."""
    name = "upgestao_kernel_listen_ports"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "kernel/src/upgestao_kernel/listen_ports.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def free_address(host: str = "127.0.0.1") -> str:
    """``host:port`` with a port free now, outside the ephemeral range and reserved on this machine for a while
    (``upgestao_kernel.listen_ports``): no outgoing connection and no other platform takes it before the
    process it is meant for listens on it."""
    return f"{host}:{_load_listen_ports().free_port(host)}"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def tcp_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redact_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def vhost_of(amqp_uri: str) -> str:
    """The vhost an AMQP URI names (kombu's convention: empty path = ``/``)."""
    path = urlsplit(amqp_uri).path
    return "/" if path in ("", "/") else unquote(path[1:])


def amqp_uri_with_vhost(amqp_uri: str, vhost: str) -> str:
    parts = urlsplit(amqp_uri)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URL
            return response.status, response.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


_EVENTLET_NOISE = re.compile(r"^.*EventletDeprecationWarning:.*?\n\s*import eventlet\n", re.DOTALL | re.MULTILINE)


def clean_output(text: str, lines: int = 25) -> str:
    """The tail of a process's output without eventlet's deprecation banner."""
    text = _EVENTLET_NOISE.sub("", text)
    return "\n".join(text.strip().splitlines()[-lines:])


def tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return clean_output(f.read().decode("utf-8", "replace"), lines)
    except OSError:
        return ""


# -- RabbitMQ management API --------------------------------------------------


class RabbitAdmin:
    """The few management-API calls the platform and the bench need."""

    def __init__(self, amqp_uri: str = DEFAULT_AMQP_URI, api_url: str | None = None):
        amqp = urlsplit(amqp_uri)
        api_url = api_url or os.environ.get("RABBITMQ_MANAGEMENT_URL") or f"http://{amqp.hostname or '127.0.0.1'}:15672"
        api = urlsplit(api_url)
        self.base = urlunsplit((api.scheme, api.hostname + (f":{api.port}" if api.port else ""), "", "", ""))
        self.user = unquote(api.username or amqp.username or "guest")
        self.password = unquote(api.password or amqp.password or "guest")
        self.amqp_user = unquote(amqp.username or "guest")

    def request(self, method: str, path: str, body: object | None = None, timeout: float = 10.0) -> tuple[int, str]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def answers(self) -> bool:
        try:
            return self.request("GET", "/api/overview", timeout=3)[0] == 200
        except OSError:
            return False

    def vhost_exists(self, vhost: str) -> bool:
        status, body = self.request("GET", f"/api/vhosts/{quote(vhost, safe='')}")
        if status == 200:
            return True
        if status == 404:
            return False
        raise PlatformError(f"RabbitMQ management API {self.base}: GET vhost {vhost!r} answered {status}: {body[:200]}")

    def create_vhost(self, vhost: str) -> None:
        for path, body in (
            (f"/api/vhosts/{quote(vhost, safe='')}", None),
            (
                f"/api/permissions/{quote(vhost, safe='')}/{quote(self.amqp_user, safe='')}",
                {"configure": ".*", "write": ".*", "read": ".*"},
            ),
        ):
            status, text = self.request("PUT", path, body)
            if status not in (200, 201, 204):
                raise PlatformError(f"RabbitMQ management API {self.base}: PUT {path} answered {status}: {text[:200]}")

    def delete_vhost(self, vhost: str) -> None:
        """The vhost and its platform's broker users (``<vhost>.<service>``: they serve no other vhost)."""
        status, text = self.request("DELETE", f"/api/vhosts/{quote(vhost, safe='')}")
        if status not in (200, 204, 404):
            raise PlatformError(f"RabbitMQ management API {self.base}: DELETE vhost answered {status}: {text[:200]}")
        prefix = platform_prefix(vhost) + "."
        if vhost in ("", "/"):
            return
        status, text = self.request("GET", "/api/users")
        if status == 200:
            for user in json.loads(text):
                if user.get("name", "").startswith(prefix):
                    self.delete_user(user["name"])

    def put(self, path: str, body: object | None) -> None:
        status, text = self.request("PUT", path, body)
        if status not in (200, 201, 204):
            raise PlatformError(f"RabbitMQ management API {self.base}: PUT {path} answered {status}: {text[:200]}")

    def provision_user(self, vhost: str, grants: Mapping, password: str) -> None:
        """Create (or update) one service's user: its password, permissions and topic permissions."""
        user, where = quote(grants["user"], safe=""), f"{quote(vhost, safe='')}/{quote(grants['user'], safe='')}"
        self.put(f"/api/users/{user}", {"password": password, "tags": ""})
        self.put(f"/api/permissions/{where}",
                 {"configure": grants["configure"], "write": grants["write"], "read": grants["read"]})
        for topic in grants["topics"]:
            self.put(f"/api/topic-permissions/{where}",
                     {"exchange": topic["exchange"], "write": topic["write"], "read": topic["read"]})

    def set_policy(self, vhost: str, policy: Mapping) -> None:
        body = {key: value for key, value in policy.items() if key != "name"}
        self.put(f"/api/policies/{quote(vhost, safe='')}/{quote(policy['name'], safe='')}", body)

    def delete_user(self, user: str) -> None:
        status, text = self.request("DELETE", f"/api/users/{quote(user, safe='')}")
        if status not in (200, 204, 404):
            raise PlatformError(f"RabbitMQ management API {self.base}: DELETE user answered {status}: {text[:200]}")

    def may_administer(self) -> bool:
        """The API answers and lets this user manage users (an ``administrator``)."""
        try:
            return self.request("GET", "/api/users", timeout=3)[0] == 200
        except OSError:
            return False


def platform_prefix(vhost: str) -> str:
    """The prefix of a vhost's broker user names: ``upgestao_kernel.broker_identity.platform_prefix``
    (this script imports nothing of the platform; tests/test_platform_broker_users.py checks both agree)."""
    vhost = (vhost or "/").strip("/")
    return re.sub(r"[^A-Za-z0-9_-]", "_", vhost) if vhost else "upgestao"


def rabbitmqctl_provision(vhost: str, table: Mapping, passwords: Mapping[str, str]) -> None:
    """The same as the management API, through ``rabbitmqctl`` (the broker's own host, as root or the
    broker's user). Raises ``PlatformError`` when a step fails."""
    def ctl(*args: str, input_text: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> None:
        result = subprocess.run(["rabbitmqctl", *args], input=input_text, capture_output=True, text=True, timeout=60)
        if result.returncode not in ok_codes:
            raise PlatformError(f"rabbitmqctl {args[0]} failed: {clean_output(result.stderr or result.stdout, 3)}")

    existing = subprocess.run(["rabbitmqctl", "list_users", "--quiet", "--no-table-headers"], capture_output=True,
                              text=True, timeout=60)
    if existing.returncode != 0:
        raise PlatformError(f"rabbitmqctl list_users failed: {clean_output(existing.stderr, 3)}")
    known = {line.split()[0] for line in existing.stdout.splitlines() if line.strip()}
    for grants in table["users"]:
        user = grants["user"]
        if user in known:  # the password from stdin, never on the command line (ps shows it)
            ctl("change_password", user, input_text=passwords[user] + "\n")
        else:
            ctl("add_user", user, input_text=passwords[user] + "\n")
        ctl("set_permissions", "-p", vhost, user, grants["configure"], grants["write"], grants["read"])
        for topic in grants["topics"]:
            ctl("set_topic_permissions", "-p", vhost, user, topic["exchange"], topic["write"], topic["read"])
    policy = table["unrouted_policy"]
    ctl("set_policy", "-p", vhost, "--apply-to", policy["apply-to"], "--priority", str(policy["priority"]),
        policy["name"], policy["pattern"], json.dumps(policy["definition"]))


def ensure_vhost(amqp_uri: str, echo: Callable[[str], None] = lambda _: None,
                 probe: Callable[[str], str | None] | None = None) -> None:
    """Make sure the vhost of ``amqp_uri`` exists (creating it via the management API). Without the
    API, ``probe(amqp_uri)`` (None: the vhost answers over AMQP; else why not) decides: a vhost that
    exists is used as it is."""
    parts = urlsplit(amqp_uri)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if not tcp_answers(host, port):
        raise PlatformError(
            f"RabbitMQ does not answer at {host}:{port} (AMQP_URI={redact_uri(amqp_uri)}).\n"
            "  Start it, e.g. `rabbitmq-server -detached`, or point AMQP_URI at your broker."
        )
    vhost = vhost_of(amqp_uri)
    if vhost == "/":
        return
    admin = RabbitAdmin(amqp_uri)
    try:
        exists = admin.vhost_exists(vhost)
    except OSError as exc:
        why_not = probe(amqp_uri) if probe is not None else "not probed"
        if why_not is None:
            echo(f"RabbitMQ management API at {admin.base} does not answer; vhost {vhost!r} exists (AMQP): using it")
            return
        raise PlatformError(
            f"RabbitMQ vhost {vhost!r} (from AMQP_URI) cannot be checked or created: the management API at "
            f"{admin.base} does not answer ({getattr(exc, 'reason', exc)}).\n"
            "  Enable it (`rabbitmq-plugins enable rabbitmq_management`, or set RABBITMQ_MANAGEMENT_URL),\n"
            f"  or create the vhost yourself: rabbitmqctl add_vhost {vhost} && "
            f"rabbitmqctl set_permissions -p {vhost} {admin.amqp_user} '.*' '.*' '.*'\n"
            "  and start with UPGESTAO_SKIP_VHOST_CHECK=1."
        ) from None
    if not exists:
        admin.create_vhost(vhost)
        echo(f"created RabbitMQ vhost {vhost!r} (management API {admin.base})")


# -- the data-directory lock ---------------------------------------------------


class DataDirLock:
    """``flock`` on ``<data_dir>/platform.pid``; the file holds the owner's pid."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, url: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = self.owner()
            raise PlatformError(
                f"another platform{f' (pid {owner})' if owner else ''} is already running on data dir "
                f"{self.path.parent}: stop it (`scripts/platformctl.py stop --data-dir {self.path.parent}`) "
                "or use another UPGESTAO_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{url}\n".encode())
        os.set_inheritable(fd, False)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def url(self) -> str:
        """The gateway URL the running platform wrote next to its pid ("" if none)."""
        try:
            lines = self.path.read_text().split("\n")
        except OSError:
            return ""
        return lines[1].strip() if len(lines) > 1 else ""

    def owner(self) -> int | None:
        """The pid of the running platform on this data dir, or None."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 64).decode().split("\n")[0].strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)



# -- supervision ----------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """When the supervisor restarts a dead child, and when it gives up.

    A child that dies is started again after a delay: ``initial_delay_s``,
    doubled at every further death up to ``max_delay_s``; a child that stayed up
    ``reset_after_s`` starts over at ``initial_delay_s``. ``crash_limit`` deaths
    of one child within ``crash_window_s`` is a crash loop: the supervisor gives up.
    """

    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    reset_after_s: float = 60.0
    crash_limit: int = 5
    crash_window_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay_s <= self.max_delay_s:
            raise ValueError("need 0 < initial_delay_s <= max_delay_s")
        if self.crash_limit < 1 or self.crash_window_s <= 0 or self.reset_after_s <= 0:
            raise ValueError("crash_limit, crash_window_s and reset_after_s must be positive")


@dataclass
class ChildBackoff:
    """One child's restart history under a :class:`RestartPolicy` (no processes: times are given)."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restarts: int = 0  # restarts so far (for the console)
    delay_s: float | None = None  # the last delay used; None: the next one is the initial delay
    deaths: deque = field(default_factory=deque)  # monotonic times of the deaths within the crash window

    def died(self, now: float, up_since: float) -> float | None:
        """A death at ``now`` of a child started at ``up_since``: the delay before restarting it,
        or None when this death makes a crash loop (give up)."""
        policy = self.policy
        if now - up_since >= policy.reset_after_s:
            self.delay_s = None
        self.deaths.append(now)
        while self.deaths and self.deaths[0] <= now - policy.crash_window_s:
            self.deaths.popleft()
        if len(self.deaths) >= policy.crash_limit:
            return None
        self.delay_s = policy.initial_delay_s if self.delay_s is None else min(self.delay_s * 2, policy.max_delay_s)
        self.restarts += 1
        return self.delay_s


@dataclass(frozen=True)
class SupervisorEvent:
    """What :meth:`Platform.supervise` did: ``kind`` is ``died`` (restart scheduled),
    ``restarted`` or ``gave_up`` (a crash loop; the platform should stop)."""

    kind: str
    name: str
    message: str
    returncode: int | None = None
    delay_s: float | None = None
    restart: int = 0
    pid: int | None = None
    at: float = 0.0  # time.monotonic()


def describe_returncode(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


# -- children ------------------------------------------------------------------


def _parent_death_signal() -> Callable[[], None] | None:
    """preexec_fn: the child gets SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


_PREEXEC = _parent_death_signal()


class Platform:
    """Every service and relay of the platform as child processes."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        amqp_uri: str | None = None,
        http_address: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        services: Iterable[str] | None = None,
        relays: bool = True,
        python: str | None = None,
        migrate: bool = True,
        check_config: bool = True,
        restart_policy: RestartPolicy | None = None,
        echo: Callable[[str], None] | None = None,
        smtp_sink_port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir or os.environ.get("UPGESTAO_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
        self.amqp_uri = amqp_uri or os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI
        self.http_address = http_address or os.environ.get("GATEWAY_HTTP_ADDRESS") or DEFAULT_HTTP_ADDRESS
        self.extra_env = dict(env or {})
        if not SERVICES:
            raise PlatformError(f"no service installed (no entry point in {SERVICE_GROUP}): run `make venv`")
        names = list(services) if services is not None else list(SERVICE_NAMES)
        unknown = sorted(set(names) - set(SERVICE_NAMES))
        if unknown:
            raise PlatformError(f"unknown services {unknown}: choose from {', '.join(SERVICE_NAMES)}")
        self.services = [s for s in SERVICES if s.name in names]
        self.relays = relays
        self.python = python or default_python()
        self.run_migrations = migrate
        self.run_check_config = check_config
        self.restart_policy = restart_policy or RestartPolicy()
        self.echo = echo or (lambda _msg: None)
        self.log_dir = self.data_dir / "logs"
        self.children: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, list[str]] = {}
        self._logs: dict[str, object] = {}
        # supervision: when each child was (re)started, its restart history, the restarts due
        self._up_since: dict[str, float] = {}
        self._backoff: dict[str, ChildBackoff] = {}
        self._restart_due: dict[str, float] = {}
        self._given_up: set[str] = set()
        self._stopped = False  # after stop(): supervise() does nothing
        self._supervision = threading.RLock()  # supervise() may run in another thread than stop()/restart()
        self._lock = DataDirLock(self.data_dir)
        split_address(self.http_address)  # validate early
        # privacy's database roles (provision_database_roles): what its processes and its migrations get
        self.runtime_database_env: dict[str, str] = {}
        self.migration_env: dict[str, str] = {}
        self.database_roles_created: list[str] = []
        # each service's AMQP URI with its own broker user (provision_broker); the users created here
        self.broker_uris: dict[str, str] = {}
        self.broker_users_created: list[str] = []
        self.shared_broker_user = False
        # the local SMTP sink (plan_mail_sink): the port asked for (None: UPGESTAO_SMTP_SINK_PORT, else a free
        # one), where it listens once planned (None: SMTP_URL given, no notifier, or production), what the
        # notifier's processes get
        self.smtp_sink_port = smtp_sink_port
        self.sink_address: str | None = None
        self.mail_env: dict[str, str] = {}
        # where each process serves /metrics (plan_metrics): process name -> host:port, and what they get
        self.metrics_addresses: dict[str, str] = {}
        self.metrics_env: dict[str, str] = {}

    # -- properties ------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = split_address(self.http_address)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{port}"

    @property
    def has_gateway(self) -> bool:
        return any(s.name == HTTP_SERVICE for s in self.services)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def mail_dir(self) -> Path:
        """Where the local SMTP sink keeps the messages (``.eml`` files)."""
        return self.data_dir / MAIL_DIR

    def environment(self, service: str | None = None) -> dict[str, str]:
        """The environment every child gets; ``service``'s own broker URI for that service's processes."""
        env = dict(os.environ)
        # one address for every process would be taken by the first (a container sets it per pod)
        env.pop(PROBE_ADDRESS_ENV, None)
        env.update(
            AMQP_URI=self.amqp_uri,
            UPGESTAO_DATA_DIR=str(self.data_dir),
            GATEWAY_HTTP_ADDRESS=self.http_address,
            PYTHONUNBUFFERED="1",
        )
        if self.has_gateway:  # the links in the mail point at this platform's gateway
            env.setdefault("NOTIFIER_PUBLIC_URL", self.url)
        if self.env_name != "production":  # a local run's webhooks may go to a receiver on this machine
            env.setdefault(WEBHOOK_NETWORKS_ENV, LOCAL_WEBHOOK_NETWORKS)
        env.update(self.metrics_env)  # every process's /metrics address (plan_metrics); each reads its own
        env.update(self.extra_env)
        env.update(self.mail_env)  # SMTP_URL of the local sink, when there is one (plan_mail_sink)
        env.update(self.runtime_database_env)  # privacy runs as its runtime role (provision_database_roles)
        for name in [name for name in env if name.endswith("_MIGRATION_DATABASE_URL")]:
            del env[name]  # an owner's credentials: for the migrations only (migrate), never a running process
        if self.shared_broker_user:
            env[SHARED_USER_ENV] = "1"
        if service is not None and service in self.broker_uris:
            env["AMQP_URI"] = self.broker_uris[service]
        if service == MAIL_SINK:  # the sink talks SMTP only: no broker credentials for it
            env.pop("AMQP_URI", None)
        return env

    @property
    def env_name(self) -> str:
        return self.extra_env.get("UPGESTAO_ENV") or os.environ.get("UPGESTAO_ENV") or "local"

    def _kernel(self, *args: str, amqp_uri: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """``python -m upgestao_kernel.broker_permissions ...`` with the platform's Python (the URI in
        the environment, not on the command line)."""
        env = dict(os.environ, AMQP_URI=amqp_uri or self.amqp_uri)
        return subprocess.run([self.python, "-m", "upgestao_kernel.broker_permissions", *args], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def probe_vhost(self, amqp_uri: str) -> str | None:
        """None when ``amqp_uri``'s vhost answers over AMQP, else why not."""
        result = self._kernel("probe", amqp_uri=amqp_uri)
        return None if result.returncode == 0 else clean_output(result.stderr or result.stdout, 3)

    def _broker_passwords(self, users: Iterable[str]) -> dict[str, str]:
        """The users' passwords from ``<data_dir>/broker-users.json`` (0600), new ones for those it lacks."""
        path = self.data_dir / BROKER_USERS_FILE
        try:
            kept = json.loads(path.read_text())
            kept = kept if isinstance(kept, dict) else {}
        except (OSError, ValueError):
            kept = {}
        passwords = {user: kept[user] if isinstance(kept.get(user), str) and kept[user] else secrets.token_urlsafe(32)
                     for user in users}
        if passwords.items() - kept.items():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({**kept, **passwords}, f, indent=1, sort_keys=True)
            os.chmod(path.with_suffix(".tmp"), 0o600)
            os.replace(path.with_suffix(".tmp"), path)
        return passwords

    def provision_broker(self) -> None:
        """A broker user per service (permissions and topic permissions from the kernel's table), the
        unrouted catch-all and its policy; ``broker_uris`` set. Through the management API, else
        ``rabbitmqctl``; when neither can, outside production, every process shares ``AMQP_URI`` (said
        loudly). Raises PlatformError."""
        vhost = vhost_of(self.amqp_uri)
        names = [s.name for s in self.services]
        result = self._kernel("table", vhost, *names)
        if result.returncode != 0:
            raise PlatformError(f"the broker permission table cannot be read:\n{_indent(clean_output(result.stderr))}")
        table = json.loads(result.stdout)
        declared = self._kernel("declare-shared")
        if declared.returncode != 0:
            raise PlatformError(f"upgestao.unrouted cannot be declared on {redact_uri(self.amqp_uri)}: "
                                f"{clean_output(declared.stderr, 3)}")
        passwords = self._broker_passwords(grants["user"] for grants in table["users"])
        admin = RabbitAdmin(self.amqp_uri)
        how = None
        if admin.may_administer():
            for grants in table["users"]:
                admin.provision_user(vhost, grants, passwords[grants["user"]])
            admin.set_policy(vhost, table["unrouted_policy"])
            how = f"management API {admin.base}"
        elif shutil.which("rabbitmqctl"):
            try:
                rabbitmqctl_provision(vhost, table, passwords)
                how = "rabbitmqctl"
            except (PlatformError, OSError, subprocess.TimeoutExpired) as exc:
                self.echo(f"rabbitmqctl could not create the broker users: {exc}")
        if how is None:
            if self.env_name == "production":
                raise PlatformError(
                    "cannot create the services' broker users: the management API does not let "
                    f"{admin.user!r} manage users and rabbitmqctl is absent or refused.\n"
                    "  In production every service must connect as its own user "
                    "(deploy/k8s/base/rabbitmq-topology.yaml).")
            self.shared_broker_user = True
            self.broker_uris = {name: self.amqp_uri for name in names}
            self.echo("WARNING: " + "!" * 60 + "\n"
                      "WARNING: the services' broker users could not be created (no management API that lets "
                      f"{admin.user!r} manage users, no usable rabbitmqctl):\n"
                      f"WARNING: every process connects as {admin.amqp_user!r}. Any process can then read any "
                      "queue and publish as any service,\n"
                      "WARNING: and the audit log cannot tell services apart. Never run so with real data.\n"
                      "WARNING: " + "!" * 60)
            return
        self.shared_broker_user = False
        parts = urlsplit(self.amqp_uri)
        host = (parts.hostname or "127.0.0.1") + (f":{parts.port}" if parts.port else "")
        for grants in table["users"]:
            user = grants["user"]
            if user not in self.broker_users_created:
                self.broker_users_created.append(user)
            netloc = f"{quote(user, safe='')}:{quote(passwords[user], safe='')}@{host}"
            self.broker_uris[grants["service"]] = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.echo(f"broker users for {', '.join(names)} on vhost {vhost!r} ({how})")

    def remove_broker_users(self) -> None:
        """Delete the users :meth:`provision_broker` created (a test platform's teardown)."""
        admin = RabbitAdmin(self.amqp_uri)
        for user in self.broker_users_created:
            with contextlib.suppress(OSError, PlatformError):
                admin.delete_user(user)
        self.broker_users_created.clear()

    def provision_database_roles(self) -> None:
        """PostgreSQL: privacy's audit log is migrated by its owner and written by a runtime role that may only
        append to it (issue 11, finding 7; ``upgestao_privacy.adapters.database_roles``).

        Given only ``PRIVACY_DATABASE_URL`` (a role that may create roles, as on a developer's PostgreSQL),
        that URL becomes the migrations' (``PRIVACY_MIGRATION_DATABASE_URL``, the owner) and
        ``python -m upgestao_privacy runtime-role`` creates the runtime role (a new password at each start),
        whose URL privacy's processes get; ``migrate`` then grants it. Given both URLs (roles provisioned
        elsewhere), they are used as they are. SQLite: nothing (no roles). Raises PlatformError."""
        self.runtime_database_env.clear()
        self.migration_env.clear()
        privacy = next((s for s in self.services if s.name == AUDIT_LOG_SERVICE), None)
        given = {**os.environ, **self.extra_env}.get(RUNTIME_DATABASE_VAR, "")
        owner = {**os.environ, **self.extra_env}.get(MIGRATION_DATABASE_VAR, "")
        if privacy is None or urlsplit(given).scheme not in ("postgres", "postgresql", "postgresql+psycopg2"):
            return
        if owner:
            self.migration_env[MIGRATION_DATABASE_VAR] = owner
            return
        result = subprocess.run([self.python, "-m", privacy.package, "runtime-role"],
                                env={**self.environment(), RUNTIME_DATABASE_VAR: given}, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
        runtime = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode != 0 or not runtime:
            raise PlatformError(
                f"privacy's runtime database role cannot be created as {redact_uri(given)}:\n"
                f"{_indent(clean_output(result.stderr or result.stdout, 5))}\n"
                f"  give {RUNTIME_DATABASE_VAR} a role with CREATEROLE, or provision both roles yourself: "
                f"{MIGRATION_DATABASE_VAR} (the owner, for the migrations) and {RUNTIME_DATABASE_VAR} "
                "(the runtime role)")
        self.migration_env[MIGRATION_DATABASE_VAR] = given
        self.runtime_database_env[RUNTIME_DATABASE_VAR] = runtime
        role = unquote(urlsplit(runtime).username or "")
        if role not in self.database_roles_created:
            self.database_roles_created.append(role)
        self.echo(f"privacy: migrated as {unquote(urlsplit(given).username or '?')!r}, runs as {role!r} "
                  "(may only append to the audit log)")

    def remove_database_roles(self) -> None:
        """Drop the runtime roles :meth:`provision_database_roles` created (a test platform's teardown;
        ``make up`` keeps its role, as its database). Best effort: a database already gone took the grants."""
        privacy = next((s for s in self.services if s.name == AUDIT_LOG_SERVICE), None)
        owner = self.migration_env.get(MIGRATION_DATABASE_VAR)
        if privacy is None or not owner:
            return
        for role in list(self.database_roles_created):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([self.python, "-m", privacy.package, "runtime-role", "--drop", "--role", role],
                               env={**self.environment(), RUNTIME_DATABASE_VAR: owner}, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
            self.database_roles_created.remove(role)

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Platform:
        """Check (environment, broker, every service's configuration), migrate, start every process
        and wait until ready (or raise)."""
        started = time.monotonic()
        self._lock.acquire(self.url if self.has_gateway else "")
        self._stopped = False
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.preflight()
            self.plan_mail_sink()
            self.plan_metrics()
            self.write_metrics_targets()
            if self.run_check_config:
                self.check_config()
            self.provision_database_roles()
            if self.run_migrations:
                self.migrate()
            self.start_mail_sink()
            for service in self.services:
                self._spawn(service.name, [self.python, "-m", service.package, "run"])
            if self.relays:
                for service in self.services:
                    self._spawn(f"{service.name}-relay", [self.python, "-m", service.package, "relay"])
            self.echo(f"started {len(self.children)} processes, logs in {self.log_dir}/")
            self.wait_ready(max(5.0, timeout - (time.monotonic() - started)))
        except BaseException:
            self.stop()
            raise
        return self

    def plan_metrics(self) -> None:
        """A ``/metrics`` address for every process (``<SERVICE>_METRICS_ADDRESS``, its relay's
        ``<SERVICE>_RELAY_METRICS_ADDRESS``): the one given (``env`` or the environment; empty: none), else a
        free loopback port; none at all with ``UPGESTAO_METRICS=off`` (the processes would not listen)."""
        given = {**os.environ, **self.extra_env}
        self.metrics_env, self.metrics_addresses = {}, {}
        if (given.get("UPGESTAO_METRICS") or "").strip().lower() == "off":
            return
        names = [s.name for s in self.services] + ([f"{s.name}-relay" for s in self.services] if self.relays else [])
        self.metrics_env, self.metrics_addresses = {}, {}
        for name in names:
            variable = metrics_variable(name)
            if variable in given:
                if given[variable].strip():
                    self.metrics_addresses[name] = given[variable].strip()
                continue
            self.metrics_env[variable] = self.metrics_addresses[name] = free_address()

    @property
    def metrics_targets_path(self) -> Path:
        """``<data dir>/metrics-targets.json``: where every process serves ``/metrics``, in Prometheus's file_sd
        format (``[{"targets": ["127.0.0.1:41234"], "labels": {"job": "upgestao", "process": "identity"}}, ...]``),
        written at start and removed at stop; ``make observe`` (scripts/observability.py) scrapes what it lists."""
        return self.data_dir / METRICS_TARGETS_FILE

    def write_metrics_targets(self) -> None:
        groups = []
        for name, address in sorted(self.metrics_addresses.items()):
            url = self.metrics_url(name)  # a wildcard host (0.0.0.0) is scraped on loopback
            target = urlsplit(url).netloc if url else address
            groups.append({"targets": [target], "labels": {"job": METRICS_JOB, "process": name}})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.metrics_targets_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=1) + "\n")
        os.replace(tmp, self.metrics_targets_path)  # Prometheus watches the file: never half written

    def metrics_url(self, process: str) -> str | None:
        """``http://host:port/metrics`` of a process (``identity``, ``identity-relay``); ``None``: it serves none."""
        address = self.metrics_addresses.get(process)
        if address is None:
            return None
        host, port = split_address(address)
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        return f"http://{host}:{port}/metrics"

    def _wanted_sink_port(self) -> int:
        """The sink's port: ``smtp_sink_port``, else ``UPGESTAO_SMTP_SINK_PORT``, else (0 too) a free one."""
        raw = self.smtp_sink_port
        if raw is None:
            raw = ({**os.environ, **self.extra_env}.get(SINK_PORT_ENV) or "").strip() or 0
        try:
            port = int(raw)
        except ValueError:
            raise PlatformError(f"{SINK_PORT_ENV}={raw!r}: expected a port number (1025; 0: any free one)") from None
        if not 0 <= port <= 65535:
            raise PlatformError(f"{SINK_PORT_ENV}={port}: expected a port number from 0 to 65535")
        return port or int(free_address(SINK_HOST).rpartition(":")[2])

    def plan_mail_sink(self) -> None:
        """Decide whether the local SMTP sink runs, on which port, and what the notifier gets (``mail_env``).

        No sink when the notifier is not among the services, when ``SMTP_URL`` is given (the user's server),
        or in production (where the notifier's check-config requires a real ``SMTP_URL``). A port already in
        use raises PlatformError saying how to choose another."""
        self.sink_address = None
        self.mail_env = {}
        given = ({**os.environ, **self.extra_env}.get(SMTP_URL_ENV) or "").strip()
        if given or self.env_name == "production" or not any(s.name == MAIL_SERVICE for s in self.services):
            return
        port = self._wanted_sink_port()
        if not port_is_free(SINK_HOST, port):
            raise PlatformError(
                f"the local SMTP sink's address {SINK_HOST}:{port} is already in use (another platform's sink, or "
                f"a mail server?): stop it, or choose another port ({SINK_PORT_ENV}=1026 make up), or send "
                f"through a real server ({SMTP_URL_ENV}=smtp+starttls://user:password@host:587 make up)")
        self.sink_address = f"{SINK_HOST}:{port}"
        self.mail_env = {SMTP_URL_ENV: f"smtp://{SINK_HOST}:{port}", ACCEPTED_LOOKUP_ENV: str(self.mail_dir)}

    def start_mail_sink(self, timeout: float = 20.0) -> None:
        """Start the planned sink and wait until it answers, before any service (the notifier's first message
        must find it); raises PlatformError when it exits or stays silent."""
        if self.sink_address is None:
            return
        notifier = next(s for s in self.services if s.name == MAIL_SERVICE)
        host, port = split_address(self.sink_address)
        proc = self._spawn(MAIL_SINK, [self.python, "-m", notifier.package, "sink", "--host", host,
                                       "--port", str(port), "--directory", str(self.mail_dir)])
        deadline = time.monotonic() + timeout
        while not tcp_answers(host, port, timeout=1.0):
            if proc.poll() is not None:
                raise PlatformError(self.describe_exit(MAIL_SINK, proc.returncode))
            if time.monotonic() > deadline:
                raise PlatformError(f"the local SMTP sink did not listen on {self.sink_address} within "
                                    f"{timeout:.0f} s; see {self.log_path(MAIL_SINK)}")
            time.sleep(0.05)
        self.echo(f"mail: SMTP sink on {self.sink_address}, messages as .eml files in {self.mail_dir}/")

    def preflight(self) -> None:
        """Broker, vhost, free gateway port and installed packages; raises PlatformError."""
        if os.environ.get("UPGESTAO_SKIP_VHOST_CHECK") != "1":
            ensure_vhost(self.amqp_uri, self.echo, probe=self.probe_vhost)
        if self.has_gateway:
            host, port = split_address(self.http_address)
            if not port_is_free(host, port):
                raise PlatformError(
                    f"GATEWAY_HTTP_ADDRESS {self.http_address} is already in use (another platform?): "
                    "stop it or choose another address, e.g. GATEWAY_HTTP_ADDRESS=127.0.0.1:8001"
                )
        probe = (
            "import importlib.util, sys; "
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
        )
        result = subprocess.run(
            [self.python, "-c", probe, *(s.package for s in self.services)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        missing = result.stdout.split()
        if result.returncode != 0 or missing:
            raise PlatformError(
                f"not installed in {self.python}: {', '.join(missing) or result.stderr.strip()}\n"
                "  run `make up` (installs every package into .venv) or pip install -e the service"
            )
        self.provision_broker()

    def check_config(self, timeout: float = 60.0) -> None:
        """``check-config`` of every service, in parallel, with the platform's environment.

        Raises PlatformError naming each problem in one line
        (``identity: configuration error: UPGESTAO_ADMIN_PASSWORD: ...``), without tracebacks;
        only an unexpected failure (not a configuration error) shows the tail of its output.
        """
        env = self.environment()

        def check(service: Service) -> str | None:
            try:
                result = subprocess.run(
                    [self.python, "-m", service.package, "check-config"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                return f"{service.name}: check-config did not finish within {timeout:.0f} s"
            if result.returncode == 0:
                return None
            return config_problem(service.name, result.returncode, result.stderr, result.stdout)

        with ThreadPoolExecutor(max_workers=max(1, len(self.services))) as pool:
            problems = [problem for problem in pool.map(check, self.services) if problem]
        if problems:
            raise PlatformError("\n".join(problems))

    def migrate(self) -> None:
        """``migrate`` every service (in parallel); the first failure raises with its stderr.
        Only the migrations get an owner's URL (``migration_env``)."""
        started = time.monotonic()
        env = {**self.environment(), **self.migration_env}
        procs = {}
        for service in self.services:
            log = open(self.log_path(f"{service.name}-migrate"), "w")  # noqa: SIM115 - closed below
            procs[service.name] = (
                subprocess.Popen(
                    [self.python, "-m", service.package, "migrate"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.PIPE,
                    text=True,
                    preexec_fn=_PREEXEC,
                ),
                log,
            )
        failures = []
        for name, (proc, log) in procs.items():
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                err += "\n(migrate timed out after 120 s)"
            log.write(err)
            log.close()
            if proc.returncode != 0:
                failures.append(f"{name} migrate failed (exit {proc.returncode}):\n{_indent(clean_output(err))}")
        if failures:
            raise PlatformError("\n".join(failures))
        self.echo(f"migrated {', '.join(s.name for s in self.services)} ({time.monotonic() - started:.1f} s)")

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.log_path(name), "a", buffering=1)  # noqa: SIM115 - closed in _reap
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(command[1:])}\n")
        log.flush()
        proc = subprocess.Popen(
            command,
            env=self.environment(name.removesuffix("-relay")),  # a service and its relay: the service's user
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the platform only; it stops the children in order
            preexec_fn=_PREEXEC,  # ... and the children never outlive it
        )
        self.children[name] = proc
        self._commands[name] = command
        self._logs[name] = log
        self._up_since[name] = time.monotonic()
        self._restart_due.pop(name, None)
        return proc

    def readyz(self, timeout: float = 2.0) -> tuple[int, str]:
        return http_get(self.url + "/readyz", timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until GET /readyz answers 200; raises if a child exits or time runs out.

        Without the gateway, "ready" means every process is still alive after 3 s.
        """
        deadline = time.monotonic() + timeout
        settle = time.monotonic() + 3.0
        status, body = 0, ""
        while True:
            self.check_alive()
            if self.has_gateway:
                status, body = self.readyz()
                if status == 200:
                    return
            elif time.monotonic() >= settle:
                return
            if time.monotonic() >= deadline:
                answer = f"last answer {status}: {body.strip()[:500]}" if status else f"no answer ({body})"
                raise PlatformError(
                    f"not ready after {timeout:.0f} s: GET {self.url}/readyz {answer}\n  logs: {self.log_dir}/"
                )
            time.sleep(0.25)

    def exited(self) -> dict[str, int]:
        """Children that have exited: name -> return code."""
        return {name: proc.returncode for name, proc in self.children.items() if proc.poll() is not None}

    def check_alive(self) -> None:
        dead = self.exited()
        if dead:
            raise PlatformError("\n".join(self.describe_exit(name, rc) for name, rc in dead.items()))

    def describe_exit(self, name: str, rc: int) -> str:
        how = describe_returncode(rc)
        return f"{name} died ({how}); last lines of {self.log_path(name)}:\n{_indent(tail(self.log_path(name), 15))}"

    def supervise(self, now: float | None = None) -> list[SupervisorEvent]:
        """One round of supervision (call it every fraction of a second): notice dead children,
        schedule their restart under ``restart_policy``, start those that are due.

        Returns what it did, each also said through ``echo``. A ``gave_up`` event is a crash
        loop: that child stays dead and the caller should stop the platform.
        """
        with self._supervision:
            if self._stopped:
                return []
            events = self._supervise(time.monotonic() if now is None else now)
        for event in events:
            self.echo(event.message)
        return events

    def _supervise(self, now: float) -> list[SupervisorEvent]:
        events: list[SupervisorEvent] = []
        for name, proc in list(self.children.items()):
            if name in self._restart_due or name in self._given_up or proc.poll() is None:
                continue
            rc = proc.returncode
            backoff = self._backoff.setdefault(name, ChildBackoff(self.restart_policy))
            delay = backoff.died(now, self._up_since.get(name, now))
            how = describe_returncode(rc)
            if rc == CONFIG_ERROR_EXIT:  # its configuration stopped it: a restart cannot help, say why now
                self._given_up.add(name)
                self._log_line(name, f"died ({how}): a configuration error, not restarted")
                message = (f"{name} stopped on a configuration error: not restarted\n"
                           f"{_indent(tail(self.log_path(name), 5))}")
                events.append(SupervisorEvent("gave_up", name, message, returncode=rc, restart=backoff.restarts,
                                              at=now))
                continue
            if delay is None:
                self._given_up.add(name)
                policy = self.restart_policy
                self._log_line(name, f"died ({how}); a crash loop: not restarted")
                message = (f"{name} died {len(backoff.deaths)} times within {policy.crash_window_s:g} s "
                           f"(a crash loop): giving up\n{self.describe_exit(name, rc)}")
                events.append(SupervisorEvent("gave_up", name, message, returncode=rc, restart=backoff.restarts,
                                              at=now))
                continue
            self._restart_due[name] = now + delay
            self._log_line(name, f"died ({how}); restarting in {delay:g} s (restart {backoff.restarts})")
            message = f"{name} died ({how}); restarting in {delay:g} s (restart {backoff.restarts})"
            if rc > 0:  # it failed by itself: say why
                message += f"; last lines of {self.log_path(name)}:\n{_indent(tail(self.log_path(name), 5))}"
            events.append(SupervisorEvent("died", name, message, returncode=rc, delay_s=delay,
                                          restart=backoff.restarts, at=now))
        for name, due in sorted(self._restart_due.items(), key=lambda item: item[1]):
            if due > now:
                continue
            self._close_log(name)
            proc = self._spawn(name, self._commands[name])
            restarts = self._backoff[name].restarts
            events.append(SupervisorEvent("restarted", name, f"{name} restarted (pid {proc.pid}, restart {restarts})",
                                          restart=restarts, pid=proc.pid, at=now))
        return events

    @property
    def restarting(self) -> dict[str, float]:
        """Children waiting for their restart: name -> when (``time.monotonic()``)."""
        return dict(self._restart_due)

    def restarts(self) -> dict[str, int]:
        """How many times the supervisor restarted each child."""
        return {name: backoff.restarts for name, backoff in self._backoff.items()}

    def _log_line(self, name: str, text: str) -> None:
        log = self._logs.get(name)
        if log is not None:
            with contextlib.suppress(OSError, ValueError):
                log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {text}\n")
                log.flush()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one child (it stays in ``children`` until restarted)."""
        self.children[name].send_signal(sig)

    def restart(self, name: str, timeout: float = 15.0) -> subprocess.Popen:
        """Stop one child (SIGTERM, then SIGKILL) and start the same command again."""
        with self._supervision:
            self._terminate({name: self.children[name]}, timeout)
            self._close_log(name)
            self._given_up.discard(name)
            return self._spawn(name, self._commands[name])

    def stop(self, timeout: float = 15.0) -> dict[str, int]:
        """Stop every child; idempotent. Returns name -> exit code.

        In four phases, each SIGTERM, wait up to ``timeout``, SIGKILL: the
        gateway first (no new requests; its in-flight RPCs still get answers),
        then the services, then the relays (they publish what was written last),
        then the mail sink (it answers the notifier's last messages).
        """
        with self._supervision:
            self._stopped = True
            self._restart_due.clear()
        phases: list[list[str]] = [[], [], [], []]
        for name in self.children:
            phase = 3 if name == MAIL_SINK else 2 if name.endswith("-relay") else 0 if name == HTTP_SERVICE else 1
            phases[phase].append(name)
        codes: dict[str, int] = {}
        for phase in phases:
            codes.update(self._terminate({name: self.children[name] for name in phase}, timeout))
        for name in list(self._logs):
            self._close_log(name)
        if self.env_name == "test":  # a test platform leaves no user behind (make up keeps its users)
            self.remove_broker_users()
            self.remove_database_roles()
        with contextlib.suppress(OSError):
            self.metrics_targets_path.unlink(missing_ok=True)
        self._lock.release()
        return codes

    def _terminate(self, procs: dict[str, subprocess.Popen], timeout: float) -> dict[str, int]:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in procs.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"{name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f} s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        return {name: proc.returncode for name, proc in procs.items()}

    def _close_log(self, name: str) -> None:
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def config_problem(service: str, returncode: int, stderr: str, stdout: str = "") -> str:
    """What a failed ``check-config`` says, as ``<service>: <message>`` lines.

    The service CLI prints a configuration error as one line ``upgestao-<service>: configuration error: ...``;
    that line (or those lines) is the message. Anything else (an import error, a crash) is unexpected:
    the tail of its output follows.
    """
    prefix = f"upgestao-{service}: "
    lines = [line[len(prefix):].strip() for line in stderr.splitlines() if line.startswith(prefix)]
    if lines:
        return "\n".join(f"{service}: {line}" for line in lines)
    output = clean_output(f"{stdout}\n{stderr}", 15)
    return f"{service}: check-config failed ({describe_returncode(returncode)}):\n{_indent(output)}"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines()) or prefix + "(no output)"
