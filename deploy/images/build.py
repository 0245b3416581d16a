#!/usr/bin/env python3
"""make images: a Debian bookworm base with Python 3.11 made here, then one image per service.

1. The base (`localhost/upgestao/python:3.11-bookworm`): mmdebstrap's `essential` variant of bookworm
   plus python3, ca-certificates, tzdata, passwd and libstdc++6, without docs, man pages,
   locales and glibc's iconv modules, merged /usr, file times set to SOURCE_DATE_EPOCH (the last commit's
   time unless given), imported with buildah. Beside it the build base (`.../python-build:3.11-bookworm`):
   the same plus python3-venv and binutils, for the wheel and builder stages only (venv, `strip`). Both
   are made together (the same python3) and only when their recipe (the constants below) changes or
   with --refresh-base (for Debian's security updates).
2. Every folder of services/ with a pyproject.toml, from deploy/Dockerfile with `buildah build --layers
   --isolation chroot --format docker` (docker format: OCI drops HEALTHCHECK). The wheel stage does not
   depend on the service, so it is built once and every later service reuses it from the layer cache.

Stdlib only; needs root (apt-get installs buildah and mmdebstrap when missing). Images are tagged
`localhost/upgestao/<service>:<version>` (the service's name in the `upgestao.services` entry-point group).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Dockerfile"
IGNOREFILE = ROOT / "deploy" / "Dockerfile.dockerignore"
REGISTRY = "localhost/upgestao"
BASE_IMAGE = f"{REGISTRY}/python:3.11-bookworm"
BUILD_IMAGE = f"{REGISTRY}/python-build:3.11-bookworm"
# strip, and venv with ensurepip, in the build stages only: a runtime image runs a venv made there
BUILD_PACKAGES = ("python3-venv", "binutils")
SUITE = "bookworm"
MIRROR = os.environ.get("UPGESTAO_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# libstdc++6: greenlet (eventlet) links it; `essential` alone does not have it.
BASE_PACKAGES = ("python3", "ca-certificates", "tzdata", "passwd", "libstdc++6")
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*",
)
RECIPE_LABEL = "org.upgestao.base-recipe"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = {"buildah": "buildah", "mmdebstrap": "mmdebstrap"}
SIZE_BUDGET_MB = 200


@dataclass(frozen=True)
class Service:
    name: str  # the entry-point name: gateway, identity, ...
    folder: str  # under services/
    package: str  # the Python package: python -m <package>
    version: str

    @property
    def image(self) -> str:
        return f"{REGISTRY}/{self.name}:{self.version}"


def services() -> list[Service]:
    """Every folder of services/ with a pyproject.toml, by its `upgestao.services` entry point."""
    found = []
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        with pyproject.open("rb") as handle:
            project = tomllib.load(handle)["project"]
        ((name, target),) = project["entry-points"]["upgestao.services"].items()
        found.append(Service(name, pyproject.parent.name, target.split(".", 1)[0], project["version"]))
    return found


def log(message: str) -> None:
    print(f"[images] {message}", flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def ensure_tools() -> None:
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"make images needs {', '.join(missing)} (as root: apt-get install {' '.join(missing)})")
    log(f"installing {' '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        run(install, env=env, stdout=subprocess.DEVNULL)


def source_date_epoch() -> str:
    given = os.environ.get("SOURCE_DATE_EPOCH")
    if given:
        return given
    return subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], check=True,
                          capture_output=True, text=True).stdout.strip()


def base_recipe() -> str:
    """A digest of everything that makes the base: a change rebuilds it."""
    recipe = json.dumps([SUITE, MIRROR, BASE_PACKAGES, BUILD_PACKAGES, DPKG_OPTIONS, "essential", "merged-usr"])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def image_label(image: str, label: str) -> str | None:
    result = subprocess.run(["buildah", "inspect", "--type", "image", "--format",
                             f'{{{{index .OCIv1.Config.Labels "{label}"}}}}', image],
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def build_bases(refresh: bool) -> None:
    """The base and the build base, together (the same python3 in both), when either is not current."""
    recipe = base_recipe()
    if not refresh and all(image_label(image, RECIPE_LABEL) == recipe for image in (BASE_IMAGE, BUILD_IMAGE)):
        log(f"bases {BASE_IMAGE} and {BUILD_IMAGE} are current (recipe {recipe}; --refresh-base rebuilds them)")
        return
    epoch = source_date_epoch()
    build_base(BASE_IMAGE, BASE_PACKAGES, recipe, epoch)
    build_base(BUILD_IMAGE, BASE_PACKAGES + BUILD_PACKAGES, recipe, epoch)


def build_base(image: str, packages: tuple[str, ...], recipe: str, epoch: str) -> None:
    log(f"{image}: mmdebstrap {SUITE} from {MIRROR} (SOURCE_DATE_EPOCH={epoch})")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="upgestao-rootfs-", dir="/var/tmp") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        command = ["mmdebstrap", "--mode=root", "--variant=essential", "--quiet",
                   f"--include={','.join(packages)}",
                   "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                   *[f"--dpkgopt={option}" for option in DPKG_OPTIONS],
                   SUITE, str(tarball), MIRROR]
        with (Path(tmp) / "mmdebstrap.log").open("w+") as output:
            made = subprocess.run(command, env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
                                  stdout=output, stderr=subprocess.STDOUT)
            if made.returncode != 0:
                output.seek(0)
                sys.exit(f"mmdebstrap failed ({made.returncode}):\n" + output.read()[-4000:])
        container = run(["buildah", "from", "scratch"], capture_output=True, text=True).stdout.strip()
        try:
            run(["buildah", "add", "--quiet", container, str(tarball), "/"], stdout=subprocess.DEVNULL)
            run(["buildah", "config", "--env", "LANG=C.UTF-8",
                 "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--cmd", '["python3"]', "--label", f"{RECIPE_LABEL}={recipe}",
                 "--label", f"org.opencontainers.image.description=Debian {SUITE} ({MIRROR}) with Python 3.11",
                 container])
            run(["buildah", "commit", "--quiet", "--timestamp", epoch, container, image],
                stdout=subprocess.DEVNULL)
        finally:
            subprocess.run(["buildah", "rm", container], stdout=subprocess.DEVNULL)
    log(f"{image}: {image_size(image)} in {time.monotonic() - started:.0f} s")


def build_service(service: Service) -> None:
    command = ["buildah", "build", "--isolation", "chroot", "--layers", "--format", "docker", "--pull-never",
               "--quiet", "-f", str(CONTAINERFILE), "--ignorefile", str(IGNOREFILE),
               "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"BUILD_IMAGE={BUILD_IMAGE}",
               "--build-arg", f"SERVICE={service.folder}",
               "--build-arg", f"PACKAGE={service.package}",
               "-t", service.image]
    if HOST_CA_BUNDLE.is_file():
        # pip (PIP_CERT) trusts what this machine trusts, in the RUN steps only: never in a layer.
        command += ["-v", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    started = time.monotonic()
    run([*command, str(ROOT)], stdout=subprocess.DEVNULL)
    log(f"{service.image}: {image_size(service.image)} in {time.monotonic() - started:.0f} s")


def image_size(image: str) -> str:
    listing = json.loads(run(["buildah", "images", "--json", image], capture_output=True, text=True).stdout)
    return listing[0]["size"]


def size_mb(size: str) -> float:
    number, unit = size.split()
    return float(number) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh-base", action="store_true", help="rebuild the base even if its recipe is the same")
    parser.add_argument("--strict-size", action="store_true", help=f"fail when an image is over {SIZE_BUDGET_MB} MB")
    parser.add_argument("services", nargs="*", help="only these services (entry-point names); default: all")
    args = parser.parse_args(argv)
    ensure_tools()
    started = time.monotonic()
    build_bases(args.refresh_base)
    chosen = [s for s in services() if not args.services or s.name in args.services]
    unknown = set(args.services) - {s.name for s in chosen}
    if unknown:
        sys.exit(f"unknown services: {', '.join(sorted(unknown))}")
    for service in chosen:
        build_service(service)
    over = []
    for service in chosen:
        size = image_size(service.image)
        over += [f"{service.image} {size}"] if size_mb(size) > SIZE_BUDGET_MB else []
        print(f"{service.image:45} {size:>8}")
    log(f"{len(chosen)} images in {time.monotonic() - started:.0f} s")
    if over:  # a target, said loudly; --strict-size makes it an error
        print(f"WARNING: over the {SIZE_BUDGET_MB} MB target: {'; '.join(over)} (deploy/images/README.md)",
              file=sys.stderr)
        return 1 if args.strict_size else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
