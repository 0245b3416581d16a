#!/usr/bin/env python3
"""Prometheus for UpGestão (issue 18): the metrics contract's names, the PrometheusRule generated from the alert
rules, a Prometheus configuration for a local platform, and a real Prometheus server (Debian's binary) to run.

    python scripts/observability.py observe [--data-dir D] [--listen 127.0.0.1:9090]
        `make observe`: a Prometheus scraping every metrics endpoint of the platform `make up` runs on the data
        directory (the targets file it writes, ``<data dir>/metrics-targets.json``, watched: a restarted
        platform's new ports are picked up), deploy/observability/rules.yml loaded; in the foreground until
        Ctrl-C. Its data (config, TSDB, log) in ``<data dir>/prometheus/``.
    python scripts/observability.py prometheusrule [--check]
        write deploy/k8s/base/prometheusrule.yaml from deploy/observability/rules.yml (--check: exit 1 when the
        file differs; tests/test_observability.py checks the same)

Nothing here imports the services: stdlib and PyYAML only (both in the venv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from upgestao_kernel.listen_ports import free_port

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "rules.yml"
RULE_TESTS = OBSERVABILITY / "rules.test.yml"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "base" / "prometheusrule.yaml"
PROMETHEUS_BIN = "/usr/bin/prometheus"
PROMTOOL_BIN = "/usr/bin/promtool"
DEFAULT_LISTEN = "127.0.0.1:9090"
TARGETS_FILE = "metrics-targets.json"  # in the platform's data directory, Prometheus file_sd format
JOB = "upgestao"  # the job label of every target, here and in Kubernetes (deploy/k8s/base/monitoring.yaml)

# The metrics contract of issue 18 (docs/operations.md, "Metrics"): every series a rule or a dashboard may use,
# with its type. Histograms are used through their _bucket/_sum/_count series.
CONTRACT: dict[str, str] = {
    "upgestao_http_requests_total": "counter",
    "upgestao_http_request_duration_seconds": "histogram",
    "upgestao_rpc_requests_total": "counter",
    "upgestao_rpc_request_duration_seconds": "histogram",
    "upgestao_outbox_depth": "gauge",
    "upgestao_outbox_oldest_unsent_age_seconds": "gauge",
    "upgestao_relay_published_total": "counter",
    "upgestao_relay_publish_failures_total": "counter",
    "upgestao_events_handled_total": "counter",
    "upgestao_queue_messages": "gauge",
    "upgestao_audit_records_ingested_total": "counter",
    "upgestao_audit_ingest_lag_seconds": "histogram",
    "upgestao_audit_tree_size": "gauge",
    "upgestao_audit_last_checkpoint_timestamp_seconds": "gauge",
    "upgestao_bcrypt_queue_depth": "gauge",
    "upgestao_bcrypt_refused_total": "counter",
    "upgestao_login_attempts_total": "counter",
    "upgestao_login_lockouts_total": "counter",
    "upgestao_websocket_connections": "gauge",
    "upgestao_email_deliveries": "gauge",
    "upgestao_email_attempts_total": "counter",
    "upgestao_webhook_messages": "gauge",
    "upgestao_webhook_attempts_total": "counter",
    "upgestao_privacy_requests_open": "gauge",
    "upgestao_privacy_requests_overdue": "gauge",
    "upgestao_privacy_request_nearest_due_seconds": "gauge",
    "upgestao_privacy_incidents_open": "gauge",
    "upgestao_privacy_incident_nearest_deadline_seconds": "gauge",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def contract_series() -> set[str]:
    """Every series name a query may use: the contract's (a histogram's three), ``up`` and the ``scrape_*``
    series Prometheus adds, and prometheus_client's ``process_*``/``python_*`` collectors."""
    names = set()
    for name, kind in CONTRACT.items():
        names |= {name + suffix for suffix in HISTOGRAM_SUFFIXES} if kind == "histogram" else {name}
    return names | {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def is_known_series(name: str) -> bool:
    return name in contract_series() or name.startswith(("process_", "python_"))


# -- the alert rules -----------------------------------------------------------------------------------------


def rule_groups(path: Path = RULES) -> list[dict[str, Any]]:
    """The ``groups`` of an alert rule file."""
    return yaml.safe_load(path.read_text())["groups"]


def alerts(path: Path = RULES) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(path) for rule in group["rules"] if "alert" in rule]


PROMETHEUS_RULE_HEADER = """\
# GENERATED from deploy/observability/rules.yml by `python scripts/observability.py prometheusrule`: edit the
# rules there (promtool tests them: deploy/observability/rules.test.yml), never here. tests/test_observability.py
# checks this file is what the script writes. The Prometheus Operator loads it into every Prometheus whose
# ruleSelector matches its labels (kube-prometheus-stack's default: release=<its release name>; add that label
# in an overlay when yours asks for it).
"""


def prometheus_rule(path: Path = RULES) -> dict[str, Any]:
    """The PrometheusRule (monitoring.coreos.com/v1) carrying the rule file's groups unchanged."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "upgestao-alerts",
            "labels": {"app.kubernetes.io/name": "upgestao-alerts", "app.kubernetes.io/part-of": "upgestao"},
        },
        "spec": {"groups": rule_groups(path)},
    }


def prometheus_rule_text(path: Path = RULES) -> str:
    return PROMETHEUS_RULE_HEADER + yaml.safe_dump(prometheus_rule(path), sort_keys=False, width=100,
                                                   allow_unicode=True)


# -- a Prometheus of our own ----------------------------------------------------------------------------------


def prometheus_config(targets_file: Path | None = None, targets: Iterable[Mapping[str, Any]] = (),
                      rule_files: Iterable[Path] = (RULES,), scrape_interval: str = "15s",
                      evaluation_interval: str = "15s") -> dict[str, Any]:
    """A Prometheus configuration scraping the platform's targets (a file_sd file the platform writes, or
    ``targets``: file_sd groups given here), with ``rule_files`` loaded. The job is :data:`JOB` and each target
    carries its ``process`` label (identity, identity-relay, ...), as in Kubernetes."""
    job: dict[str, Any] = {"job_name": JOB, "scrape_interval": scrape_interval,
                           "scrape_timeout": _timeout_for(scrape_interval), "metrics_path": "/metrics"}
    if targets_file is not None:
        job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "5s"}]
    else:
        job["static_configs"] = [{"targets": list(group["targets"]), "labels": dict(group.get("labels", {}))}
                                 for group in targets]
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": [job],
    }


def _timeout_for(interval: str) -> str:
    """A scrape timeout below the interval (Prometheus refuses a larger one): 80 % of it, at most 10 s."""
    unit = {"ms": 0.001, "s": 1, "m": 60}
    for suffix in ("ms", "s", "m"):
        if interval.endswith(suffix):
            seconds = float(interval[: -len(suffix)]) * unit[suffix]
            return f"{max(1, int(min(10.0, seconds * 0.8) * 1000))}ms"
    raise ValueError(f"unsupported interval {interval!r}")


def file_sd_groups(addresses: Mapping[str, str]) -> list[dict[str, Any]]:
    """Prometheus file_sd groups for ``process name -> host:port``."""
    return [{"targets": [address], "labels": {"job": JOB, "process": name}}
            for name, address in sorted(addresses.items())]


class PrometheusError(Exception):
    """The Prometheus server could not start, or did not answer in time."""


class PrometheusServer:
    """A real Prometheus (``/usr/bin/prometheus``) on its own port and data directory, stopped by :meth:`stop`
    (or the context manager): for `make observe` and the alert end-to-end test."""

    def __init__(self, directory: Path, config: Mapping[str, Any], listen: str | None = None,
                 binary: str = PROMETHEUS_BIN) -> None:
        self.directory = Path(directory)
        self.config = dict(config)
        self.listen = listen or f"127.0.0.1:{free_port()}"
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.config_path = self.directory / "prometheus.yml"
        self.log_path = self.directory / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.directory / 'data'}", f"--web.listen-address={self.listen}",
                "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle"]

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        if not Path(self.binary).is_file():
            raise PrometheusError(f"{self.binary} is missing: run `make observability-deps` "
                                  "(as root: apt-get install prometheus)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        check = subprocess.run([PROMTOOL_BIN, "check", "config", str(self.config_path)], capture_output=True,
                               text=True, timeout=60)
        if check.returncode != 0:
            raise PrometheusError(f"promtool check config {self.config_path}:\n{check.stdout}{check.stderr}")
        log = open(self.log_path, "a")  # noqa: SIM115 - the child holds it; closed in stop()
        self._log = log
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self.get("/-/ready", timeout=1.0)[0] == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready on {self.url} within {timeout:.0f} s:\n"
                                      f"{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as answer:  # noqa: S310 - loopback
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def api(self, path: str) -> Any:
        status, body = self.get("/api/v1/" + path)
        if status != 200:
            raise PrometheusError(f"GET /api/v1/{path}: {status} {body[:500]}")
        return json.loads(body)["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus holds now (pending and firing), as /api/v1/alerts gives them."""
        return self.api("alerts")["alerts"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        return self.api("query?query=" + quote(expr))["result"]

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()
            self._log = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- commands -------------------------------------------------------------------------------------------------


def cmd_observe(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir or os.environ.get("UPGESTAO_DATA_DIR") or ROOT / "var").resolve()
    targets = data_dir / TARGETS_FILE
    if not targets.is_file():
        print(f"observe: no {targets}: start the platform first (`make up`, same UPGESTAO_DATA_DIR); it writes "
              "the address of every metrics endpoint there", file=sys.stderr)
        return 1
    if not shutil.which(PROMETHEUS_BIN):
        print(f"observe: {PROMETHEUS_BIN} is missing: `make observability-deps` (as root) installs Debian's "
              "prometheus", file=sys.stderr)
        return 1
    config = prometheus_config(targets_file=targets, scrape_interval=args.scrape_interval,
                               evaluation_interval=args.scrape_interval)
    server = PrometheusServer(data_dir / "prometheus", config, listen=args.listen)
    stop = {"now": False}

    def handler(signum: int, frame: object) -> None:
        stop["now"] = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    try:
        server.start()
    except PrometheusError as exc:
        print(f"observe: {exc}", file=sys.stderr)
        return 1
    try:
        count = len(json.loads(targets.read_text()))
        print(f"observe: Prometheus on {server.url} (UI: {server.url}/alerts, {server.url}/targets), "
              f"scraping the {count} endpoints listed in {targets} every {args.scrape_interval}, rules from "
              f"{RULES.relative_to(ROOT)}; data and log in {server.directory}/. Ctrl-C stops it.", flush=True)
        while not stop["now"] and server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
        if server.proc is not None and server.proc.poll() is not None:
            print(f"observe: prometheus exited ({server.proc.returncode}):\n{server.log_tail()}", file=sys.stderr)
            return 1
        return 0
    finally:
        server.stop()


def cmd_prometheusrule(args: argparse.Namespace) -> int:
    text = prometheus_rule_text()
    if args.check:
        current = PROMETHEUS_RULE.read_text() if PROMETHEUS_RULE.is_file() else ""
        if current != text:
            print(f"{PROMETHEUS_RULE.relative_to(ROOT)} is not generated from {RULES.relative_to(ROOT)}: run "
                  "`python scripts/observability.py prometheusrule`", file=sys.stderr)
            return 1
        return 0
    PROMETHEUS_RULE.write_text(text)
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    observe = sub.add_parser("observe", help="a Prometheus scraping the running `make up` platform")
    observe.add_argument("--data-dir", help="the platform's data directory (UPGESTAO_DATA_DIR, ./var)")
    observe.add_argument("--listen", default=DEFAULT_LISTEN, help=f"the UI's address ({DEFAULT_LISTEN})")
    observe.add_argument("--scrape-interval", default="5s", help="scrape and rule evaluation interval (5s)")
    observe.set_defaults(func=cmd_observe)
    rule = sub.add_parser("prometheusrule", help="write deploy/k8s/base/prometheusrule.yaml from rules.yml")
    rule.add_argument("--check", action="store_true", help="only check the file is up to date")
    rule.set_defaults(func=cmd_prometheusrule)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
