"""Shared by the parser fuzz tests (``services/*/tests/fuzz``): hypothesis profiles and per-input bounds.

Profiles, chosen with ``HYPOTHESIS_PROFILE``:

- ``ci`` (default): derandomised (the same inputs on every run, so CI is not flaky), 200 examples a
  test, the whole fuzz set well under a minute on one core;
- ``long`` (``make fuzz-parsers``): random, 5,000 examples a test; a failure prints the
  ``@reproduce_failure`` blob to replay it.

:func:`bounded` runs one input under a time and memory budget: CPU time (not wall time, which a
busy CI machine stretches at random), and the growth of the process's peak resident set
(``VmHWM``, which counts what Pillow or the JSON scanner allocate in C too). An address-space
limit just above the budget turns a runaway allocation into a ``MemoryError`` within the input
instead of the OOM killer taking the test run (or the machine's other processes) down.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

MiB = 1024 * 1024

PROFILES = {
    "ci": settings(
        max_examples=200,
        deadline=None,  # wall clock: a loaded machine stalls; the bounded() budgets (CPU time) are the limits
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "long": settings(
        max_examples=5000,
        deadline=None,
        derandomize=False,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE must be one of {sorted(PROFILES)} for the fuzz tests, got {PROFILE!r}")
# applied to each fuzz test (``@fuzz`` above ``@given``) rather than loaded as hypothesis's default,
# so other hypothesis users in the same run (schemathesis) keep their own settings
fuzz = PROFILES[PROFILE]

_STATUS = "/proc/self/status"
_CAN_RESET_PEAK = os.access("/proc/self/clear_refs", os.W_OK)


def _status_kib(name: str) -> int:
    with open(_STATUS) as status:
        match = re.search(rf"^{name}:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert match is not None, f"{name} not in {_STATUS}"
    return int(match.group(1))


def _reset_peak() -> None:
    if _CAN_RESET_PEAK:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)


@dataclass
class Usage:
    """What one input cost: filled in when the ``bounded`` block ends."""

    seconds: float = 0.0  # CPU time
    peak_growth: int = 0  # bytes the peak resident set grew above the resident set at the start


@contextmanager
def bounded(what: str, *, seconds: float, memory: int, headroom: int = 1024 * MiB) -> Iterator[Usage]:
    """Run the block as one fuzz input: it must use at most ``seconds`` of CPU time and grow the peak
    resident set by at most ``memory`` bytes (an ``AssertionError`` naming ``what`` otherwise).

    The CPU time is the calling thread's (``time.thread_time``): what the code under test spends (the
    parsers, decoders and verifiers fuzzed here run in the caller's thread), not what another thread of
    the test process spends meanwhile (a CI run once charged a 0.5-s budget with 0.515 s for an
    8-character token, and the same input then took next to nothing).

    Allocations past ``memory + headroom`` of address space fail with ``MemoryError`` inside the
    block, which the caller's "only documented errors" check then reports.
    """
    usage = Usage()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _status_kib("VmSize") * 1024 + memory + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    _reset_peak()
    resident = _status_kib("VmRSS") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    started = time.thread_time()
    try:
        yield usage
    finally:
        usage.seconds = time.thread_time() - started
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        usage.peak_growth = max(0, _status_kib("VmHWM") * 1024 - resident)
    assert usage.seconds <= seconds, f"{what}: took {usage.seconds:.3f} s of CPU, budget {seconds} s"
    if _CAN_RESET_PEAK:
        assert usage.peak_growth <= memory, (
            f"{what}: peak memory grew {usage.peak_growth / MiB:.1f} MiB, budget {memory / MiB:.1f} MiB"
        )
