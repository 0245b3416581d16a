"""The local SMTP sink: an SMTP server (aiosmtpd) that keeps every message it accepts as an ``.eml`` file.

``make up`` starts it on 127.0.0.1:1025 unless ``SMTP_URL`` is given, so a developer reads the platform's mail
in ``<UPGESTAO_DATA_DIR>/mail/`` instead of sending it anywhere. Each message is one file, named
``<UTC time with µs>-<counter>-<sha256(Message-ID)[:16]>.eml``: never overwritten (a message sent twice is two
files, which is how tests count duplicates), written whole to a temporary name and linked into place, so a
reader never sees half a message and the sink answers 250 only once the file exists. The directory is 0700 and
the files 0600: they hold addresses and reset links.

:func:`accepted` answers the notifier's question after a crash between its SMTP call and recording the outcome:
did the server take the message with this ``Message-ID``? (A real server cannot be asked; then the notifier's
documented rule for that window applies.)

No fsync: a killed sink loses nothing it answered 250 for (the page cache outlives the process); a machine
that loses power may lose its last messages, which a developer's sink can afford.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import secrets
import signal
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from upgestao_kernel.logging import get_logger

log = get_logger(__name__)

SUFFIX = ".eml"
HOSTNAME = "upgestao-sink"  # the name the sink greets with (never the machine's FQDN: no DNS lookup at start)
# aiosmtpd's own logger says every sender and recipient at INFO: only its warnings may reach the logs
AIOSMTPD_LOGGER = "mail.log"


def quiet_aiosmtpd() -> None:
    """Keep aiosmtpd's session log (addresses, peers) out of the logs."""
    logging.getLogger(AIOSMTPD_LOGGER).setLevel(logging.WARNING)


def message_id_hash(message_id: str) -> str:
    """The file-name suffix of a message: ``sha256(Message-ID)[:16]`` (the id stripped of spaces)."""
    return hashlib.sha256(message_id.strip().encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _message_id_of(content: bytes) -> str:
    headers = BytesHeaderParser(policy=default_policy).parsebytes(content)
    value = headers.get("Message-ID")
    return str(value).strip() if value is not None else ""


def private_directory(directory: Path) -> Path:
    """``directory`` created if missing, mode 0700 (it holds people's mail)."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


class MailSink:
    """aiosmtpd handler: every message accepted is written to ``directory`` as one ``.eml`` file."""

    def __init__(self, directory: Path) -> None:
        self.directory = private_directory(directory)
        self._counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        try:
            name = self.keep(content)
        except OSError as exc:
            log.error("sink_write_failed", error=type(exc).__name__, errno=exc.errno)
            return "451 4.3.0 the sink could not write the message"
        log.info("sink_kept", file=name)
        return "250 2.0.0 kept"

    def keep(self, content: bytes) -> str:
        """Write one message; returns the file's name. Never replaces a file already there."""
        digest = message_id_hash(_message_id_of(content))
        tmp = self.directory / f".{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            while True:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                name = f"{stamp}-{next(self._counter):06d}-{digest}{SUFFIX}"
                try:
                    os.link(tmp, self.directory / name)  # fails if the name exists: nothing is overwritten
                    return name
                except FileExistsError:
                    continue
        finally:
            tmp.unlink(missing_ok=True)


def accepted(directory: Path, message_id: str) -> bool:
    """Whether the sink kept a message with this ``Message-ID`` (the file's suffix, then its header)."""
    directory = Path(directory)
    if not directory.is_dir():
        return False
    wanted = message_id.strip()
    for path in directory.glob(f"*-{message_id_hash(wanted)}{SUFFIX}"):
        try:
            with open(path, "rb") as f:
                if _message_id_of(f.read(64 * 1024)) == wanted:
                    return True
        except OSError:
            continue
    return False


async def serve(host: str, port: int, directory: Path, stop: asyncio.Event, *,
                started: asyncio.Future | None = None) -> None:
    """Accept SMTP on ``host:port`` until ``stop`` is set; ``started`` gets the bound port."""
    from aiosmtpd.smtp import SMTP

    quiet_aiosmtpd()
    handler = MailSink(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname=HOSTNAME, data_size_limit=25 * 1024 * 1024, enable_SMTPUTF8=True),
        host, port, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    log.info("sink_listening", host=host, port=bound, directory=str(handler.directory))
    if started is not None:
        started.set_result(bound)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def run_sink(host: str, port: int, directory: Path) -> None:
    """Run the sink until SIGTERM or SIGINT (``python -m upgestao_notifier sink``, started by ``make up``).
    Raises ``OSError`` when the address cannot be bound (the port is taken)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(host, port, directory, stop)
        log.info("sink_stopped")

    asyncio.run(main())
