"""``make test``'s pytest: the tests that need RabbitMQ or PostgreSQL in three parts, and the others.

The root conftest.py marks the first ``infra``. They spend most of their time waiting on the broker, the
databases and the platform's processes; the others (about 2,900 unit, property and fuzz tests) are
CPU-bound and need neither. One infra pytest took 21 minutes on CI's 2 cores, so the infra tests are
split by test module (:func:`part_of`) into three parts, each a pytest process of its own
(``--infra-part``):

``e2e``       tests/ (most of it on the session platform of tests/conftest.py, started once per process);
``services``  everything else: services/*, kernel/tests, any new test path, and the tests/ modules that
              start platforms of their own (:data:`OWN_PLATFORM`), which balances the two;
``serial``    the modules that stop the machine's broker (:data:`SERIAL`): run alone, after the others.

Phase 1 runs ``e2e``, ``services`` and the others (``UPGESTAO_TEST_OFFLINE=1``: the broker and every
database at a closed port, as in ``make test-fast``, so a test that reaches them unmarked fails instead
of racing the infra runs) side by side; phase 2 runs ``serial``. The parts cannot collide: every test
makes its own vhost, databases and broker users (uuid names; ``upgestao_kernel.testing``,
tests/e2e_platform.py), ports are free ones, and each process has its own ``--basetemp`` (kept, and
named, when something failed; a ``--basetemp`` given is the folder they are made in).

Every process gets the same extra arguments (``-k``, ``-x``, paths relative to the repository root, …).
A part keeps only the tests of its own modules: it skips the others' folders and files while collecting
(``pytest_ignore_collect``) and deselects whatever of theirs was still collected (a path given
explicitly). So a given path runs in the part that owns it, and any test module, a new one too, runs in
exactly one part (tests/test_test_all.py checks it). A part that selects nothing exits 5.

``e2e`` and phase 2 stream to the console; the output of ``services`` and of the others is kept in files
and shown once ``e2e`` has ended (in the order they end), then one line with each process's exit status
and wall time. The exit status is the first failing one of e2e, services, serial and the others; a
process selecting nothing (5) is no failure unless none selected anything.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
NO_TESTS = 5  # pytest's exit status when nothing was selected

E2E_AREA = "tests"  # the folder of the e2e part
# Stop and start the machine's own broker (rabbitmqctl stop_app/start_app; the chaos plan's broker fault):
# every other infra test would see it, so they run alone, after the others.
SERIAL = ("tests/test_broker_outage_e2e.py", "tests/test_chaos_e2e.py")
# tests/ modules that start whole platforms of their own, not the session one: with the services' part,
# which is otherwise the shorter one.
OWN_PLATFORM = ("tests/test_api_fuzz_e2e.py", "tests/test_sqlite_default_e2e.py", "tests/test_supervisor_e2e.py")
PARTS = ("e2e", "services", "serial")
OPTION = "--infra-part"


# -- the split (also a pytest plugin's hooks: conftest.py calls them) ----------------------------------

def _relative(path: Path, root: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(Path(path).resolve().relative_to(root.resolve()).as_posix())
    except ValueError:
        return None


def _within(path: PurePosixPath, folder: str) -> bool:
    return path == PurePosixPath(folder) or PurePosixPath(folder) in path.parents


def part_of(module: str | PurePosixPath | None) -> str:
    """The part that runs the tests of ``module`` (its path relative to the repository root; ``None``:
    outside it)."""
    if module is None:
        return "services"
    path = PurePosixPath(module)
    if str(path) in SERIAL:
        return "serial"
    if str(path) in OWN_PLATFORM:
        return "services"
    return "e2e" if _within(path, E2E_AREA) else "services"


def part_may_hold(folder: str | PurePosixPath | None, part: str) -> bool:
    """Whether a module of ``part`` can be under ``folder`` (relative to the root; ``None``: outside it)."""
    if folder is None:
        return part == "services"
    path = PurePosixPath(folder)

    def some_under(modules) -> bool:
        return any(_within(PurePosixPath(module), str(path)) for module in modules)

    if part == "serial":
        return some_under(SERIAL)
    if part == "e2e":
        return _within(path, E2E_AREA) or _within(PurePosixPath(E2E_AREA), str(path))
    return not _within(path, E2E_AREA) or some_under(OWN_PLATFORM)


def addoption(parser) -> None:
    parser.addoption(OPTION, choices=PARTS, default=None,
                     help="only the tests of this part of the infra tests (scripts/test_all.py)")


def ignore_collect(collection_path: Path, config) -> bool | None:
    """``True`` for a folder holding no module of the part, or a test module of another part; else ``None``
    (never ``False``: that would overrule ``--ignore``)."""
    part = config.getoption(OPTION)
    if not part:
        return None
    relative = _relative(collection_path, config.rootpath)
    if collection_path.is_dir():
        return None if part_may_hold(relative, part) else True
    patterns = config.getini("python_files")
    if not any(fnmatch.fnmatch(collection_path.name, pattern) for pattern in patterns):
        return None  # conftest.py, __init__.py, data: not a test module
    return None if part_of(relative) == part else True


def deselect_other_parts(config, items: list) -> None:
    """Deselect the items of the other parts that were collected all the same (a path given explicitly)."""
    part = config.getoption(OPTION)
    if not part:
        return
    mine = [item for item in items if part_of(_relative(item.path, config.rootpath)) == part]
    if len(mine) != len(items):
        kept = set(mine)
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = mine


# -- the run ---------------------------------------------------------------------------------------

def pytest_command(marker: str, argv: list[str], basetemp: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", marker, "--durations=25", f"--basetemp={basetemp}", *argv]


class Run:
    """One pytest process: its output on the console (``log`` None) or in a file, its exit status and wall time."""

    def __init__(self, name: str, command: list[str], log=None, env=None) -> None:
        self.name, self.log = name, log
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT if log else None)
        self.ended: float | None = None
        self.shown = log is None

    @property
    def status(self) -> int | None:
        code = self.process.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    def wait(self, *others: Run) -> int:
        """Wait for this process, noting when ``others`` end meanwhile (their wall time)."""
        while self.status is None:
            for other in others:
                other.status  # noqa: B018 - records the end
            time.sleep(0.2)
        return self.status

    def show(self) -> None:
        if not self.shown and self.status is not None:
            self.log.seek(0)
            print(f"---- {self.name} (exit {self.status}) ----")
            print(self.log.read().rstrip(), flush=True)
            self.shown = True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def summary(self) -> str:
        return f"{self.name} exit {self.status} in {(self.ended or time.monotonic()) - self.started:.0f} s"


def exit_status(statuses: list[int]) -> int:
    """The first failing status; a process that selected nothing (5) is no failure unless none selected anything."""
    if all(status in (0, NO_TESTS) for status in statuses):
        return 0 if 0 in statuses else NO_TESTS  # -k or a path may select one part only
    return next(status for status in statuses if status not in (0, NO_TESTS))


def split_basetemp(argv: list[str]) -> tuple[Path | None, list[str]]:
    """``--basetemp`` taken out of the arguments (its last value wins, as in pytest): given to every process
    as it is, the three processes of phase 1 would share one folder, which each empties as it starts."""
    given, rest, args = None, [], iter(argv)
    for arg in args:
        if arg == "--basetemp":
            given = next(args, None)
        elif arg.startswith("--basetemp="):
            given = arg.partition("=")[2]
        else:
            rest.append(arg)
    return (Path(given) if given else None), rest


def main(argv: list[str]) -> int:
    started = time.monotonic()
    given, argv = split_basetemp(argv)
    if given is not None:  # the parts' folders inside it (e2e, services, offline, serial), kept
        given.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="test-all-", dir=given))
    runs: list[Run] = []
    logs = []
    try:
        def infra(part: str, log=None) -> Run:
            return Run(f"infra {part}", pytest_command("infra", [OPTION, part, *argv], temp / part), log=log)

        for name in ("services", "offline"):
            logs.append(open(temp / f"{name}.log", "w+"))  # noqa: SIM115 - closed below
        services = infra("services", logs[0])
        offline = Run("offline (without RabbitMQ or PostgreSQL)",
                      pytest_command("not infra", [*argv], temp / "offline"), log=logs[1],
                      env={**os.environ, "UPGESTAO_TEST_OFFLINE": "1"})
        print(f"---- phase 1: infra e2e here; infra services (pid {services.process.pid}) and the tests without "
              f"RabbitMQ or PostgreSQL (pid {offline.process.pid}) in the background ----", flush=True)
        e2e = infra("e2e")
        runs += [e2e, services, offline]
        e2e.wait(services, offline)
        while True:
            ended = [run for run in (services, offline) if run.status is not None]
            for run in sorted(ended, key=lambda run: run.ended):
                run.show()
            if len(ended) == 2:
                break
            time.sleep(0.2)
        print("---- phase 2: infra serial (the tests that stop the broker), alone ----", flush=True)
        serial = infra("serial")
        runs.append(serial)
        serial.wait()
    finally:
        for run in runs:
            run.stop()
            run.status  # noqa: B018 - records the end
        for log in logs:
            log.close()
    status = exit_status([run.status for run in (e2e, services, serial, offline)])
    if status in (0, NO_TESTS):
        shutil.rmtree(temp, ignore_errors=True)
        kept = ""
    else:
        kept = f"; logs and pytest's temporary folders kept in {temp}"
    print(f"---- {', '.join(run.summary() for run in runs)}; {time.monotonic() - started:.0f} s wall{kept} ----")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
