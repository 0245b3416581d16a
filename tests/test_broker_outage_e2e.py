"""A broker restart (``rabbitmqctl stop_app`` … ``start_app``) as operators do it (issue 9, defect 4).

During the outage ``/readyz`` answers 503 at once naming the broker (it used to take
more than 2 s, every check waiting out its timeout), and an authenticated request is
a 503 that says the broker is unreachable (it used to say "still loading revoked
sessions"). Afterwards every process is still running and the platform serves again.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from upgestao_kernel.testing import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl of the local broker"),
]

OUTAGE_S = 5.0


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=120, capture_output=True)


def test_during_a_broker_restart_readyz_answers_at_once_and_requests_name_the_broker(platform):
    api = Api(platform.url)
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    assert api.get("/v1/me", admin).status_code == 200
    rabbitmqctl("stop_app")
    try:
        deadline = time.monotonic() + OUTAGE_S
        readyz, me = [], []
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = api.get("/readyz")
            readyz.append((response.status_code, time.monotonic() - started, response.json()))
            started = time.monotonic()
            response = api.get("/v1/me", admin)
            me.append((response.status_code, time.monotonic() - started, response.json()))
            time.sleep(0.2)
    finally:
        rabbitmqctl("start_app")

    assert readyz and all(status == 503 for status, _, _ in readyz), [r[:2] for r in readyz]
    assert max(took for _, took, _ in readyz) < 2.0, [round(r[1], 2) for r in readyz]
    for _, _, body in readyz:
        assert body["checks"]["broker"] == "down" and "broker" in body["detail"], body
    # the first request may still have been answered while the gateway learnt of the outage
    late = [entry for entry in me if entry[0] != 200][1:]
    assert late, me
    for status, _, body in late:
        assert status == 503, body
        assert "loading revoked sessions" not in body["detail"], body

    wait_for(lambda: api.get("/readyz").status_code == 200, timeout=90, interval=0.5)
    wait_for(lambda: api.get("/v1/me", admin).status_code == 200, timeout=30, interval=0.5)
    assert platform.exited() == {}, "a process died during the broker restart"
