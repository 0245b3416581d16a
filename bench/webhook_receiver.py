"""A webhook receiver for the ``webhooks`` scenario: verifies every delivery with the ``standardwebhooks``
package (PyPI), answers 204, and appends one JSON line per request to ``--out``:
``{"id", "type", "message_id", "body_sha256", "arrived", "verified"}`` (``arrived`` = Unix time taken when the body was
read, before the answer). The same program receives the platform's deliveries and the raw baseline's,
so both pay the same receiving and verifying cost.

    python bench/webhook_receiver.py --port 18080 --secret whsec_... --out deliveries.jsonl

``--secret`` may be given later through the file named by ``--secret-file`` (read at each request while
empty: the platform shows the secret only after the receiver must already listen).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address, secret: str | None, secret_file: Path | None, out: Path) -> None:
        super().__init__(address, Handler)
        self.secret = secret
        self.secret_file = secret_file
        self.lock = threading.Lock()
        self.out = open(out, "a", buffering=1)  # noqa: SIM115 - kept open for the server's life
        self._webhook: Webhook | None = None

    def webhook(self) -> Webhook | None:
        if self._webhook is None:
            secret = self.secret
            if not secret and self.secret_file is not None and self.secret_file.exists():
                secret = self.secret_file.read_text().strip()
            if secret:
                self._webhook = Webhook(secret)
        return self._webhook


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        arrived = time.time()
        webhook = self.server.webhook()
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = False
        payload: dict = {}
        if webhook is not None:
            try:
                payload = webhook.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        data = payload.get("data") if isinstance(payload, dict) else None
        body_text = data.get("body") if isinstance(data, dict) else None
        record = {"id": headers.get("webhook-id"), "type": payload.get("type") if isinstance(payload, dict) else None,
                  "message_id": data.get("message_id") if isinstance(data, dict) else None,
                  # the body's digest, never the body: the chaos run matches it against what it sent
                  "body_sha256": hashlib.sha256(body_text.encode()).hexdigest() if isinstance(body_text, str) else None,
                  "arrived": arrived, "verified": verified}
        with self.server.lock:
            self.server.out.write(json.dumps(record) + "\n")
        self.send_response(204 if verified else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret")
    parser.add_argument("--secret-file", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    server = Receiver((args.host, args.port), args.secret, args.secret_file, args.out)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
