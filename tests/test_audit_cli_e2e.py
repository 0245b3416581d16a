"""The audit log's commands against the running platform: ``audit tail`` replays the
stream, ``audit verify`` checks the live log through nothing but the HTTP API and
the public key (and an export file the same way)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, new_request_id
from e2e_identity import create_dpo
from upgestao_kernel.testing import wait_for


@pytest.fixture(scope="module")
def api(platform) -> Api:
    return Api(platform.url)


@pytest.fixture(scope="module")
def dpo_token(platform, api) -> str:
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    _, tokens = create_dpo(platform, api, admin)  # no admin may make a dpo (issue 11): the system does
    return tokens["access_token"]


def privacy_command(platform, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgestao_privacy", "audit", *args], env=platform.environment(),
                          capture_output=True, text=True, timeout=timeout)


def test_audit_tail_from_first_replays_everything_the_log_holds(platform, api, dpo_token):
    api.get("/v1/me", dpo_token, headers={"X-Request-ID": new_request_id("tail")})
    size = wait_for(lambda: api.get("/v1/audit/checkpoint", dpo_token).json()["tree_size"] >= 3 and
                    api.get("/v1/audit/checkpoint", dpo_token).json()["tree_size"], timeout=20)
    stored = {}
    response = api.get("/v1/audit/export", dpo_token, stream=True)
    assert response.status_code == 200
    for number, line in enumerate(response.iter_lines()):
        if number:  # (line 0 is the header)
            item = json.loads(line)
            stored[item["seq"]] = item["record"]

    def replayed() -> list[dict] | None:
        done = privacy_command(platform, "tail", "--from", "first", "--idle-timeout", "1")
        assert done.returncode == 0, done.stderr[-2000:]
        records = [json.loads(line) for line in done.stdout.splitlines()]
        return records if len({r["seq"] for r in records}) >= size else None

    records = wait_for(replayed, timeout=30, interval=0.5)
    by_seq = {r["seq"]: r for r in records}  # (a seq may appear twice after a crash: readers skip repeats)
    assert sorted(by_seq)[: len(stored)] == sorted(stored)
    for seq, record in stored.items():
        assert by_seq[seq] == record
    def from_last() -> list[dict] | None:
        # the stream's last chunk may hold only a checkpoint (tail prints records, not checkpoints): an audited
        # read adds a record after it, and the next try starts from the chunk that holds it
        api.get("/v1/me", dpo_token, headers={"X-Request-ID": new_request_id("tail-last")})
        done = privacy_command(platform, "tail", "--from", "last", "--idle-timeout", "1")
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        return lines if lines and lines[-1]["seq"] > max(by_seq) else None  # the newest, not an older chunk

    newest = wait_for(from_last, timeout=30, interval=0.5)
    assert [r["seq"] for r in newest] == sorted(r["seq"] for r in newest)  # the last chunk, in order
    two = privacy_command(platform, "tail", "--from", "first", "--limit", "2", "--idle-timeout", "1")
    assert [json.loads(line)["seq"] for line in two.stdout.splitlines()] == [0, 1]


def test_audit_verify_checks_the_live_log_through_the_http_api(platform, api, dpo_token, tmp_path):
    public_key = api.get("/v1/audit/public-key", dpo_token).json()["public_key"]
    state = tmp_path / "state.json"
    done = privacy_command(platform, "verify", "--url", platform.url, "--token", dpo_token,
                           "--public-key", public_key, "--state", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK"), done.stdout
    assert json.loads(state.read_text())  # remembered for the next run's consistency check
    again = privacy_command(platform, "verify", "--url", platform.url, "--token", dpo_token,
                            "--public-key", public_key, "--state", str(state))
    assert again.returncode == 0, again.stdout + again.stderr

    export = tmp_path / "audit.jsonl"
    export.write_bytes(api.get("/v1/audit/export", dpo_token).content)
    from_file = privacy_command(platform, "verify", "--export", str(export), "--public-key", public_key)
    assert from_file.returncode == 0, from_file.stdout + from_file.stderr

    lines = export.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["record"]["actor_id"] = "someone-else"
    lines[2] = json.dumps(edited)
    export.write_text("\n".join(lines) + "\n")
    tampered = privacy_command(platform, "verify", "--export", str(export), "--public-key", public_key)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"first bad seq {edited['seq']}" in tampered.stdout

    wrong_key = privacy_command(platform, "verify", "--url", platform.url, "--token", dpo_token,
                                "--public-key", "A" * 43 + "=")
    assert wrong_key.returncode == 1, wrong_key.stdout + wrong_key.stderr
