"""``kill -9`` of a relay and of a service no longer stops the platform (issue 9, defect 2):
the supervisor restarts both and the gateway is ready again."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
import requests
from upgestao_kernel.testing import create_vhost, delete_vhost

pytestmark = pytest.mark.e2e


def test_killed_relay_and_service_come_back_and_the_gateway_is_ready_again(platform_module, tmp_path):
    module = platform_module
    vhost = f"upgestao-e2e-supervise-{uuid.uuid4().hex[:8]}"
    said: list[str] = []
    platform = module.Platform(data_dir=tmp_path / "platform", amqp_uri=create_vhost(vhost),
                               http_address=module.free_address(), env={"UPGESTAO_ENV": "test"}, echo=said.append)
    try:
        platform.start(timeout=120)
        before = {name: platform.children[name].pid for name in ("privacy-relay", "identity")}
        for name in before:
            platform.kill(name, signal.SIGKILL)
        for name in before:
            platform.children[name].wait(10)

        restarted: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while len(restarted) < 2 and time.monotonic() < deadline:
            for event in platform.supervise():
                assert event.kind != "gave_up", event.message
                if event.kind == "restarted":
                    restarted[event.name] = event.pid
            time.sleep(0.1)
        assert set(restarted) == set(before), said
        assert "privacy-relay died (killed by SIGKILL); restarting in 0.5 s (restart 1)" in said
        assert "identity died (killed by SIGKILL); restarting in 0.5 s (restart 1)" in said

        status, body = 0, ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert not [e for e in platform.supervise() if e.kind != "restarted"], said  # nothing else dies
            status, body = platform.readyz(timeout=5)
            if status == 200:
                break
            time.sleep(0.25)
        assert status == 200, body
        assert requests.get(platform.url + "/v1/ping", timeout=10).json()["pong"] is True
        for name, pid in restarted.items():
            assert platform.children[name].pid == pid != before[name]
            assert platform.children[name].poll() is None, name
        assert platform.restarts() == {"privacy-relay": 1, "identity": 1}
    finally:
        platform.stop()
        delete_vhost(vhost)
