"""A real SMTP server for the notifier's tests, with replies a test programs.

    with SmtpTestServer() as server:            # listening on 127.0.0.1:<free port>
        server.reply_next("RCPT", 550, "5.1.1 no such mailbox")
        mailer = SmtpMailer(parse_smtp_url(server.url))
        ...
        server.stop()                           # the port refuses connections (SMTP down)
        server.start()                          # back, on the same port, the messages kept

Why a subprocess: the tests run monkey-patched by eventlet, and aiosmtpd is asyncio. An asyncio loop in a
green "thread" shares the hub with the code under test and can stall it (or be stalled by it); a real OS
thread would run asyncio on eventlet's green selectors. So the server is its own small process (aiosmtpd,
unpatched: ``python -m upgestao_notifier.testing_smtp``) that connects back to the test over one TCP control
connection speaking JSON lines, and exits when that connection closes (a test process that dies leaves no
server behind). Starting one takes about 0.2 s.

``stop`` closes the listening socket and drops every open session (a pooled client connection is then dead,
as after a server restart); ``start`` listens again on the same port. ``close`` ends the process.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

STAGES = ("MAIL", "RCPT", "DATA")
HOSTNAME = "upgestao-test-smtp"
START_TIMEOUT_S = 10.0


class SmtpTestServerError(RuntimeError):
    """The server process could not start or stopped answering."""


class SmtpTestServer:
    """An aiosmtpd server in a child process, driven over a control connection (see the module)."""

    def __init__(self, *, auth: tuple[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port: int | None = None
        self._auth = auth
        self._proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._reader = None
        self._stderr = None
        self._lock = threading.Lock()  # one request/answer at a time (green under monkey-patching)
        self.listening = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise SmtpTestServerError("not started")
        return f"smtp://{self.host}:{self.port}"

    # -- life cycle -------------------------------------------------------------
    def start(self) -> None:
        """Listen (the first time: start the process on a free port; afterwards: the same port again)."""
        if self._proc is None:
            self._spawn()
        elif not self.listening:
            self._call("listen")
        self.listening = True

    def stop(self) -> None:
        """SMTP down: the port refuses connections and every open session is dropped."""
        if self._proc is not None and self.listening:
            self._call("unlisten")
        self.listening = False

    def close(self) -> None:
        """End the server process (idempotent)."""
        proc, self._proc = self._proc, None
        self.listening = False
        if self._reader is not None:  # the file holds the socket open too
            self._reader.close()
            self._reader = None
        if self._control is not None:
            try:
                self._control.close()
            except OSError:
                pass
            self._control = None
        if proc is not None:
            try:
                proc.wait(timeout=5)  # it exits once the control connection closes
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SmtpTestServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.1)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        env = dict(os.environ)
        if self._auth is not None:  # in the environment, not on the command line
            env["UPGESTAO_TEST_SMTP_AUTH"] = json.dumps(list(self._auth))
        command = [sys.executable, "-m", "upgestao_notifier.testing_smtp",
                   "--control", str(listener.getsockname()[1]), "--host", self.host]
        if self.port is not None:
            command += ["--port", str(self.port)]
        self._proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=self._stderr)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    control, _ = listener.accept()
                    break
                except TimeoutError:
                    if self._proc.poll() is not None or time.monotonic() > deadline:
                        raise SmtpTestServerError(
                            f"the SMTP test server did not start: {self._stderr_tail()}") from None
        except BaseException:
            self.close()
            raise
        finally:
            listener.close()
        control.settimeout(START_TIMEOUT_S)
        self._control = control
        self._reader = control.makefile("rb")
        hello = self._read()
        self.port = hello["port"]

    # -- programming and reading --------------------------------------------------
    def reply_next(self, stage: str, code: int, text: str, times: int = 1) -> None:
        """The next ``times`` commands of ``stage`` (MAIL, RCPT, DATA: DATA is the reply after the message)
        are answered ``code text`` instead of accepted. A 421 also closes the session, as a server does."""
        self._call("reply_next", stage=_stage(stage), code=int(code), text=text, times=int(times))

    def stall_next(self, stage: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` commands of ``stage`` are answered only after ``seconds`` (a hung server)."""
        self._call("stall_next", stage=_stage(stage), seconds=float(seconds), times=int(times))

    def messages(self) -> list[EmailMessage]:
        """Every message accepted so far, parsed (``email.policy.default``)."""
        return [_parse(item) for item in self._call("messages")["messages"]]

    def envelopes(self) -> list[dict]:
        """``{"mail_from", "rcpt_tos"}`` of every message accepted so far."""
        return [{"mail_from": m["mail_from"], "rcpt_tos": m["rcpt_tos"]} for m in self._call("messages")["messages"]]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once at least ``count`` were accepted; raises ``TimeoutError`` after ``timeout``."""
        answer = self._call("wait", count=int(count), timeout=float(timeout), read_timeout=timeout + 5)
        if not answer["reached"]:
            raise TimeoutError(f"{len(answer['messages'])} of {count} messages after {timeout:g} s")
        return [_parse(item) for item in answer["messages"]]

    def connections(self) -> int:
        """How many SMTP connections were accepted so far."""
        return self._call("connections")["connections"]

    def clear(self) -> None:
        """Forget the messages, the programmed replies and stalls, and the connection count."""
        self._call("clear")

    # -- the control connection -----------------------------------------------------
    def _call(self, op: str, read_timeout: float | None = None, **fields) -> dict:
        if self._control is None:
            raise SmtpTestServerError("not started")
        with self._lock:
            self._control.settimeout(read_timeout or START_TIMEOUT_S)
            self._control.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            answer = self._read()
        if "error" in answer:
            raise SmtpTestServerError(answer["error"])
        return answer

    def _read(self) -> dict:
        try:
            line = self._reader.readline()
        except OSError as exc:
            raise SmtpTestServerError(f"the SMTP test server does not answer ({exc}): {self._stderr_tail()}") from None
        if not line:
            raise SmtpTestServerError(f"the SMTP test server went away: {self._stderr_tail()}")
        return json.loads(line)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace").strip() or "(no output)"


def _stage(stage: str) -> str:
    stage = stage.upper()
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    return stage


def _parse(item: dict) -> EmailMessage:
    return BytesParser(policy=default_policy).parsebytes(base64.b64decode(item["raw"]))


if __name__ != "__main__":  # the server process needs no pytest (a tenth of its start-up)
    import pytest

    @pytest.fixture
    def smtp_server() -> Iterator[SmtpTestServer]:
        """A started :class:`SmtpTestServer` for one test, closed after it. Import it into a conftest.py:
        ``from upgestao_notifier.testing_smtp import smtp_server  # noqa: F401``."""
        with SmtpTestServer() as server:
            yield server


# -- the server process (unpatched asyncio; never imported by the tests' process) ------------------------------


def _serve(control_port: int, host: str, port: int, auth: tuple[str, str] | None) -> None:
    import asyncio
    import logging
    import warnings
    from collections import defaultdict, deque

    from aiosmtpd.smtp import SMTP, AuthResult

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")  # on purpose, on loopback

    class State:
        def __init__(self) -> None:
            self.messages: list[dict] = []
            self.replies: dict[str, deque] = defaultdict(deque)
            self.stalls: dict[str, deque] = defaultdict(deque)
            self.connections = 0
            self.sessions: set = set()
            self.arrived = asyncio.Condition()

        async def programmed(self, stage: str, server) -> str | None:
            if self.stalls[stage]:
                await asyncio.sleep(self.stalls[stage].popleft())
            if not self.replies[stage]:
                return None
            code, text = self.replies[stage].popleft()
            if code == 421:  # the server closes the channel after saying so (the reply is written first)
                asyncio.get_running_loop().call_soon(server.transport.close)
            return f"{code} {text}".strip()

    state = State()

    class Handler:
        async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
            reply = await state.programmed("MAIL", server)
            if reply:
                return reply
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 OK"

        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            reply = await state.programmed("RCPT", server)
            if reply:
                return reply
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            reply = await state.programmed("DATA", server)
            if reply:
                return reply
            content = envelope.original_content or envelope.content
            state.messages.append({"raw": base64.b64encode(content).decode(), "mail_from": envelope.mail_from,
                                   "rcpt_tos": list(envelope.rcpt_tos)})
            async with state.arrived:
                state.arrived.notify_all()
            return f"250 OK queued as {len(state.messages)}"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth is not None and auth_data.login.decode() == auth[0]
              and auth_data.password.decode() == auth[1])
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    class Session(SMTP):
        def connection_made(self, transport):
            state.connections += 1
            state.sessions.add(self)
            super().connection_made(transport)

        def connection_lost(self, exc):
            state.sessions.discard(self)
            super().connection_lost(exc)

    def factory() -> SMTP:
        kwargs = dict(hostname=HOSTNAME, timeout=60)
        if auth is not None:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        return Session(Handler(), **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
        server = await loop.create_server(factory, host, port, reuse_address=True)
        bound = server.sockets[0].getsockname()[1]

        async def answer(payload: dict) -> None:
            writer.write(json.dumps(payload).encode() + b"\n")
            await writer.drain()

        def listed() -> list[dict]:
            return list(state.messages)

        await answer({"port": bound})
        while True:
            line = await reader.readline()
            if not line:
                break  # the test process closed it (or died): end
            request = json.loads(line)
            op = request.pop("op")
            if op == "listen":
                if server is None:
                    server = await loop.create_server(factory, host, bound, reuse_address=True)
                await answer({})
            elif op == "unlisten":
                if server is not None:
                    server.close()
                    for session in list(state.sessions):
                        if session.transport is not None:
                            session.transport.abort()
                    await server.wait_closed()
                    server = None
                await answer({})
            elif op == "reply_next":
                state.replies[request["stage"]].extend([(request["code"], request["text"])] * request["times"])
                await answer({})
            elif op == "stall_next":
                state.stalls[request["stage"]].extend([request["seconds"]] * request["times"])
                await answer({})
            elif op == "messages":
                await answer({"messages": listed()})
            elif op == "wait":
                count = request["count"]
                try:
                    async with state.arrived:
                        await asyncio.wait_for(state.arrived.wait_for(lambda: len(state.messages) >= count),  # noqa: B023
                                               request["timeout"])
                    reached = True
                except TimeoutError:
                    reached = False
                await answer({"reached": reached, "messages": listed()})
            elif op == "connections":
                await answer({"connections": state.connections})
            elif op == "clear":
                state.messages.clear()
                state.replies.clear()
                state.stalls.clear()
                state.connections = 0
                await answer({})
            else:
                await answer({"error": f"unknown op {op!r}"})
        if server is not None:
            server.close()
        for session in list(state.sessions):
            if session.transport is not None:
                session.transport.abort()

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the notifier tests' SMTP server (started by SmtpTestServer)")
    parser.add_argument("--control", type=int, required=True, help="the test's control port on 127.0.0.1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    raw_auth = os.environ.get("UPGESTAO_TEST_SMTP_AUTH")
    auth = tuple(json.loads(raw_auth)) if raw_auth else None
    _serve(args.control, args.host, args.port, auth)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
