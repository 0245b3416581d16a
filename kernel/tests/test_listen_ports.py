"""upgestao_kernel.listen_ports: a port picked for a later listener is one no connection and no other picker
takes first."""

from __future__ import annotations

import fcntl
import os
import random
import socket
import subprocess
import sys

import pytest
from upgestao_kernel import listen_ports


class Sequence:
    """An rng whose ``randint`` gives the ports it was handed, in order, then random ones."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)

    def randint(self, low: int, high: int) -> int:
        if not self.ports:
            return random.randint(low, high)
        port = self.ports.pop(0)
        assert low <= port <= high
        return port


def released(monkeypatch, *ports: int) -> tuple[int, ...]:
    """``ports`` (picked by this process), no longer reserved by it from the next pick on."""
    monkeypatch.setattr(listen_ports, "RESERVATION_S", 0.0)
    return ports


def test_the_range_lies_below_the_ephemeral_one_where_no_outgoing_connection_binds():
    assert listen_ports.listening_range((32768, 60999)) == (10000, 32767)
    low, high = listen_ports.listening_range()
    eph_low, eph_high = listen_ports.ephemeral_range()
    assert high < eph_low or low > eph_high


def test_an_ephemeral_range_set_low_leaves_the_ports_above_it():
    assert listen_ports.listening_range((1024, 20000)) == (20001, 65535)


def test_an_unreadable_ephemeral_range_is_linuxs_default(tmp_path):
    assert listen_ports.ephemeral_range(tmp_path / "absent") == listen_ports.DEFAULT_EPHEMERAL_RANGE


def test_a_port_is_bindable_outside_the_ephemeral_range_and_reserved():
    port = listen_ports.free_port()
    low, high = listen_ports.listening_range()
    assert low <= port <= high
    assert listen_ports.bindable("127.0.0.1", port)
    assert port in listen_ports.held()
    with socket.create_server(("127.0.0.1", port)):  # the listener it was picked for can have it
        pass


def test_a_port_something_listens_on_is_skipped(monkeypatch):
    busy, free = released(monkeypatch, listen_ports.free_port(), listen_ports.free_port())
    with socket.create_server(("127.0.0.1", busy)):
        assert listen_ports.free_port(rng=Sequence(busy, free)) == free
    assert busy not in listen_ports.held()  # a port it could not use is not kept reserved


def test_a_port_this_process_reserved_is_not_handed_out_twice():
    first = listen_ports.free_port()
    assert listen_ports.free_port(rng=Sequence(first, first, first)) != first


def test_a_port_another_process_reserved_is_skipped(monkeypatch):
    """The parallel test runs and platforms: a reservation held by another process is respected."""
    wanted, other = released(monkeypatch, listen_ports.free_port(), listen_ports.free_port())
    listen_ports.free_port()  # lets both go
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({str(listen_ports.reservations_dir() / str(wanted))!r}, os.O_CREAT | os.O_RDWR, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert listen_ports.free_port(rng=Sequence(wanted, other)) == other
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_a_reservation_locks_its_file_against_every_other_descriptor():
    port = listen_ports.free_port()
    fd = os.open(listen_ports.reservations_dir() / str(port), os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_reservations_expire(monkeypatch):
    port = listen_ports.free_port()
    monkeypatch.setattr(listen_ports, "RESERVATION_S", 0.0)
    listen_ports.free_port()
    assert port not in listen_ports.held()


def test_no_free_port_is_said(monkeypatch):
    (busy,) = released(monkeypatch, listen_ports.free_port())
    monkeypatch.setattr(listen_ports, "ATTEMPTS", 3)
    with socket.create_server(("127.0.0.1", busy)):
        with pytest.raises(listen_ports.NoFreePort, match="after 3 tries"):
            listen_ports.free_port(rng=Sequence(busy, busy, busy))


def test_a_reservations_folder_that_is_a_link_or_writable_by_others_is_refused(tmp_path, monkeypatch):
    """The folder lies in the shared temporary directory: another local user may have made it first."""
    monkeypatch.setattr(listen_ports.tempfile, "gettempdir", lambda: str(tmp_path))
    mine = tmp_path / f"upgestao-ports-{os.getuid()}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mine.symlink_to(elsewhere)
    with pytest.raises(listen_ports.NoFreePort, match="remove it"):
        listen_ports.reservations_dir()
    mine.unlink()
    mine.mkdir(mode=0o700)
    mine.chmod(0o777)
    with pytest.raises(listen_ports.NoFreePort, match="remove it"):
        listen_ports.reservations_dir()
    mine.chmod(0o700)
    assert listen_ports.reservations_dir() == mine
