"""The local SMTP sink (``python -m upgestao_notifier sink``, what ``make up`` starts): every message it accepts
is one private .eml file, a duplicate is a second file, and ``accepted()`` finds a message by its Message-ID."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from upgestao_kernel.listen_ports import free_port
from upgestao_notifier.adapters.mime import build_message, message_id_for
from upgestao_notifier.adapters.sink import MailSink, accepted, message_id_hash
from upgestao_notifier.adapters.smtp import SmtpMailer, parse_smtp_url

SENDER = "no-reply@upgestao.example"
TO = "maria.silva@example.com"



def sink_command(port: int, directory: Path) -> list[str]:
    return [sys.executable, "-m", "upgestao_notifier", "sink", "--host", "127.0.0.1", "--port", str(port),
            "--directory", str(directory)]


def start_sink(tmp_path: Path, port: int, directory: Path, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    return subprocess.Popen(sink_command(port, directory), env=environment, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the sink exited ({proc.returncode}): {proc.stderr.read()}") from None
            if time.monotonic() > deadline:
                raise AssertionError("the sink did not listen in time") from None
            time.sleep(0.05)


@pytest.fixture
def sink(tmp_path):
    port, directory = free_port(), tmp_path / "mail"
    proc = start_sink(tmp_path, port, directory)
    try:
        wait_listening(proc, port)
        yield port, directory, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def a_message(message_id: str):
    return build_message(subject="Redefinição de senha", text="Olá!\n", html="<p>Olá!</p>", sender=SENDER, to=TO,
                         message_id=message_id, security=True)


def test_a_message_sent_twice_is_two_private_files_and_accepted_finds_it(sink):
    port, directory, proc = sink
    message_id = message_id_for("event-1", "recipient-1", "upgestao.test")
    mailer = SmtpMailer(parse_smtp_url(f"smtp://127.0.0.1:{port}", timeout_s=5))
    for _ in range(2):
        assert mailer.send(a_message(message_id), sender=SENDER, to=TO).status == "sent"
    mailer.close()
    files = sorted(directory.glob("*.eml"))
    assert len(files) == 2  # answered 250 only once written: no waiting needed
    assert all(path.name.endswith(f"-{message_id_hash(message_id)}.eml") for path in files)
    assert [path.name.split("-")[1] for path in files] == ["000001", "000002"]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not list(directory.glob(".*"))  # no temporary file left behind
    assert f"Message-ID: {message_id}".encode() in files[0].read_bytes()
    assert accepted(directory, message_id)
    assert not accepted(directory, message_id_for("event-1", "recipient-2", "upgestao.test"))
    assert not accepted(tmp_missing := directory / "missing", message_id) and not tmp_missing.exists()
    # the sink's log names files, never an address
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    logged = proc.stdout.read() + proc.stderr.read()
    assert "sink_kept" in logged and "maria" not in logged and "example" not in logged


def test_a_port_already_taken_is_said_plainly_and_exits_with_the_configuration_status(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = start_sink(tmp_path, port, tmp_path / "mail")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in err


def test_the_sink_is_refused_in_production(tmp_path):
    proc = start_sink(tmp_path, free_port(), tmp_path / "mail", env={
        "UPGESTAO_ENV": "production", "NOTIFIER_DATABASE_URL": "postgresql://notifier@127.0.0.1:9/notifier"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "refused in production" in err


def test_accepted_confirms_the_header_not_just_the_file_name(tmp_path):
    sink = MailSink(tmp_path / "mail")
    wanted = "<abc@upgestao.test>"
    name = sink.keep(b"Message-ID: <other@upgestao.test>\r\nSubject: x\r\n\r\nbody\r\n")
    # the same suffix as the wanted id, a different Message-ID inside (a collision of 64 bits): not accepted
    (tmp_path / "mail" / name).rename(tmp_path / "mail" / f"x-1-{message_id_hash(wanted)}.eml")
    assert not accepted(tmp_path / "mail", wanted)
    sink.keep(f"Subject: y\r\nMessage-ID:  {wanted} \r\n\r\nbody\r\n".encode())
    assert accepted(tmp_path / "mail", wanted)


def test_a_message_without_message_id_is_kept_too(tmp_path):
    sink = MailSink(tmp_path / "mail")
    name = sink.keep(b"Subject: x\r\n\r\nbody\r\n")
    assert (tmp_path / "mail" / name).read_bytes() == b"Subject: x\r\n\r\nbody\r\n"
