"""requirements.lock covers every requirement of the platform, each pin with hashes (issue 16).

`make venv` installs third-party packages only from the lock (`--require-hashes --no-deps`), so a pin
changed in a pyproject.toml or requirements-dev.txt without `make lock` would silently not be installed:
these checks fail first. Offline: they read files only."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


def package_folders() -> list[Path]:
    return [ROOT / "kernel", *sorted(p.parent for p in (ROOT / "services").glob("*/pyproject.toml"))]


def local_names() -> set[str]:
    names = set()
    for folder in package_folders():
        with (folder / "pyproject.toml").open("rb") as handle:
            names.add(canonicalize_name(tomllib.load(handle)["project"]["name"]))
    return names


def declared_requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) of every package's dependencies and every line of requirements-dev.txt."""
    found = []
    for folder in package_folders():
        with (folder / "pyproject.toml").open("rb") as handle:
            project = tomllib.load(handle)["project"]
        found += [(f"{folder.name}/pyproject.toml", Requirement(dep)) for dep in project.get("dependencies", [])]
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            found.append(("requirements-dev.txt", Requirement(line)))
    return found


def parse_lock(text: str) -> tuple[dict[str, str], list[str]]:
    """The lock's pins (canonical name -> version) and the problems of its syntax: a requirement
    without a --hash, an entry that is not `name==version`, a name pinned twice."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    entries: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("--hash") else raw.rstrip()
        if not line.strip():
            continue
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            entries.append(current.strip())
            current = ""
    if current.strip():
        entries.append(current.strip())
    for entry in entries:
        requirement, *options = entry.split(" --")
        match = PIN.match(requirement.strip())
        if match is None or " " in requirement.strip():
            problems.append(f"not a name==version pin: {requirement.strip()!r}")
            continue
        name = canonicalize_name(match["name"])
        if name in pins:
            problems.append(f"{name} pinned twice")
        pins[name] = match["version"]
        hashes = [opt for opt in options if re.fullmatch(r"hash=sha256:[0-9a-f]{64}", opt.strip())]
        if not hashes or len(hashes) != len(options):
            problems.append(f"{name}=={match['version']} has no sha256 --hash (or an option that is not one)")
    return pins, problems


def mismatches(pins: dict[str, str], declared: list[tuple[str, Requirement]], local: set[str]) -> list[str]:
    """Every declared requirement that the lock does not satisfy (missing, or its version outside the specifier),
    and every local package that the lock pins (ours install from their folders, never from a registry)."""
    problems = [f"{name} is one of ours: it must not be in the lock" for name in sorted(local & set(pins))]
    for where, requirement in declared:
        name = canonicalize_name(requirement.name)
        if name in local:
            continue
        if name not in pins:
            problems.append(f"{where}: {requirement} is not in requirements.lock (run `make lock`)")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{where}: {requirement} but requirements.lock pins {name}=={pins[name]} (run `make lock`)")
    return problems


def test_every_lock_entry_is_a_pin_with_hashes():
    pins, problems = parse_lock(LOCK.read_text())
    assert problems == []
    assert len(pins) > 20


def test_every_declared_requirement_is_locked_at_a_version_it_allows():
    pins, _ = parse_lock(LOCK.read_text())
    assert mismatches(pins, declared_requirements(), local_names()) == []


def test_the_checks_catch_a_missing_hash_a_loose_pin_and_a_stale_version():
    hashed = "--hash=sha256:" + "a" * 64
    pins, problems = parse_lock(
        f"alembic==1.0 \\\n    {hashed}\n"
        "kombu==5.7.0\n"
        f"nameko>=2 \\\n    {hashed}\n"
    )
    assert pins == {"alembic": "1.0", "kombu": "5.7.0"}
    assert problems == ["kombu==5.7.0 has no sha256 --hash (or an option that is not one)",
                        "not a name==version pin: 'nameko>=2'"]
    declared = [("kernel/pyproject.toml", Requirement("alembic==1.20.1")),
                ("kernel/pyproject.toml", Requirement("setuptools<81")),
                ("services/x/pyproject.toml", Requirement("upgestao-kernel"))]
    assert mismatches({"alembic": "1.0", "upgestao-kernel": "0.1.0"}, declared, {"upgestao-kernel"}) == [
        "upgestao-kernel is one of ours: it must not be in the lock",
        "kernel/pyproject.toml: alembic==1.20.1 but requirements.lock pins alembic==1.0 (run `make lock`)",
        "kernel/pyproject.toml: setuptools<81 is not in requirements.lock (run `make lock`)",
    ]


def test_the_image_build_finds_setuptools_in_the_lock_with_its_hashes():
    """deploy/Dockerfile's wheel stage installs setuptools from the lock (deploy/images/lock_entries.py)
    before building the source-only pins without build isolation."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lock_entries", ROOT / "deploy" / "images" / "lock_entries.py")
    lock_entries = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock_entries)
    entry = lock_entries.entries(LOCK.read_text())["setuptools"]
    pins, problems = parse_lock(entry)
    assert problems == [] and list(pins) == ["setuptools"]
    assert lock_entries.main([str(LOCK), "no-such-package"]) == 1
