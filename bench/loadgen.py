"""HTTP load generators: ``wrk`` when installed, else a threaded Python client.

Both are closed-loop: each connection sends its next request when the
previous answer arrived (keep-alive), for a fixed duration.

The Python client is limited by the GIL to roughly one core and shares the
machine's cores with the system under test; :func:`ceiling` measures what it
(or wrk) reaches against a trivial one-process HTTP server, so a result close
to that ceiling says "limited by the load generator", not by the platform.

``python bench/loadgen.py serve PORT`` runs that trivial server.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from common import percentile
from upgestao_kernel.listen_ports import free_port

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class LoadResult:
    url: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    errors: int = 0
    loadgen: str = ""
    statuses: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """The figures a result file keeps of one measurement."""
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "requests": self.requests,
            "non_2xx": self.non_2xx,
            "errors": self.errors,
        }


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].split(" [")[0] if (out.stdout or out.stderr) else "wrk"


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def run_wrk(
    url: str,
    connections: int,
    duration_s: float,
    threads: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    threads = threads or max(1, min(connections, 2))
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(round(duration_s))}s",
        "--latency",
        "--timeout",
        "10s",
        *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or text}")
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)[1])
    elapsed = re.search(r"requests in ([\d.]+\w+)", text)[1]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1])
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1])
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return LoadResult(
        url=url,
        connections=connections,
        duration_s=_ms(elapsed) / 1e3,
        requests=requests,
        rps=rps,
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(x) for x in sock.groups()) if sock else 0,
        loadgen=f"{wrk_version()} -t{threads}",
    )


def run_python(url: str, connections: int, duration_s: float, headers: Mapping[str, str] | None = None) -> LoadResult:
    """Threaded keep-alive client on ``http.client`` (one connection per thread)."""
    parts = urlsplit(url)
    request_headers = dict(headers or {})
    path = parts.path or "/"
    latencies: list[list[float]] = [[] for _ in range(connections)]
    statuses: list[dict[int, int]] = [{} for _ in range(connections)]
    errors = [0] * connections
    start_barrier = threading.Barrier(connections + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        lat, st = latencies[i], statuses[i]
        start_barrier.wait()
        perf = time.perf_counter
        while True:
            t0 = perf()
            if t0 >= stop_at[0]:
                break
            try:
                conn.request("GET", path, headers=request_headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                continue
            lat.append((perf() - t0) * 1e3)
            st[response.status] = st.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    begin = time.perf_counter()
    stop_at[0] = begin + duration_s
    start_barrier.wait()
    for t in threads:
        t.join(duration_s + 30)
    elapsed = time.perf_counter() - begin
    all_lat = sorted(x for lat in latencies for x in lat)
    merged: dict[int, int] = {}
    for st in statuses:
        for code, n in st.items():
            merged[code] = merged.get(code, 0) + n
    return LoadResult(
        url=url,
        connections=connections,
        duration_s=elapsed,
        requests=len(all_lat),
        rps=len(all_lat) / elapsed,
        p50_ms=percentile(all_lat, 50),
        p99_ms=percentile(all_lat, 99),
        non_2xx=sum(n for code, n in merged.items() if not 200 <= code < 400),
        errors=sum(errors),
        loadgen=f"python http.client x{connections} threads",
        statuses={str(k): v for k, v in merged.items()},
    )


def run_load(
    url: str, connections: int, duration_s: float, kind: str, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """``headers`` (e.g. ``Authorization``) go with every request."""
    if kind == "wrk":
        return run_wrk(url, connections, duration_s, headers=headers)
    return run_python(url, connections, duration_s, headers=headers)


# -- the trivial server (ceiling of the load generator on this machine) ---------

_RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'


async def _serve(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(_RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


def ceiling(kind: str, connections: int, duration_s: float) -> LoadResult:
    """The load generator against a trivial one-process asyncio server."""
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "serve", str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return run_load(f"http://127.0.0.1:{port}/", connections, duration_s, kind)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    asyncio.run(_serve(int(sys.argv[2])))
