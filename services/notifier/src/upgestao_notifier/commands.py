"""Commands of the notifier only: ``python -m upgestao_notifier sink``.

    sink [--host 127.0.0.1] [--port 1025] [--directory DIR]
        a local SMTP server that keeps every message it accepts as an .eml file in DIR
        (default <UPGESTAO_DATA_DIR>/mail/); ``make up`` starts it unless SMTP_URL is given.
        Refused in production, where mail must reach people (SMTP_URL).
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from upgestao_kernel.cli import CONFIG_ERROR_EXIT, ServiceCommand

DEFAULT_SINK_HOST = "127.0.0.1"
DEFAULT_SINK_PORT = 1025


def _configure_sink(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_SINK_HOST, help=f"address to listen on ({DEFAULT_SINK_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_SINK_PORT, help=f"port ({DEFAULT_SINK_PORT})")
    parser.add_argument("--directory", help="where the .eml files go (default <UPGESTAO_DATA_DIR>/mail)")


def _sink(definition, settings, keys, args) -> int:
    from .adapters.sink import run_sink

    if settings.production:
        print("upgestao-notifier: sink: a local mail sink is refused in production (give SMTP_URL)", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    directory = Path(args.directory) if args.directory else settings.data_dir / "mail"
    try:
        run_sink(args.host, args.port, directory)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"upgestao-notifier: sink: {args.host}:{args.port} is already in use (another platform's sink, "
                  "or a mail server?): stop it, choose another port, or give SMTP_URL", file=sys.stderr)
        else:
            print(f"upgestao-notifier: sink: cannot listen on {args.host}:{args.port} or write to {directory}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT  # restarting cannot help: a supervisor stops at once and shows this line
    return 0


COMMANDS = {
    "sink": ServiceCommand("a local SMTP server keeping every message as an .eml file (make up starts it)",
                           _configure_sink, _sink),
}
