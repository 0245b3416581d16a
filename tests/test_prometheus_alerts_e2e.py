"""The alert rules under a real Prometheus (issue 18): Debian's ``/usr/bin/prometheus`` scrapes every process of
the session's platform (the targets file the platform writes, as ``make observe`` does) every second and
evaluates deploy/observability/rules.yml every second. Identity's relay is stopped (SIGSTOP) while identity
writes events (a login): the outbox's oldest unsent row ages, ``UpgestaoRelayLag`` fires for identity (read from
Prometheus's HTTP API, /api/v1/alerts), and it clears once the relay runs again (SIGCONT) and drains the outbox.
The platform is left as it was found: the relay running, its outbox drained."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from e2e_platform import load_script
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

obs = load_script("scripts/observability.py", "upgestao_observability")
SERVICE = "identity"
RELAY = f"{SERVICE}-relay"
LAG_THRESHOLD_S = 30  # UpgestaoRelayLag: > 30 s


@pytest.fixture
def prometheus(platform, tmp_path):
    if not Path(obs.PROMETHEUS_BIN).is_file():
        pytest.fail(f"{obs.PROMETHEUS_BIN} is missing: `make observability-deps` (as root) installs Debian's "
                    "prometheus (make test does it first)")
    assert platform.metrics_targets_path.is_file(), "the platform lists its metrics endpoints for Prometheus"
    config = obs.prometheus_config(targets_file=platform.metrics_targets_path, scrape_interval="1s",
                                   evaluation_interval="1s")
    with obs.PrometheusServer(tmp_path / "prometheus", config) as server:
        yield server


def relay_lag_alerts(server) -> list[dict]:
    return [alert for alert in server.alerts() if alert["labels"].get("alertname") == "UpgestaoRelayLag"]


def lag(server) -> float:
    found = server.query(f'max(upgestao_outbox_oldest_unsent_age_seconds{{service="{SERVICE}"}})')
    return float(found[0]["value"][1]) if found else 0.0


@pytest.mark.timeout(150)
def test_the_relay_lag_alert_fires_while_a_relay_is_stopped_and_clears_after_it_runs(platform, prometheus):
    processes = set(platform.metrics_addresses)
    assert RELAY in processes and SERVICE in processes

    def every_target_up() -> bool:
        up = {sample["metric"]["process"]: sample["value"][1] for sample in prometheus.query('up{job="upgestao"}')}
        return set(up) == processes and all(value == "1" for value in up.values())

    wait_for(every_target_up, timeout=20, interval=0.5)
    assert not [a for a in relay_lag_alerts(prometheus) if a["labels"].get("service") == SERVICE]
    relay = platform.children[RELAY]
    assert relay.poll() is None, f"{RELAY} is not running"

    os.kill(relay.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        Api(platform.url).admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)  # a login: identity's events, in its outbox
        wait_for(lambda: lag(prometheus) > 2, timeout=15, interval=0.5)  # the lag is measured and grows

        def firing() -> list[dict]:
            return [a for a in relay_lag_alerts(prometheus)
                    if a["labels"].get("service") == SERVICE and a["state"] == "firing"]

        (alert,) = wait_for(firing, timeout=LAG_THRESHOLD_S + 25, interval=0.5)
        fired_after = time.monotonic() - stopped_at
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"] == "docs/operations.md#upgestaorelaylag"
        assert alert["annotations"]["summary"].startswith(f"{SERVICE}: outbox not drained for ")
        assert float(alert["value"]) > LAG_THRESHOLD_S
        assert fired_after >= LAG_THRESHOLD_S, "it fired before the row was 30 s old"
    finally:
        os.kill(relay.pid, signal.SIGCONT)

    # the relay publishes the backlog: the lag drops to 0 and the alert is gone (neither firing nor pending)
    wait_for(lambda: lag(prometheus) == 0.0, timeout=20, interval=0.5)
    wait_for(lambda: not relay_lag_alerts(prometheus), timeout=10, interval=0.5)
    assert relay.poll() is None, f"{RELAY} died after SIGCONT"
    assert platform.readyz()[0] == 200
