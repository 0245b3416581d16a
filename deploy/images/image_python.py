#!/usr/bin/env python3
"""A `python` for scripts/upgestao_platform.py's Platform that runs each command inside its service's image.

`image_python.py -m upgestao_identity run` becomes `python -m upgestao_identity run` in a new working
container of `localhost/upgestao/identity:<version>` (`buildah run --isolation chroot --network host`, as
the image's user), so the smoke test (smoke.py) drives the images' own processes with the Platform's
provisioning, migrations and supervision. `-m upgestao_kernel...` runs in the gateway's image (every image
holds the kernel).

The environment reaches the process through a file mounted read-only (never on a command line, which any
local user can read), holding only the platform's variables (ENV_PREFIXES, ENV_NAMES). SIGTERM and SIGINT
are passed to the process itself: buildah run would kill it instead, which is no graceful stop. The
working container is removed when the process ends; smoke.py removes any left by a SIGKILL
(containers named `<UPGESTAO_IMAGE_RUN_TAG>-...`).
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2] / "scripts"))
from build import services  # noqa: E402  (deploy/images/build.py, beside this file)
from upgestao_platform import free_address  # noqa: E402  (stdlib only, as this wrapper must be)

TAG_ENV = "UPGESTAO_IMAGE_RUN_TAG"  # names the working containers, so the smoke can remove them all
ENV_PREFIXES = ("UPGESTAO_", "AMQP_", "GATEWAY_", "IDENTITY_", "MESSAGING_", "PRIVACY_", "NOTIFIER_",
                "INTEGRATIONS_", "SMTP_")
ENV_NAMES = ("PYTHONUNBUFFERED", "TZ")
KERNEL = "upgestao_kernel"
ENV_IN_CONTAINER = "/run/upgestao.env"
PROBE_ENV = "UPGESTAO_PROBE_ADDRESS"
PROBED_COMMANDS = ("run", "relay")  # the processes that serve /livez and /readyz
PROBES_DIR = "probes"  # <data dir>/probes/<package>-<command>: the probe address each process got
# "<package>-<command>" of the one process that keeps the image's own probe address (0.0.0.0:9000), so
# that the image's HEALTHCHECK can be run against it as it is
DEFAULT_PROBE_ENV = "UPGESTAO_IMAGE_DEFAULT_PROBE"
IMAGE_PROBE_ADDRESS = "127.0.0.1:9000"


def image_for(module: str) -> str:
    package = module.split(".", 1)[0]
    known = {s.package: s for s in services()}
    if package == KERNEL:
        return known.get("upgestao_gateway", next(iter(known.values()))).image
    if package not in known:
        sys.exit(f"image_python: no image holds {package} (services: {', '.join(sorted(known))})")
    return known[package].image


def probe_address(argv: list[str], data_dir: str | None) -> str | None:
    """On the host network every process needs a probe port of its own (the image's 0.0.0.0:9000 would be
    taken by the first): a free one, written to <data dir>/probes/ for the smoke to poll."""
    if len(argv) < 3 or argv[2] not in PROBED_COMMANDS or not data_dir:
        return None
    keep = os.environ.get(DEFAULT_PROBE_ENV) == f"{argv[1]}-{argv[2]}"
    address = IMAGE_PROBE_ADDRESS if keep else free_address()
    probes = Path(data_dir) / PROBES_DIR
    probes.mkdir(exist_ok=True)
    (probes / f"{argv[1]}-{argv[2]}").write_text(address)
    return None if keep else address


def environment_file(directory: Path, probe: str | None) -> Path:
    """The platform's variables as `export NAME='value'` lines, readable by the image's user only."""
    chosen = {name: value for name, value in os.environ.items()
              if (name.startswith(ENV_PREFIXES) or name in ENV_NAMES) and name not in (TAG_ENV, DEFAULT_PROBE_ENV)
              and name.isidentifier()}
    if probe:
        chosen[PROBE_ENV] = probe
    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(chosen.items())]
    path = directory / "env"
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o400)
    os.chown(path, 10001, 10001)
    return path


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def forward(proc: subprocess.Popen, signum: int) -> None:
    """Signal the command itself: the processes under buildah that are not buildah's own."""
    for pid in descendants(proc.pid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            if not name.startswith(("buildah", "memfd:")):
                os.kill(pid, signum)
        except OSError:
            continue


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "-m":
        sys.exit("usage: image_python.py -m <package>[.<module>] [args...]")
    image = image_for(argv[1])
    data_dir = os.environ.get("UPGESTAO_DATA_DIR")
    name = f"{os.environ.get(TAG_ENV, 'upgestao-image-run')}-{argv[1].replace('.', '-')}-{secrets.token_hex(4)}"
    made = subprocess.run(["buildah", "from", "--pull-never", "--quiet", "--name", name, image],
                          capture_output=True, text=True)
    if made.returncode != 0:
        sys.exit(f"image_python: buildah from {image}: {made.stderr.strip()}")
    with tempfile.TemporaryDirectory(prefix="upgestao-image-env-") as tmp:
        os.chmod(tmp, 0o711)
        env_file = environment_file(Path(tmp), probe_address(argv, data_dir))
        command = ["buildah", "run", "--isolation", "chroot", "--network", "host",
                   "-v", f"{env_file}:{ENV_IN_CONTAINER}:ro"]
        if data_dir:
            command += ["-v", f"{data_dir}:{data_dir}"]
        command += [name, "--", "/bin/sh", "-c", f'set -a && . {ENV_IN_CONTAINER} && exec python -m "$@"', "sh",
                    *argv[1:]]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda received, _frame: forward(proc, received))
        try:
            code = proc.wait()
        finally:
            subprocess.run(["buildah", "rm", name], capture_output=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
