"""Messaging's CPU per RPC call outside its use cases: the real service alone on the broker (not a ``make bench``
scenario).

The real ``MessagingService`` (the kernel's ``rpc`` entrypoint, ``Database``, ``RolePermissions``, its runtime
and identity proxy) in a process of its own, on a vhost and a PostgreSQL database of its own, its identity
answered by a stand-in in another process; a bare nameko service (nameko's own ``@rpc``, no dependency) in a
third, as the floor of an RPC. A client in this process (kombu alone, no nameko: ``BENCH_RPC_CONCURRENCY``
calls in flight, each reply answered by the next call) sends, for each kind, a warm-up run and a measured
run of ``BENCH_RPC_CALLS`` calls, and reads the serving process's CPU (``/proc/<pid>/stat`` utime + stime)
per call, less what it spends idle (measured over a quiet period first); then the same again in a new process
under cProfile (SIGUSR1 starts a profiler, SIGUSR2 writes its count), for the function calls per call, a count
the machine's load does not disturb (``BENCH_RPC_STATS=<dir>``: each kind's profile kept there too).

* ``bare``  the bare service's ``ping``: nameko's RPC and nothing else;
* ``ping``  ``messaging.ping`` with an attendant's access token: every dependency's per-worker work and
            the entrypoint's, no I/O of the method's own;
* ``send``  ``messaging.send_message`` as the gateway makes it: a keyed call (an idempotency key each), an
            attendant assigned to the conversation sending an outgoing message.

    .venv/bin/python bench/rpc_overhead.py            (BENCH_RPC_CALLS 2000, BENCH_RPC_CONCURRENCY 10)

``BENCH_RPC_PYTHONPATH`` puts other sources first on the messaging process's path (another version of the
kernel and messaging, e.g. ``git archive <commit> kernel/src services/messaging/src`` unpacked somewhere:
``<dir>/services/messaging/src:<dir>/kernel/src``), measured after this checkout's, in the same run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

BODY = "Olá, o pedido {n} chegou ontem em Belo Horizonte mas a caixa veio amassada; podem trocar o produto?"
ROLES = {
    "admin": ["conversations.read", "conversations.write", "conversations.record_incoming",
              "conversations.read_all", "teams.manage", "chats.use", "messages.moderate"],
    "attendant": ["conversations.read", "conversations.write", "conversations.record_incoming", "chats.use"],
}


def serve(kind: str, amqp_uri: str) -> None:
    """One service process: ``messaging``, ``peers`` (identity's stand-in) or ``bare``."""
    import upgestao_kernel.green  # noqa: F401  (before nameko: eventlet monkey-patching)
    from nameko.containers import ServiceContainer
    from nameko.rpc import rpc

    class IdentityStandIn:
        name = "identity"

        @rpc
        def role_permissions(self) -> dict:
            return {"roles": ROLES}

        @rpc
        def directory(self, ids: list[str]) -> dict:
            people = json.loads(os.environ["BENCH_RPC_PEOPLE"])
            return {"items": {i: people[i] for i in ids if i in people}}

    class Bare:
        name = "bare"

        @rpc
        def ping(self) -> dict:
            return {"service": "bare"}

    if kind == "messaging":
        from upgestao_messaging.service import MessagingService as service_cls
    else:
        service_cls = IdentityStandIn if kind == "peers" else Bare
    count_path = os.environ.get("BENCH_RPC_COUNT")
    if count_path:
        # A profiler from the start: a greenlet keeps the tracing flag it had when it last ran (and restores it when
        # switched to again), so one first enabled later would miss every green thread already waiting (nameko's
        # consumer among them). SIGUSR1 starts a new profiler, SIGUSR2 writes its count and stats.
        import cProfile

        profilers = [cProfile.Profile()]
        profilers[0].enable()

        def mark(*_: Any) -> None:
            profilers[0].disable()
            profilers[0] = cProfile.Profile()
            profilers[0].enable()

        def since_mark(*_: Any) -> None:
            profiler = profilers[0]
            profiler.disable()
            profiler.dump_stats(f"{count_path}.prof")
            with open(count_path, "w") as out:
                out.write(str(sum(entry.callcount for entry in profiler.getstats())))
            mark()

        signal.signal(signal.SIGUSR1, mark)
        signal.signal(signal.SIGUSR2, since_mark)
    container = ServiceContainer(service_cls, {"AMQP_URI": amqp_uri, "serializer": "json"})
    container.start()
    container.wait()


class Client:
    """RPC calls straight through kombu: ``concurrency`` in flight, the next sent as each reply comes."""

    def __init__(self, amqp_uri: str) -> None:
        from kombu import Connection, Consumer, Exchange, Producer, Queue

        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()
        self.exchange = Exchange("nameko-rpc", type="topic", durable=True)
        self.routing_key = str(uuid.uuid4())
        queue = Queue(f"rpc.reply-bench-{self.routing_key}", exchange=self.exchange, routing_key=self.routing_key,
                      exclusive=True, auto_delete=True)
        self.producer = Producer(self.channel)
        self.replies: dict[str, Any] = {}
        self.consumer = Consumer(self.channel, [queue], callbacks=[self._reply], no_ack=True, accept=["json"])
        self.consumer.consume()

    def _reply(self, body: Any, message: Any) -> None:
        self.replies[message.properties["correlation_id"]] = body

    def _send(self, method: str, kwargs: dict, headers: dict) -> str:
        correlation_id = str(uuid.uuid4())
        self.producer.publish({"args": [], "kwargs": kwargs}, exchange=self.exchange, routing_key=method,
                              reply_to=self.routing_key, correlation_id=correlation_id, serializer="json",
                              headers={f"nameko.{k}": v for k, v in headers.items()}, delivery_mode=1)
        return correlation_id

    def call(self, method: str, kwargs: dict, headers: dict, timeout: float = 30) -> Any:
        [answer] = self.run(method, [(kwargs, headers)], 1, timeout)
        return answer

    def run(self, method: str, calls: list[tuple[dict, dict]], concurrency: int, timeout: float = 30) -> list[Any]:
        """Every call's result, in order; a call answered with an error raises."""
        pending = iter(enumerate(calls))
        waiting: dict[str, int] = {}
        results: list[Any] = [None] * len(calls)

        def next_call() -> None:
            item = next(pending, None)
            if item is not None:
                waiting[self._send(method, *item[1])] = item[0]

        for _ in range(concurrency):
            next_call()
        while waiting:
            self.connection.drain_events(timeout=timeout)
            for correlation_id in [c for c in waiting if c in self.replies]:
                body = self.replies.pop(correlation_id)
                if body.get("error"):
                    raise RuntimeError(f"{method}: {body['error']}")
                results[waiting.pop(correlation_id)] = body["result"]
                next_call()
        return results

    def close(self) -> None:
        self.connection.release()


def main() -> int:
    from common import env_int, log, stop_process  # (bench/: this script's directory)
    from notifier import cpu_seconds
    from upgestao_kernel.config import env_prefix
    from upgestao_kernel.migrations import upgrade
    from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database, service_amqp_uri
    from upgestao_kernel.testing_tokens import signed_token, token_jwks_json

    calls_n, concurrency = env_int("BENCH_RPC_CALLS", 2000), env_int("BENCH_RPC_CONCURRENCY", 10)
    suffix = uuid.uuid4().hex[:8]
    vhost, database = f"bench-rpc-{suffix}", f"bench_rpc_{suffix}"
    amqp_uri = create_vhost(vhost)
    url = create_database(database)
    procs: dict[str, subprocess.Popen] = {}
    results: dict = {"calls": calls_n, "concurrency": concurrency}
    admin, attendant, customer = (str(uuid.uuid4()) for _ in range(3))
    people = {admin: {"kind": "staff", "role": "admin", "active": True},
              attendant: {"kind": "staff", "role": "attendant", "active": True},
              customer: {"kind": "customer", "role": None, "active": True}}
    try:
        upgrade("upgestao_messaging:migrations", url)
        with tempfile.TemporaryDirectory(prefix="bench-rpc-") as data_dir:
            env = {**os.environ, "UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": data_dir,
                   "UPGESTAO_IDENTITY_JWKS": token_jwks_json(), f"{env_prefix('messaging')}_DATABASE_URL": url,
                   "BENCH_RPC_PEOPLE": json.dumps(people), "AMQP_URI": amqp_uri,
                   # the snooze sweep (its statements every 5 s) would land in some counts and not others
                   "MESSAGING_SNOOZE_SWEEP_INTERVAL_S": "3600"}

            def start(kind: str, uri: str, extra: dict | None = None) -> subprocess.Popen:
                with open(os.path.join(data_dir, f"{kind}.log"), "a") as out:
                    return subprocess.Popen([sys.executable, __file__, "serve", kind, uri],
                                            env={**env, **(extra or {})}, stdout=out, stderr=subprocess.STDOUT)

            procs["peers"] = start("peers", service_amqp_uri(amqp_uri, "identity"))
            client = Client(amqp_uri)
            versions = [("this", None)]
            if os.environ.get("BENCH_RPC_PYTHONPATH"):
                versions.append(("other", os.environ["BENCH_RPC_PYTHONPATH"]))
            messaging_uri = service_amqp_uri(amqp_uri, "messaging")
            # what the gateway's calls carry: the request's id, the client's address, the actor (for logs), its
            # access token, nameko's call stack
            admin_h = {"access_token": signed_token(admin, "admin", ttl_s=3600), "request_id": "bench-setup"}
            attendant_h = {"request_id": "5f0c2a5e9b7d4c1f8e3a6b2d9c4e7f10", "source_ip": "203.0.113.7",
                           "actor_id": attendant, "actor_role": "attendant",
                           "access_token": signed_token(attendant, "attendant", ttl_s=3600),
                           "call_id_stack": ["gateway.send_message.4c5d8e2f-1a3b-4c6d-9e8f-7a6b5c4d3e2f"]}
            conversation = None
            count_path = os.path.join(data_dir, "calls.count")

            def send_calls(n: int, first: int) -> list[tuple[dict, dict]]:
                return [({"conversation_id": conversation,
                          "data": {"body": BODY.format(n=first + i), "direction": "outgoing"}},
                         {**attendant_h, "idempotency_key": str(uuid.uuid4())}) for i in range(n)]

            for label, path in versions:
                kinds = {"ping": ("messaging.ping", lambda n, first: [({}, attendant_h)] * n, "messaging"),
                         "send": ("messaging.send_message", send_calls, "messaging")}
                if label == "this":
                    kinds = {"bare": ("bare.ping", lambda n, first: [({}, attendant_h)] * n, "bare"), **kinds}
                measured = results.setdefault(label, {})
                for counting in (False, True):
                    extra = {"BENCH_RPC_COUNT": count_path} if counting else {}
                    procs["messaging"] = start("messaging", messaging_uri,
                                               {**extra, **({"PYTHONPATH": path} if path else {})})
                    if label == "this":
                        procs["bare"] = start("bare", amqp_uri, extra)
                    wait_ready(client, procs)
                    if conversation is None:
                        team = client.call("messaging.create_team", {"name": "Suporte", "member_ids": [attendant]},
                                           admin_h)["id"]
                        conversation = client.call("messaging.open_conversation", {"data": {
                            "customer_id": customer, "channel": "whatsapp", "team_id": team,
                            "assignee_id": attendant, "subject": "Troca"}}, admin_h)["id"]
                    for name, (method, make, proc) in kinds.items():
                        pid = procs[proc].pid
                        client.run(method, make(max(200, calls_n // 5), 10**6), concurrency)  # warm up
                        if counting:
                            os.kill(pid, signal.SIGUSR1)
                            time.sleep(0.2)
                            client.run(method, make(calls_n, 2 * 10**6), concurrency)
                            os.kill(pid, signal.SIGUSR2)
                            time.sleep(0.5)
                            with open(count_path) as f:
                                functions = int(f.read())
                            os.unlink(count_path)
                            if os.environ.get("BENCH_RPC_STATS"):  # where to keep each kind's stats
                                os.replace(f"{count_path}.prof",
                                           os.path.join(os.environ["BENCH_RPC_STATS"], f"{label}-{name}.prof"))
                            measured[name]["function_calls"] = round(functions / calls_n)
                            log(f"{label:<5} {name:<4} {functions / calls_n:7.0f} function calls/call")
                            continue
                        time.sleep(0.5)
                        before, t0 = cpu_seconds(pid), time.monotonic()
                        time.sleep(2.0)
                        idle_per_s = (cpu_seconds(pid) - before) / (time.monotonic() - t0)
                        before, t0 = cpu_seconds(pid), time.monotonic()
                        client.run(method, make(calls_n, 0), concurrency)
                        used, elapsed = cpu_seconds(pid) - before, time.monotonic() - t0
                        per, net = 1e3 * used / calls_n, 1e3 * (used - idle_per_s * elapsed) / calls_n
                        measured[name] = {"cpu_ms": round(per, 3), "cpu_ms_net_of_idle": round(net, 3),
                                          "rps": round(calls_n / elapsed)}
                        log(f"{label:<5} {name:<4} {calls_n / elapsed:7.0f} calls/s  {per:.3f} CPU ms/call "
                            f"({net:.3f} net of idle)")
                    stop_process(procs.pop("messaging"))
                    if label == "this":
                        stop_process(procs.pop("bare"))
            client.close()
    finally:
        for proc in procs.values():
            stop_process(proc)
        drop_database(database)
        delete_vhost(vhost)
    print(json.dumps(results, indent=2))
    return 0


def wait_ready(client: Client, procs: dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    for method in [f"{kind}.ping" for kind in ("bare", "messaging") if kind in procs]:
        while True:
            if any(p.poll() is not None for p in procs.values()):
                raise RuntimeError("a service process ended")
            try:
                client.call(method, {}, {}, timeout=1)
                break
            except Exception:  # noqa: BLE001 - not consuming yet (no queue: unroutable, no reply)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)




if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
