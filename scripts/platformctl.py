#!/usr/bin/env python3
"""Run the whole UpGestão platform on this machine (stdlib only).

    platformctl.py up        check every service's configuration, migrate every service,
                          start every service and relay, wait for the gateway's /readyz,
                          stay in the foreground until Ctrl-C / SIGTERM (then stop
                          everything, exit 0); a process that dies is restarted with
                          back-off (0.5 s doubling to 30 s); 5 deaths of one process
                          within 60 s stop everything (exit 1)
    platformctl.py start     the same, with every setting as an option (for scripts)
    platformctl.py stop      stop the platform running on a data dir
    platformctl.py status    is a platform running on a data dir? is it ready?
    platformctl.py preflight wait (bounded) for RabbitMQ, its management API and
                          PostgreSQL to answer; say what is missing

Settings come from options, else the environment, else defaults:

    --data-dir      UPGESTAO_DATA_DIR      ./var (SQLite files, keys, logs/)
    --amqp-uri      AMQP_URI               amqp://guest:guest@127.0.0.1:5672/
    --http-address  GATEWAY_HTTP_ADDRESS   127.0.0.1:8000
    --smtp-sink-port UPGESTAO_SMTP_SINK_PORT 1025 (the local SMTP sink; 0: any free port)

Unless SMTP_URL is given, a local SMTP sink runs on 127.0.0.1:1025 and keeps every
message the notifier sends as an .eml file in <data dir>/mail/ (a taken port stops
the start, saying so); with SMTP_URL the notifier sends through that server.

A vhost other than "/" in AMQP_URI is created through the RabbitMQ management
API (RABBITMQ_MANAGEMENT_URL, default http://<amqp host>:15672) if missing.
Every other variable (UPGESTAO_*, <SERVICE>_DATABASE_URL, ...) is passed to the
services unchanged; --env K=V adds or overrides one for them.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

from upgestao_platform import (
    DEFAULT_AMQP_URI,
    DEFAULT_SINK_PORT,
    SERVICE_NAMES,
    SINK_PORT_ENV,
    SMTP_URL_ENV,
    DataDirLock,
    Platform,
    PlatformError,
    RabbitAdmin,
    http_get,
    redact_uri,
    split_address,
    tcp_answers,
    vhost_of,
)


def say(message: str) -> None:
    print(f"upgestao: {message}", flush=True)


class Stop(BaseException):
    """SIGINT/SIGTERM/SIGHUP arrived."""


def _install_signal_handlers() -> None:
    state = {"stopping": False}

    def handler(signum, frame):
        if state["stopping"]:
            say(f"{signal.Signals(signum).name}: already stopping, please wait")
            return
        state["stopping"] = True
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def cmd_up(args: argparse.Namespace) -> int:
    _install_signal_handlers()
    services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
    extra_env = _parse_env(args.env)
    # make up's sink listens on 1025 unless told otherwise (the Platform reads UPGESTAO_SMTP_SINK_PORT itself)
    sink_port = args.smtp_sink_port
    if sink_port is None and not {**os.environ, **extra_env}.get(SINK_PORT_ENV, "").strip():
        sink_port = DEFAULT_SINK_PORT
    try:
        platform = Platform(
            data_dir=args.data_dir,
            amqp_uri=args.amqp_uri,
            http_address=args.http_address,
            env=extra_env,
            services=services,
            relays=not args.no_relays,
            python=args.python,
            echo=say,
            smtp_sink_port=sink_port,
        )
    except PlatformError as exc:
        say(f"error: {exc}")
        return 2
    say(f"data dir {platform.data_dir}")
    say(f"broker   {redact_uri(platform.amqp_uri)} (vhost {vhost_of(platform.amqp_uri)!r})")
    smtp_url = {**os.environ, **platform.extra_env}.get(SMTP_URL_ENV, "").strip()
    if smtp_url:
        say(f"mail     through {redact_uri(smtp_url)} ({SMTP_URL_ENV})")
    started = time.monotonic()
    try:
        platform.start(timeout=args.timeout)
    except Stop as sig:
        say(f"{sig}: start aborted, everything stopped")
        return 0
    except PlatformError as exc:
        say(f"could not start:\n{exc}")
        return 1

    width = max(len(n) for n in platform.children)
    print(flush=True)
    if platform.has_gateway:
        print(f"  UpGestão is up: {platform.url}   (ready in {time.monotonic() - started:.1f} s)")
        print(f"  try: curl {platform.url}/v1/ping   |   {platform.url}/v1/openapi.json")
        print(f"  privacy centre (open in a browser): {platform.url}/app/")
    else:
        print(f"  UpGestão is up without the gateway (started in {time.monotonic() - started:.1f} s)")
    if platform.sink_address:
        print(f"  mail: every message lands in {platform.mail_dir}/ as an .eml file "
              f"(SMTP sink on {platform.sink_address})")
    for name, proc in platform.children.items():
        metrics = platform.metrics_url(name) or "no /metrics"
        print(f"    {name:<{width}}  pid {proc.pid:<7}  {platform.log_path(name)}   {metrics}")
    if platform.metrics_addresses:
        print(f"  metrics: every endpoint is listed in {platform.metrics_targets_path} "
              "(`make observe` in another terminal: a Prometheus on http://127.0.0.1:9090 scraping them)")
    print("  Ctrl-C stops everything.\n", flush=True)

    code = 0
    try:
        while True:
            # restarts dead children with back-off (said through `say`); a crash loop ends it
            if any(event.kind == "gave_up" for event in platform.supervise()):
                say("a crash loop: stopping the platform")
                code = 1
                break
            time.sleep(0.25)
    except Stop as sig:
        say(f"{sig}: stopping")
    finally:
        codes = platform.stop(timeout=args.stop_timeout)
        unclean = {n: c for n, c in codes.items() if c not in (0, -signal.SIGTERM, -signal.SIGKILL)}
        say("stopped" + (f" (non-zero exits: {unclean})" if unclean else ""))
    return code


def _running_on(args: argparse.Namespace) -> tuple[Path, DataDirLock, int | None]:
    """The data dir named by --data-dir (or the environment), its lock, and the pid holding it."""
    data_dir = Path(args.data_dir or os.environ.get("UPGESTAO_DATA_DIR") or "var").resolve()
    lock = DataDirLock(data_dir)
    return data_dir, lock, lock.owner()


def cmd_stop(args: argparse.Namespace) -> int:
    data_dir, lock, pid = _running_on(args)
    if pid is None:
        say(f"no platform running on {data_dir}")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while lock.owner() is not None:
        if time.monotonic() > deadline:
            say(f"platform pid {pid} still running after {args.timeout:.0f} s")
            return 1
        time.sleep(0.2)
    say(f"stopped platform pid {pid}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    data_dir, lock, pid = _running_on(args)
    if pid is None:
        say(f"not running on {data_dir}")
        return 3
    url = f"http://{args.http_address}" if args.http_address else lock.url()
    if not url:
        say(f"running (pid {pid}) on {data_dir}, without the gateway")
        return 0
    status, body = http_get(url + "/readyz")
    say(f"running (pid {pid}) on {data_dir}; GET {url}/readyz -> {status or 'no answer'}")
    if body and status:
        print(body.strip()[:2000])
    return 0 if status == 200 else 1


def cmd_preflight(args: argparse.Namespace) -> int:
    """Wait for what the tests need; name what is missing and how to start it."""
    amqp = args.amqp_uri or os.environ.get("UPGESTAO_TEST_AMQP_URI") or DEFAULT_AMQP_URI
    parts = urlsplit(amqp)
    pg_host, pg_port = split_address(args.postgres)
    admin = RabbitAdmin(amqp)
    checks = {
        f"RabbitMQ {parts.hostname}:{parts.port or 5672}": (
            lambda: tcp_answers(parts.hostname or "127.0.0.1", parts.port or 5672),
            "start it: rabbitmq-server -detached",
        ),
        f"RabbitMQ management API {admin.base}": (
            admin.answers,
            "enable it: rabbitmq-plugins enable rabbitmq_management",
        ),
        f"PostgreSQL {pg_host}:{pg_port}": (
            lambda: tcp_answers(pg_host, pg_port),
            "start it: pg_ctlcluster --skip-systemctl-redirect <version> main start",
        ),
    }
    deadline = time.monotonic() + args.wait
    pending = dict(checks)
    while True:
        pending = {name: check for name, check in pending.items() if not check[0]()}
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    for name in checks:
        if name not in pending:
            say(f"ok       {name}")
    for name, (_, hint) in pending.items():
        say(f"MISSING  {name} (waited {args.wait:.0f} s): {hint}")
    return 1 if pending else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="platformctl.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("up", "start everything in the foreground (make up)"),
        ("start", "same as up, settings as options"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", help="UPGESTAO_DATA_DIR (default ./var)")
        p.add_argument("--amqp-uri", help="AMQP_URI (default amqp://guest:guest@127.0.0.1:5672/)")
        p.add_argument("--http-address", help="GATEWAY_HTTP_ADDRESS (default 127.0.0.1:8000)")
        p.add_argument(
            "--env", action="append", default=[], metavar="K=V", help="extra environment for every service (repeatable)"
        )
        p.add_argument(
            "--services",
            help=f"comma-separated subset of {','.join(SERVICE_NAMES)} (default: all; without gateway no /readyz wait)",
        )
        p.add_argument("--no-relays", action="store_true", help="do not start the outbox relays")
        p.add_argument("--python", help="interpreter for the services (default .venv/bin/python)")
        p.add_argument(
            "--smtp-sink-port", type=int, default=None,
            help=f"port of the local SMTP sink, started unless SMTP_URL is given ({SINK_PORT_ENV}, "
                 f"default {DEFAULT_SINK_PORT}; 0: any free port)",
        )
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for /readyz (60)")
        p.add_argument(
            "--stop-timeout", type=float, default=15.0, help="seconds between SIGTERM and SIGKILL at shutdown (15)"
        )
        p.set_defaults(func=cmd_up)
    p = sub.add_parser("stop", help="stop the platform running on a data dir")
    p.add_argument("--data-dir")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("status", help="is a platform running on a data dir, and ready?")
    p.add_argument("--data-dir")
    p.add_argument("--http-address", help="default: the address the running platform recorded")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("preflight", help="wait for RabbitMQ, its management API and PostgreSQL")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait (60)")
    p.add_argument("--amqp-uri", help="broker (default UPGESTAO_TEST_AMQP_URI or the local guest broker)")
    p.add_argument("--postgres", default="127.0.0.1:5432", help="PostgreSQL host:port (127.0.0.1:5432)")
    p.set_defaults(func=cmd_preflight)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
