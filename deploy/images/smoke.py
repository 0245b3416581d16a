#!/usr/bin/env python3
"""make images-smoke: the whole platform from the images, on this machine's RabbitMQ and PostgreSQL.

Every process (check-config, migrate, privacy's runtime role, run and relay of each service, the broker
permission table) is the image's own `python -m <package> ...`, run by image_python.py with `buildah run
--isolation chroot --network host`; scripts/upgestao_platform.py's Platform provisions and supervises
them as it does for `make up`. Production settings: UPGESTAO_ENV=production with fresh keys (the ones
deploy/k8s/secret.example.yaml lists), every service's own broker user on a vhost of its own, its own
PostgreSQL database, privacy running as its append-only runtime role. Two things differ from a cluster,
both because everything is on loopback here: mail goes to the notifier image's local SMTP sink (run with
UPGESTAO_ENV=test: production refuses a sink, and there is no real server to send to), and
NOTIFIER_PUBLIC_URL is a placeholder https:// address (production requires https for the links; no
link is opened here).

Steps, each printed: the images' user and HEALTHCHECK, the platform started, each process's /livez and
/readyz (its own probe port), the first admin's login and GET /v1/me through the gateway, a graceful stop
(exit codes), then everything removed: the processes (checked: none left), working containers, broker
users and vhost, databases and the runtime role, the data directory. Runs with the repository's venv
(`make images-smoke`): the Platform lists the services from their installed entry points.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT / "scripts")]

import build  # noqa: E402  (deploy/images/build.py)
import image_python  # noqa: E402
import upgestao_platform as platform  # noqa: E402

WRAPPER = HERE / "image_python.py"
IMAGE_UID = "10001"
PG_HOST = os.environ.get("UPGESTAO_SMOKE_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("UPGESTAO_SMOKE_PG_USER", "postgres")
RABBIT = os.environ.get("UPGESTAO_SMOKE_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
ADMIN_EMAIL = "admin@upgestao.example.com"
ADMIN_BIRTH_DATE = "1980-01-15"
STEP_TIMEOUT_S = 180.0


def step(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key_and_jwks() -> tuple[str, str]:
    """An Ed25519 seed for identity and the JWKS the gateway and the services pin (its public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = secrets.token_bytes(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(public).rstrip(b"=").decode(),
           "kid": hashlib.sha256(public).hexdigest()[:16], "alg": "EdDSA", "use": "sig"}
    return base64.b64encode(seed).decode(), json.dumps({"keys": [jwk]})


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", PG_HOST, "-U", PG_USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True, text=True)


def http(method: str, url: str, body: dict | None = None, token: str | None = None,
         timeout: float = 5.0) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def poll(what: str, check, timeout: float = STEP_TIMEOUT_S):
    """`check()` until it returns something truthy, at most `timeout` seconds; raises with what was seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last and last[0]:
            return last
        time.sleep(0.25)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s (last: {last})")


class ImagePlatform(platform.Platform):
    """The Platform whose `python` is image_python.py: its preflight checks the images, not a venv."""

    def preflight(self) -> None:
        platform.ensure_vhost(self.amqp_uri, self.echo, probe=self.probe_vhost)
        host, port = platform.split_address(self.http_address)
        if not platform.port_is_free(host, port):
            raise platform.PlatformError(f"{self.http_address} is taken")
        self.provision_broker()


def check_images(services: list[build.Service]) -> None:
    for service in services:
        inspected = subprocess.run(["buildah", "inspect", "--type", "image", service.image], capture_output=True,
                                   text=True)
        if inspected.returncode != 0:
            sys.exit(f"{service.image} is missing: run `make images`")
        config = json.loads(inspected.stdout)
        user = config["OCIv1"]["config"].get("User", "")
        health = (config.get("Docker", {}).get("config", {}).get("Healthcheck") or {}).get("Test")
        if user.split(":")[0] != IMAGE_UID or not health:
            sys.exit(f"{service.image}: user {user!r}, healthcheck {health!r}: expected {IMAGE_UID} and one")
        step(f"{service.image}: {build.image_size(service.image)}, user {user}, HEALTHCHECK {' '.join(health[1:2])}")


def run_healthcheck(image: str, label: str) -> int:
    """The image's own HEALTHCHECK command, as it is, in a new container of the image (host network)."""
    inspected = json.loads(subprocess.run(["buildah", "inspect", "--type", "image", image], check=True,
                                          capture_output=True, text=True).stdout)
    test = inspected["Docker"]["config"]["Healthcheck"]["Test"]
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    name = f"{label}-healthcheck-{secrets.token_hex(4)}"
    subprocess.run(["buildah", "from", "--pull-never", "--quiet", "--name", name, image], check=True,
                   capture_output=True)
    try:
        return subprocess.run(["buildah", "run", "--isolation", "chroot", "--network", "host", name, "--", *command],
                              capture_output=True, timeout=60).returncode
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


def leftover_processes(tag: str) -> list[int]:
    """Processes whose environment names this run (its data directory or vhost): none may outlive it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def main() -> int:
    services = build.services()
    check_images(services)
    tag = uuid.uuid4().hex[:8]
    label = f"upgestao-imgsmoke-{tag}"
    vhost = label
    amqp_uri = RABBIT.rstrip("/") + "/" + quote(vhost, safe="")
    data_dir = Path(tempfile.mkdtemp(prefix=f"{label}-"))
    os.chown(data_dir, int(IMAGE_UID), int(IMAGE_UID))
    os.environ[image_python.TAG_ENV] = label
    gateway = next(s for s in services if s.name == platform.HTTP_SERVICE)
    probe_host, probe_port = platform.split_address(image_python.IMAGE_PROBE_ADDRESS)
    healthcheck = platform.port_is_free("0.0.0.0", probe_port)  # the gateway keeps the image's 0.0.0.0:9000
    if healthcheck:
        os.environ[image_python.DEFAULT_PROBE_ENV] = f"{gateway.package}-run"
    else:
        step(f"port {probe_port} is taken on this machine: the HEALTHCHECK command is not tried")
    databases = {s.name: f"imgsmoke_{s.name}_{tag}" for s in services}
    sink = None
    running = None
    failed = False
    started = time.monotonic()
    try:
        for name in databases.values():
            psql(f'CREATE DATABASE "{name}"')
        step(f"databases {', '.join(databases.values())}; vhost {vhost}; data {data_dir}")

        sink_address = platform.free_address()
        sink_host, sink_port = platform.split_address(sink_address)
        notifier = next(s for s in services if s.name == "notifier")
        sink_env = {**os.environ, "UPGESTAO_ENV": "test", "UPGESTAO_DATA_DIR": str(data_dir)}
        sink_log = open(data_dir / "mail-sink.log", "w")  # noqa: SIM115 - closed in finally
        sink = subprocess.Popen([str(WRAPPER), "-m", notifier.package, "sink", "--host", sink_host,
                                 "--port", str(sink_port), "--directory", str(data_dir / "mail")],
                                env=sink_env, stdin=subprocess.DEVNULL, stdout=sink_log, stderr=subprocess.STDOUT)
        poll("the SMTP sink", lambda: (platform.tcp_answers(sink_host, sink_port, 1.0), sink.poll()), 60)
        step(f"SMTP sink from {notifier.image} on {sink_address}")

        signing_key, jwks = signing_key_and_jwks()
        password = "Smoke-" + secrets.token_urlsafe(18)
        pg = f"postgresql://{PG_USER}@{PG_HOST}:5432"
        from upgestao_kernel.config import env_prefix

        env = {
            "UPGESTAO_ENV": "production",
            "UPGESTAO_MASTER_KEY": key(), "UPGESTAO_BLIND_INDEX_KEY": key(),
            "IDENTITY_JWT_SIGNING_KEYS": signing_key, "UPGESTAO_IDENTITY_JWKS": jwks,
            "PRIVACY_AUDIT_SIGNING_KEY": key(), "NOTIFIER_SUPPRESSION_KEY": key(),
            "INTEGRATIONS_SECRETS_KEY": key(), "MESSAGING_SEARCH_KEY": key(), "UPGESTAO_WEB_SESSION_KEY": key(),
            "SMTP_URL": f"smtp://{sink_address}", "NOTIFIER_PUBLIC_URL": "https://upgestao.example.com",
            "NOTIFIER_FROM": "UpGestão <no-reply@upgestao.example.com>",
            "UPGESTAO_WEBHOOK_ALLOWED_NETWORKS": "",
            "UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL, "UPGESTAO_ADMIN_PASSWORD": password,
            "UPGESTAO_ADMIN_BIRTH_DATE": ADMIN_BIRTH_DATE, "UPGESTAO_ADMIN_NAME": "Primeira Admin",
            **{f"{env_prefix(service)}_DATABASE_URL": f"{pg}/{name}" for service, name in databases.items()},
        }
        running = ImagePlatform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=platform.free_address(),
                                env=env, python=str(WRAPPER), echo=lambda text: step(text))
        running.start(timeout=STEP_TIMEOUT_S)
        step(f"platform ready: {len(running.children)} processes from the images, gateway {running.url} "
             f"({time.monotonic() - started:.0f} s since the start)")

        for service in services:
            for command in image_python.PROBED_COMMANDS:
                where = data_dir / image_python.PROBES_DIR / f"{service.package}-{command}"
                address = where.read_text().strip()
                for path in ("livez", "readyz"):
                    status, _ = poll(f"{service.name} {command} /{path}",
                                     lambda a=address, p=path: ((s := http("GET", f"http://{a}/{p}"))[0] == 200, s))
                step(f"{service.name:12} {command:5} probes on {address}: /livez 200, /readyz 200")

        if healthcheck:
            code = run_healthcheck(gateway.image, label)
            step(f"HEALTHCHECK of {gateway.image}, run as it is against its run process: exit {code}")
            if code != 0:
                raise RuntimeError("the image's HEALTHCHECK failed against a live process")

        status, answer = poll("the first admin's login", lambda: (
            (r := http("POST", running.url + "/v1/auth/login", {"email": ADMIN_EMAIL, "password": password}))[0]
            == 200, r))[1]
        step(f"POST /v1/auth/login as the first admin: {status} ({', '.join(sorted(answer))})")
        status, me = http("GET", running.url + "/v1/me", token=answer["access_token"])
        if status != 200 or not isinstance(me, dict):
            raise RuntimeError(f"GET /v1/me answered {status}")
        step(f"GET /v1/me through the gateway: {status}, role {me.get('role')!r} (fields: {', '.join(sorted(me))})")
    except BaseException as exc:
        failed = True
        step(f"FAILED: {type(exc).__name__}: {exc}")
        if running is not None:
            for log in sorted(running.log_dir.glob("*.log")):
                print(f"--- {log.name}\n{platform.tail(log, 15)}", file=sys.stderr)
    finally:
        if running is not None:
            codes = running.stop()
            step(f"stopped: {', '.join(f'{name} {code}' for name, code in sorted(codes.items()))}")
            running.remove_broker_users()
            running.remove_database_roles()
            if healthcheck and not failed:
                code = run_healthcheck(gateway.image, label)
                step(f"HEALTHCHECK once the gateway is stopped: exit {code} (must fail)")
                failed = failed or code == 0
        if sink is not None:
            sink.terminate()
            sink.wait(30)
            sink_log.close()
        left = leftover_processes(label)
        if left:
            failed = True
            step(f"FAILED: processes left running: {left} (killed)")
            for pid in left:
                with __import__("contextlib").suppress(OSError):
                    os.kill(pid, 9)
        containers = subprocess.run(["buildah", "containers", "--format", "{{.ContainerName}}"],
                                    capture_output=True, text=True).stdout.split()
        stale = [name for name in containers if name.startswith(label)]
        if stale:
            subprocess.run(["buildah", "rm", *stale], capture_output=True)
        for name in databases.values():
            try:
                psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except subprocess.CalledProcessError as exc:
                step(f"could not drop {name}: {exc.stderr.strip()}")
        for role in getattr(running, "database_roles_created", []):
            psql(f'DROP ROLE IF EXISTS "{role}"')
        platform.RabbitAdmin(amqp_uri).delete_vhost(vhost)
        shutil.rmtree(data_dir, ignore_errors=True)
        step(f"removed: {len(stale)} stale working containers, databases, broker users and vhost, data directory")
    step(f"{'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
