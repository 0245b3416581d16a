"""A webhook receiver for the end-to-end tests (issue 15): an HTTP server on 127.0.0.1 in a thread of the
test process, which keeps every request it gets (path, headers, raw body) and verifies each with the
``standardwebhooks`` package from PyPI — never with the project's own signing code.

The platform of the e2e session allows loopback (``UPGESTAO_WEBHOOK_ALLOWED_NETWORKS``, tests/e2e_api.py);
the SSRF guard's refusal without it is proved by the integrations service's own tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from upgestao_kernel.testing import wait_for


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return self.payload["type"]

    @property
    def data(self) -> dict:
        return self.payload["data"]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verifies_with(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


@dataclass
class Receiver:
    host: str
    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    # path -> the status to answer (204 by default); a callable gets the delivery and answers (status, headers)
    answers: dict[str, Callable[[Delivery], tuple[int, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def at(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]

    def wait(self, path: str, predicate: Callable[[list[Delivery]], Any], timeout: float = 30) -> Any:
        return wait_for(lambda: predicate(self.at(path)), timeout=timeout, interval=0.1)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver("127.0.0.1", 0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            delivery = Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with receiver.lock:
                receiver.deliveries.append(delivery)
            answer = receiver.answers.get(self.path)
            status, headers = answer(delivery) if answer else (204, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
