"""``make test``'s split of the infra tests (scripts/test_all.py): every test module in exactly one part,
a new one too, whatever paths are given; the modules that stop the machine's broker run alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path, PurePosixPath

import pytest
from e2e_platform import load_script

ROOT = Path(__file__).resolve().parent.parent
split = load_script("scripts/test_all.py", "upgestao_test_all_under_test")
TESTPATHS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
# what a module that takes the machine's broker or database server away says (the chaos run: bench/chaos.py)
DISRUPTS = ("rabbitmqctl", "stop_app", "pg_ctlcluster", "bench/chaos.py")


def repository_modules() -> list[PurePosixPath]:
    found = set()
    for folder in TESTPATHS:
        for pattern in ("test_*.py", "*_test.py"):
            found |= {PurePosixPath(p.relative_to(ROOT).as_posix()) for p in (ROOT / folder).rglob(pattern)
                      if ".venv" not in p.parts and "node_modules" not in p.parts}
    return sorted(found)


def test_every_module_of_the_repository_is_in_one_part_and_never_skipped_by_its_own():
    modules = repository_modules()
    assert len(modules) > 100
    parts = Counter(split.part_of(module) for module in modules)
    assert set(parts) == set(split.PARTS) and parts["serial"] == len(split.SERIAL)
    for module in modules:
        part = split.part_of(module)
        for folder in module.parents:  # collection reaches it: no folder above it is skipped by its part
            assert split.part_may_hold(folder, part), (module, folder, part)


def test_the_listed_modules_exist_so_a_renamed_one_is_not_silently_moved():
    for module in (*split.SERIAL, *split.OWN_PLATFORM):
        assert (ROOT / module).is_file(), module


def test_every_module_that_stops_the_broker_or_the_database_runs_alone():
    for module in repository_modules():
        text = (ROOT / module).read_text(encoding="utf-8")
        if any(word in text for word in DISRUPTS) and module != PurePosixPath("tests/test_test_all.py"):
            assert split.part_of(module) == "serial", module


@pytest.mark.parametrize(("argv", "expected"), [
    (["-x", "--basetemp=/tmp/mine", "-k", "ping"], ("/tmp/mine", ["-x", "-k", "ping"])),
    (["--basetemp", "/tmp/a", "tests/x.py", "--basetemp=/tmp/b"], ("/tmp/b", ["tests/x.py"])),
    (["-q"], (None, ["-q"])),
])
def test_a_basetemp_given_is_taken_out_so_the_parallel_parts_never_share_one_folder(argv, expected):
    given, rest = split.split_basetemp(argv)
    assert (str(given) if given else None, rest) == expected


def test_the_parts():
    assert split.part_of("tests/test_chaos_e2e.py") == "serial"
    assert split.part_of("tests/test_api_fuzz_e2e.py") == "services"
    assert split.part_of("tests/test_identity_e2e.py") == split.part_of("tests/new/deeper/test_x.py") == "e2e"
    assert split.part_of("services/identity/tests/test_x.py") == split.part_of("kernel/tests/test_x.py") == "services"
    assert split.part_of("elsewhere/test_x.py") == split.part_of(None) == "services"
    assert split.part_of("tests_other/test_x.py") == "services"  # a sibling named alike is not tests/
    assert not split.part_may_hold("services", "e2e") and not split.part_may_hold("tests/security", "services")
    assert not split.part_may_hold("tests/security", "serial") and not split.part_may_hold("kernel", "serial")
    assert all(split.part_may_hold(".", part) for part in split.PARTS)


@pytest.mark.parametrize(("statuses", "expected"), [
    ([0, 0, 0, 0], 0), ([5, 0, 5, 0], 0), ([5, 5, 5, 5], 5), ([0, 1, 0, 0], 1), ([5, 5, 5, 1], 1),
    ([0, 0, 2, 1], 2), ([0, 0, 0, 4], 4),
])
def test_the_exit_status(statuses, expected):
    assert split.exit_status(statuses) == expected


# -- the same split under pytest itself, on a repository made up here -------------------------------

CONFTEST = """\
import importlib.util

spec = importlib.util.spec_from_file_location("split", {script!r})
split = importlib.util.module_from_spec(spec)
spec.loader.exec_module(split)


def pytest_addoption(parser):
    split.addoption(parser)


def pytest_ignore_collect(collection_path, config):
    return split.ignore_collect(collection_path, config)


def pytest_collection_modifyitems(config, items):
    split.deselect_other_parts(config, items)
"""


@pytest.fixture(scope="module")
def made_up(tmp_path_factory) -> Path:
    """The repository's test paths, the listed modules, and new modules in old and new places."""
    root = tmp_path_factory.mktemp("repo")
    (root / "pyproject.toml").write_text(f"[tool.pytest.ini_options]\ntestpaths = {TESTPATHS!r}\n")
    (root / "conftest.py").write_text(CONFTEST.format(script=str(ROOT / "scripts" / "test_all.py")))
    modules = [*split.SERIAL, *split.OWN_PLATFORM, "tests/test_plain.py", "tests/new/test_new_e2e.py",
               "tests/security/test_attack.py", "kernel/tests/test_kernel.py", "services/newcomer/tests/test_new.py",
               "services/identity/tests/unit/test_unit.py", "elsewhere/test_outside.py", "tests_other/test_sibling.py"]
    for module in modules:
        (root / module).parent.mkdir(parents=True, exist_ok=True)
        (root / module).write_text("def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    (root / "tests" / "helper.py").write_text("X = 1\n")  # not a test module
    return root


def collected(root: Path, *args: str) -> list[str]:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                             "--rootdir", str(root), "-c", str(root / "pyproject.toml"), *args],
                            cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 5), result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("args", [
    [], ["tests"], ["."], ["services", "kernel/tests"], ["tests/test_chaos_e2e.py"],
    ["tests/test_chaos_e2e.py::test_one", "tests/test_api_fuzz_e2e.py::test_two"],
    ["tests/new"], ["elsewhere", "tests_other"], ["-k", "two"], ["tests", "-k", "one"],
], ids=str)
def test_under_pytest_the_parts_together_collect_what_one_pytest_does_once(made_up, args):
    whole = collected(made_up, *args)
    parts = {part: collected(made_up, split.OPTION, part, *args) for part in split.PARTS}
    assert whole, "the case collects something"
    assert Counter(test for found in parts.values() for test in found) == Counter(whole)
    for part, found in parts.items():
        assert all(split.part_of(test.partition("::")[0]) == part for test in found), (part, found)


def test_with_no_path_every_test_path_is_collected_and_the_new_modules_land_where_expected(made_up):
    parts = {part: {test.partition("::")[0] for test in collected(made_up, split.OPTION, part)}
             for part in split.PARTS}
    assert parts["serial"] == set(split.SERIAL)
    assert {"tests/new/test_new_e2e.py", "tests/security/test_attack.py", "tests/test_plain.py"} == parts["e2e"]
    new = {"services/newcomer/tests/test_new.py", "kernel/tests/test_kernel.py"}
    assert {*new, *split.OWN_PLATFORM} <= parts["services"]
    assert "elsewhere/test_outside.py" not in parts["services"]  # not a test path: only when given
