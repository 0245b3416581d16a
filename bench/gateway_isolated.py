"""The gateway alone: its CPU per request before canned services (not a ``make bench`` scenario).

The real gateway service (``GatewayService``: identity's tokens verified against a pinned key, the access-events
stream, the role map, its own PostgreSQL database, the access log as JSON lines) in a process of its own, on a
vhost of its own; identity and messaging answered by canned services in another process (no database, the same
answer every time), so that what is measured is the gateway's own work, at a rate the platform's services would
not allow on a shared machine. For each request kind, one warm-up run and one measured run (wrk, closed loop,
keep-alive): the gateway process's CPU milliseconds (``/proc/<pid>/stat`` utime + stime) per request answered,
less what it spends idle (measured over a quiet period first, per second, times the run's length).

* ``ping``  GET /v1/ping: no token, one RPC (identity.ping);
* ``me``    GET /v1/me with a token: verified, permission checked, one RPC (identity.me), a UserSchema dump;
* ``page``  GET /v1/conversations/{id}/messages?limit=50: one RPC answered with 50 messages, their dump;
* ``send``  POST /v1/conversations/{id}/messages: a JSON body validated, one keyed RPC, a MessageSchema dump
            (no live push here: messaging's events are the platform's; see bench/gateway_overhead.py).

    .venv/bin/python bench/gateway_isolated.py            (BENCH_DURATION_S 8, BENCH_GATEWAY_CONNS 10)

``BENCH_GATEWAY_PROFILE=<dir>``: the gateway under py-spy during each measured run (as in gateway_overhead.py);
``BENCH_GATEWAY_CPROFILE=<file>``: the gateway's whole life under cProfile timed by CPU time (process_time).
``BENCH_GATEWAY_PYTHONPATH`` puts other sources first on the gateway process's path (another version of the
gateway and the kernel, e.g. ``git archive <commit> kernel/src services/integration-gateway/src`` unpacked
somewhere: ``<dir>/services/integration-gateway/src:<dir>/kernel/src``), to compare two versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import upgestao_kernel.green  # noqa: F401  (before nameko: eventlet monkey-patching)
from nameko.rpc import rpc

MESSAGE = {"id": "", "conversation_id": "6f1c1c1e-8e5b-4a55-9a59-5b8f1d1e2a01", "chat_id": None,
           "author_id": "0b5e3a0c-9f4e-4d2b-8c1e-2f9d1c3b4a55", "direction": "outgoing", "private": False,
           "body": "Olá, o seu pedido 48213 foi enviado hoje para Belo Horizonte; chega em 3 dias úteis.",
           "created_at": "2026-12-02T10:00:00.123456+00:00", "edited_at": None, "deleted": False, "attachments": []}
ROLES = {"attendant": ["profile.read", "conversations.read", "conversations.write"]}


class CannedIdentity:
    name = "identity"

    @rpc
    def ping(self) -> dict:
        return {"service": "identity"}

    @rpc
    def role_permissions(self) -> dict:
        return {"roles": ROLES}

    @rpc
    def me(self) -> dict:
        return {"id": "0b5e3a0c-9f4e-4d2b-8c1e-2f9d1c3b4a55", "full_name": "Ana Souza", "email": "ana@example.com",
                "phone": None, "job_title": "Atendente", "role": "attendant", "status": "active", "locale": "pt-BR",
                "has_photo": False, "created_at": "2026-11-30T09:00:00+00:00"}

    @rpc
    def health(self) -> dict:
        return {"status": "ok"}


class CannedMessaging:
    name = "messaging"

    @rpc
    def messages(self, conversation_id, before=None, after=None, limit=50) -> dict:
        items = [{**MESSAGE, "id": str(uuid.UUID(int=n))} for n in range(limit)]
        return {"items": items, "has_more_before": True, "has_more_after": False}

    @rpc
    def send_message(self, conversation_id, data) -> dict:
        return {"message": {**MESSAGE, "id": str(uuid.uuid4()), "body": data.get("body")}, "created": True}

    @rpc
    def health(self) -> dict:
        return {"status": "ok"}


def serve(kind: str, amqp_uri: str, address: str | None) -> None:
    from nameko.containers import ServiceContainer

    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    if kind == "gateway":
        from upgestao_gateway.service import GatewayService
        from upgestao_kernel.logging import configure_logging

        configure_logging("gateway")  # stdout: a file, as the platform's launcher has it
        containers = [ServiceContainer(GatewayService, {**config, "WEB_SERVER_ADDRESS": address})]
    else:
        containers = [ServiceContainer(CannedIdentity, config), ServiceContainer(CannedMessaging, config)]
    profile_path = os.environ.get("BENCH_GATEWAY_CPROFILE") if kind == "gateway" else None
    if profile_path:  # CPU time (process_time) per function, written when the harness stops the gateway
        import cProfile
        import signal

        profiler = cProfile.Profile(time.process_time)
        signal.signal(signal.SIGTERM, lambda *_: (profiler.disable(), profiler.dump_stats(profile_path),
                                                  os._exit(0)))
        profiler.enable()
    for container in containers:
        container.start()
    for container in containers:
        container.wait()


def main() -> int:
    from common import env_float, env_int, log, stop_process  # (bench/: this script's directory; common adds scripts/)
    from gateway_overhead import profiled
    from messaging import Request, run_requests
    from notifier import cpu_seconds
    from upgestao_kernel.config import env_prefix
    from upgestao_kernel.migrations import upgrade
    from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database
    from upgestao_kernel.testing_tokens import signed_token, token_jwks_json
    from upgestao_platform import free_address, tcp_answers

    duration_s, warmup_s = env_float("BENCH_DURATION_S", 8.0), env_float("BENCH_WARMUP_S", 2.0)
    connections = env_int("BENCH_GATEWAY_CONNS", 10)
    suffix = uuid.uuid4().hex[:8]
    vhost, database = f"bench-gateway-{suffix}", f"bench_gateway_{suffix}"
    amqp_uri = create_vhost(vhost)
    url = create_database(database)
    procs: list[subprocess.Popen] = []
    results: dict = {"connections": connections, "duration_s": duration_s}
    try:
        upgrade("upgestao_gateway:migrations", url)
        address = free_address()
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as data_dir:
            env = {**os.environ, "UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": data_dir,
                   "UPGESTAO_IDENTITY_JWKS": token_jwks_json(), f"{env_prefix('gateway')}_DATABASE_URL": url,
                   "AMQP_URI": amqp_uri,
                   # one client flat out: the rate limits per principal off (as bench/common.py's UNTHROTTLED_GATEWAY)
                   "GATEWAY_RATE_LIMIT_USER_PER_MIN": "0", "GATEWAY_RATE_LIMIT_KEY_PER_MIN": "0"}
            with open(os.path.join(data_dir, "services.log"), "w") as out:
                procs.append(subprocess.Popen([sys.executable, __file__, "services", amqp_uri], env=env,
                                              stdout=out, stderr=subprocess.STDOUT))
            other = os.environ.get("BENCH_GATEWAY_PYTHONPATH")  # another checkout's gateway (and kernel)
            gateway_env = {**env, "PYTHONPATH": other} if other else env
            with open(os.path.join(data_dir, "gateway.log"), "w") as out:
                procs.append(subprocess.Popen([sys.executable, __file__, "gateway", amqp_uri, address],
                                              env=gateway_env, stdout=out, stderr=subprocess.STDOUT))
            host, port = address.rsplit(":", 1)
            deadline = time.monotonic() + 60
            while not tcp_answers(host, int(port), timeout=1.0):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError("the gateway did not start")
                time.sleep(0.2)
            base = f"http://{address}"
            gateway = procs[1].pid
            token = signed_token("0b5e3a0c-9f4e-4d2b-8c1e-2f9d1c3b4a55", "attendant", ttl_s=3600)
            conversation = "6f1c1c1e-8e5b-4a55-9a59-5b8f1d1e2a01"
            kinds = {
                "ping": ([Request("GET", "/v1/ping")], None),
                "me": ([Request("GET", "/v1/me")], token),
                "page": ([Request("GET", f"/v1/conversations/{conversation}/messages?limit=50")], token),
                "send": ([Request("POST", f"/v1/conversations/{conversation}/messages",
                                  json.dumps({"body": f"Resposta número {n}: o pedido segue amanhã.",
                                              "direction": "outgoing"}).encode()) for n in range(500)], token),
            }
            for requests, tok in kinds.values():  # warm: connections, the role map, the token, the code paths
                run_requests(base, requests, connections, warmup_s, "wrk", tok)
            time.sleep(1.0)
            before, t0 = cpu_seconds(gateway), time.monotonic()
            time.sleep(5.0)
            idle_per_s = (cpu_seconds(gateway) - before) / (time.monotonic() - t0)
            results["idle_cpu_ms_per_s"] = round(idle_per_s * 1e3, 2)
            for name, (requests, tok) in kinds.items():
                run_requests(base, requests, connections, warmup_s, "wrk", tok)
                before, t0 = cpu_seconds(gateway), time.monotonic()
                with profiled(gateway, os.environ.get("BENCH_GATEWAY_PROFILE"), name):
                    r = run_requests(base, requests, connections, duration_s, "wrk", tok)
                used, elapsed = cpu_seconds(gateway) - before, time.monotonic() - t0
                if r.non_2xx or r.errors or not r.requests:
                    raise RuntimeError(f"{name}: {r.non_2xx} non-2xx, {r.errors} socket errors of {r.requests}")
                per = 1e3 * used / r.requests
                net = 1e3 * (used - idle_per_s * elapsed) / r.requests
                results[name] = {"requests": r.requests, "rps": round(r.rps, 1), "p50_ms": round(r.p50_ms, 2),
                                 "gateway_cpu_ms": round(per, 3), "gateway_cpu_ms_net_of_idle": round(net, 3)}
                log(f"{name:<5} {r.rps:8.1f} req/s  gateway {per:.3f} CPU ms/request ({net:.3f} net of idle)")
    finally:
        for p in reversed(procs):
            stop_process(p)
        drop_database(database)
        delete_vhost(vhost)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] in (["gateway"], ["services"]):
        serve(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        sys.exit(main())
