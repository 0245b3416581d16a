"""The erasure scenario's end-to-end part: a fresh platform (every service, each on its own fresh PostgreSQL
database, its own RabbitMQ vhost), and through the gateway, privacy's own requests (issue 14).

Staff users A (attendants: a person who signs in files for themself) each with a direct chat with a peer B in
which A wrote S (10) or B (10,000) messages (written in bulk as messaging's send path writes them, sealed under A,
with their search entries: ``erasure_seed.py``). Then, for each pair (small first, then big):

* ``deletion``: A files ``POST /v1/privacy/requests {"type": "deletion"}``; the clock starts when the DPO's
  ``POST /v1/privacy/requests/{id}/start`` is sent, and ``GET /v1/privacy/requests/{id}/erasure`` is polled
  (every ``POLL_S``) until messaging is ``confirmed`` there (privacy's record of messaging's
  ``subject_erased``), then until the request is completed (identity's confirmation too). Each erasure's
  figures: seconds to messaging's confirmation, to completion, and to messaging's purge (its ``subject_purges``
  row, read from its database).
* ``access``: before that, the access bundle of a big and of a small A: filed, started by the DPO, polled until
  completed (``GET /v1/privacy/requests/{id}``); the seconds, and VmHWM/VmRSS of messaging's and privacy's
  processes before and after (messaging opens the 10,000 bodies, privacy assembles the bundle).

What the polling adds (a request through the gateway every POLL_S) is the same for both sizes.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable

POLL_S = 0.02
TIMEOUT_S = 120.0


def _wait(what: str, predicate: Callable[[], object], timeout: float = TIMEOUT_S) -> object:
    from erasure import BenchFailure

    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise BenchFailure(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def run_platform(small_n: int, big_n: int, repeat: int, start_s: float) -> dict:
    from common import bench_vhost, log
    from erasure import BenchFailure, Messaging
    from erasure_seed import seed_messages
    from identity import ADMIN_ENV, staff_payload, wait_for_admin
    from messaging import HelpDeskText, checked, databases, memory, patient_login
    from notifier import started_platform
    from upgestao_platform import Platform, free_address

    figures: dict = {"erase": {"small": [], "big": []}, "access": {}}
    with (bench_vhost() as amqp_uri, tempfile.TemporaryDirectory(prefix="upgestao-bench-") as data_dir,
          databases("postgresql", uuid.uuid4().hex[:8]) as db_env):
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**ADMIN_ENV, "IDENTITY_BCRYPT_COST": "4", **db_env}, echo=log)
        try:
            with started_platform(platform, start_s):
                url = platform.url
                admin = wait_for_admin(url)["access_token"]
                counter = iter(range(10_000))

                def user() -> dict:
                    payload = {**staff_payload(next(counter)), "role": "attendant"}
                    created = checked(url, "POST", "/v1/users", payload, token=admin, expect=(201,))
                    return {"id": created["id"], "email": payload["email"],
                            "token": patient_login(url, payload["email"])["access_token"]}

                dpo = user()
                assigned = subprocess.run(
                    [platform.python, "-m", "upgestao_identity", "assign-role", "--user-id", dpo["id"],
                     "--role", "dpo"],
                    env=platform.environment("identity"), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                    timeout=60)
                if assigned.returncode != 0:
                    raise BenchFailure(f"assign-role dpo: {assigned.stderr[-500:]}")
                dpo["token"] = patient_login(url, dpo["email"])["access_token"]
                peer = user()
                m = Messaging(environ=platform.environment("messaging"))
                text = HelpDeskText(15)

                def person(n: int) -> dict:
                    a = user()
                    chat = checked(url, "POST", "/v1/chats", {"kind": "direct", "member_ids": [peer["id"]]},
                                   token=a["token"], expect=(201,))["id"]
                    seed_messages(m, text, a["id"], a["id"], [chat], n, kind="chat")
                    return {**a, "chat": chat, "messages": n}

                t0 = time.monotonic()
                pairs = [(person(small_n), person(big_n)) for _ in range(repeat)]
                log(f"[platform] {2 * repeat} people seeded in {time.monotonic() - t0:.1f} s")

                def request(a: dict, type_: str) -> str:
                    return checked(url, "POST", "/v1/privacy/requests", {"type": type_}, token=a["token"],
                                   expect=(201,))["id"]

                def start(request_id: str) -> None:
                    checked(url, "POST", f"/v1/privacy/requests/{request_id}/start", None, token=dpo["token"],
                            expect=(200,))

                def state(request_id: str) -> dict:
                    return checked(url, "GET", f"/v1/privacy/requests/{request_id}", None, token=dpo["token"],
                                   expect=(200,))

                # -- the access bundle: a small A, then a big A (before their erasure)
                processes = {name: platform.children[name].pid for name in ("messaging", "privacy")}
                for size, a in (("small", pairs[0][0]), ("big", pairs[0][1])):
                    before = {name: memory(pid) for name, pid in processes.items()}
                    request_id = request(a, "access")
                    t0 = time.perf_counter()
                    start(request_id)
                    done = _wait(f"the access request of {a['messages']} messages",
                                 lambda r=request_id: (s := state(r))["state"] in ("completed", "error") and s)
                    seconds = time.perf_counter() - t0
                    if done["state"] != "completed":
                        raise BenchFailure(f"the access request failed: {done}")
                    figures["access"][size] = {"seconds": round(seconds, 3), "messages": a["messages"],
                                               "before": before,
                                               "after": {name: memory(pid) for name, pid in processes.items()}}
                    log(f"[platform] access bundle of {a['messages']} messages: {seconds:.2f} s")

                # -- deletion: small, big, small, big ...
                for small, big in pairs:
                    for size, a in (("small", small), ("big", big)):
                        request_id = request(a, "deletion")
                        t0 = time.perf_counter()
                        start(request_id)
                        confirmed, completed, purged = _erasure_times(url, dpo["token"], request_id, m, a["id"], t0)
                        figures["erase"][size].append({"messaging_confirmed_s": round(confirmed, 3),
                                                       "completed_s": round(completed, 3),
                                                       "purged_s": round(purged, 3)})
                    log(f"[platform] erasure: messaging confirmed small {figures['erase']['small'][-1]}, big "
                        f"{figures['erase']['big'][-1]}")
                platform.check_alive()
        finally:
            with contextlib.suppress(Exception):
                m.engine.dispose()
            platform.remove_broker_users()
    return figures


def _erasure_times(url: str, token: str, request_id: str, m, subject_id: str, t0: float
                   ) -> tuple[float, float, float]:
    """Seconds from ``t0`` until privacy records messaging's confirmation, until the request completes, and until
    messaging's purge is done."""
    from messaging import checked

    def progress() -> dict:
        return checked(url, "GET", f"/v1/privacy/requests/{request_id}/erasure", None, token=token, expect=(200, 404))

    _wait("messaging's confirmation",
          lambda: (p := progress()) and p.get("participants", {}).get("messaging") == "confirmed")
    confirmed = time.perf_counter() - t0
    _wait("the request's completion", lambda: progress().get("completed"))
    completed = time.perf_counter() - t0
    _wait("messaging's purge", lambda: _purged(m, subject_id), timeout=300)
    return confirmed, completed, time.perf_counter() - t0


def _purged(m, subject_id: str) -> bool:
    import sqlalchemy as sa

    with m.engine.connect() as conn:
        return conn.execute(sa.text("SELECT purged_at IS NOT NULL FROM subject_purges WHERE subject_id = :s"),
                            {"s": subject_id}).scalar() is True
