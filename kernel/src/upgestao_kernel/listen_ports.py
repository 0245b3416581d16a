"""A free port for a process that will listen on it later (a test gateway, a platform's ``/metrics``).

stdlib only, and no imports from this package: ``scripts/upgestao_platform.py`` (stdlib only) loads this file
by its path.

Why not ``bind((host, 0))``: the kernel hands that port out of its ephemeral range, the range every outgoing
connection's local port comes from too. Between the pick and the listener's own bind, any process's
connection to PostgreSQL or RabbitMQ may take the port, and the listener then fails with EADDRINUSE, even
with ``SO_REUSEADDR`` (a CI run lost a module of end-to-end tests to a notifier whose ``/metrics`` port had
been taken so). So a port is picked at random *below* that range, where only listeners bind; it must be
bindable now; and it is reserved by an ``flock`` on a file under the temporary directory for
:data:`RESERVATION_S`, so that two pickers on this machine (the parallel test runs, two platforms) never
hand out the same port while the first listener is still starting. A process that ends releases its
reservations with its file descriptors.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)  # Linux's default
LOWEST_PORT = 10000  # below: the well-known and registered ports of services one may run (5432, 5672, 8000…)
RESERVATION_S = 600.0  # long enough for any listener to start; a bound listener then holds the port itself
ATTEMPTS = 500

_reserved: dict[int, tuple[float, int]] = {}  # port -> (reserved at, monotonic; the locked file's descriptor)
_lock = threading.Lock()


class NoFreePort(RuntimeError):
    """No port in the listening range could be bound and reserved."""


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (and ``bind(0)``), inclusive."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE
    return low, high


def listening_range(ephemeral: tuple[int, int] | None = None) -> tuple[int, int]:
    """Where :func:`free_port` picks, inclusive: from :data:`LOWEST_PORT` up to the ephemeral range, else (a
    range set unusually low) above it."""
    low, high = ephemeral or ephemeral_range()
    if low - 1 - LOWEST_PORT >= 1000:
        return LOWEST_PORT, low - 1
    if 65535 - (high + 1) >= 1000:
        return high + 1, 65535
    return LOWEST_PORT, 65535  # no room outside it: at least the reservation still holds


def bindable(host: str, port: int) -> bool:
    """A listener could bind ``host:port`` now (no ``SO_REUSEADDR``: a port in TIME_WAIT counts as taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def reservations_dir() -> Path:
    """This user's folder of reservation files in the (shared) temporary directory: a real folder of this user's,
    never one another local user made there first or a symbolic link (files would be made where it points)."""
    path = Path(tempfile.gettempdir()) / f"upgestao-ports-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise NoFreePort(f"{path} is not a folder of this user's that only it may write: remove it")
    return path


def _reserve(port: int, directory: Path) -> bool:
    fd = os.open(directory / str(port), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _reserved[port] = (time.monotonic(), fd)
    return True


def _release(port: int) -> None:
    _, fd = _reserved.pop(port)
    os.close(fd)  # the lock goes with the descriptor; the file stays (unlinking a locked path races)


def _expire(now: float) -> None:
    for port in [p for p, (at, _) in _reserved.items() if now - at >= RESERVATION_S]:
        _release(port)


def free_port(host: str = "127.0.0.1", *, rng: random.Random | None = None) -> int:
    """A port on ``host`` that nothing listens on, outside the ephemeral range, reserved for this process."""
    pick = rng or random.SystemRandom()
    low, high = listening_range()
    with _lock:
        _expire(time.monotonic())
        directory = reservations_dir()
        for _ in range(ATTEMPTS):
            port = pick.randint(low, high)
            if port in _reserved or not _reserve(port, directory):
                continue
            if bindable(host, port):
                return port
            _release(port)
    raise NoFreePort(f"no free port on {host} in {low}-{high} after {ATTEMPTS} tries")


def held() -> frozenset[int]:
    """The ports this process holds reserved now (for tests)."""
    with _lock:
        return frozenset(_reserved)
