"""The local supervisor (issue 9, defect 2): a dead child is restarted with exponential
back-off, and only a crash loop stops the platform.

The policy is tested with given times (no processes); ``Platform.supervise`` with
real, tiny child processes (no broker, no database)."""

from __future__ import annotations

import signal
import sys
import time

import pytest


@pytest.fixture
def policy_cls(platform_module):
    return platform_module.RestartPolicy


def test_delays_double_from_half_a_second_up_to_thirty(platform_module):
    backoff = platform_module.ChildBackoff(platform_module.RestartPolicy(crash_limit=100))
    now, delays = 1000.0, []
    for _ in range(10):
        up_since = now
        now += 1.0  # each life lasts one second: never long enough to reset
        delays.append(backoff.died(now, up_since))
        now += delays[-1]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert backoff.restarts == 10


def test_a_child_that_stayed_up_long_enough_starts_over_at_the_initial_delay(platform_module):
    backoff = platform_module.ChildBackoff(platform_module.RestartPolicy())
    assert backoff.died(10.0, 9.0) == 0.5
    assert backoff.died(12.0, 10.5) == 1.0
    assert backoff.died(15.0, 13.0) == 2.0
    # up for 60 s: the next death is a first one again
    assert backoff.died(80.0, 20.0) == 0.5
    assert backoff.died(81.0, 80.5) == 1.0
    # up for 59 s: not reset
    assert backoff.died(141.0, 82.0) == 2.0


def test_five_deaths_within_sixty_seconds_is_a_crash_loop(platform_module):
    backoff = platform_module.ChildBackoff(platform_module.RestartPolicy())
    answers = [backoff.died(t, t - 0.1) for t in (0.0, 5.0, 10.0, 15.0)]
    assert None not in answers
    assert backoff.died(20.0, 19.9) is None  # the fifth within 60 s: give up
    assert backoff.restarts == 4


def test_deaths_spread_wider_than_the_window_never_make_a_loop(platform_module):
    backoff = platform_module.ChildBackoff(platform_module.RestartPolicy())
    # a death every 16 s: at most four within any 60 s window
    assert all(backoff.died(t, t - 1.0) is not None for t in range(0, 16 * 40, 16))


def test_the_policy_refuses_nonsense(policy_cls):
    for bad in ({"initial_delay_s": 0}, {"initial_delay_s": 5, "max_delay_s": 1}, {"crash_limit": 0},
                {"crash_window_s": 0}, {"reset_after_s": -1}):
        with pytest.raises(ValueError):
            policy_cls(**bad)


# -- Platform.supervise with real child processes ------------------------------------------


SLEEPER = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(120)"]
FAILER = [sys.executable, "-c", "import sys; print('the real reason: boom', file=sys.stderr); sys.exit(3)"]


def supervise_until(platform, predicate, timeout: float = 15.0) -> list:
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += platform.supervise()
        if predicate(events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"supervision did not get there within {timeout}s: {events}")


@pytest.fixture
def bare_platform(platform_module, tmp_path):
    """A Platform whose children are small scripts (started through its own spawn)."""
    said: list[str] = []
    platform = platform_module.Platform(
        data_dir=tmp_path, http_address=platform_module.free_address(),
        restart_policy=platform_module.RestartPolicy(initial_delay_s=0.2, max_delay_s=1.0, crash_limit=3,
                                                     crash_window_s=30.0),
        echo=said.append,
    )
    platform.log_dir.mkdir(parents=True, exist_ok=True)
    platform.said = said
    yield platform
    platform.stop(timeout=5)


def test_a_killed_child_is_restarted_after_its_delay_and_said_on_the_console(bare_platform):
    platform = bare_platform
    first = platform._spawn("privacy-relay", SLEEPER)
    assert platform.supervise() == []  # alive: nothing to do
    platform.kill("privacy-relay", signal.SIGKILL)
    first.wait(5)

    events = supervise_until(platform, lambda es: any(e.kind == "restarted" for e in es))
    died, restarted = events[0], events[-1]
    assert (died.kind, died.name, died.returncode, died.delay_s, died.restart) == (
        "died", "privacy-relay", -signal.SIGKILL, 0.2, 1)
    assert restarted.at - died.at >= 0.2  # not before its delay
    assert restarted.pid == platform.children["privacy-relay"].pid != first.pid
    assert platform.children["privacy-relay"].poll() is None
    assert "privacy-relay died (killed by SIGKILL); restarting in 0.2 s (restart 1)" in platform.said
    assert any(line.startswith("privacy-relay restarted (pid ") for line in platform.said)
    log = platform.log_path("privacy-relay").read_text()
    assert log.count("starting:") == 2 and "died (killed by SIGKILL)" in log

    # the second death within the reset time waits twice as long
    platform.kill("privacy-relay", signal.SIGKILL)
    events = supervise_until(platform, lambda es: any(e.kind == "restarted" for e in es))
    assert (events[0].delay_s, events[0].restart) == (0.4, 2)
    assert platform.restarts() == {"privacy-relay": 2}


def test_a_crash_loop_gives_up_showing_the_childs_last_error_lines(bare_platform):
    platform = bare_platform
    platform._spawn("notifier", FAILER)
    events = supervise_until(platform, lambda es: any(e.kind == "gave_up" for e in es))
    kinds = [e.kind for e in events]
    assert kinds.count("died") == 2 and kinds.count("restarted") == 2 and kinds[-1] == "gave_up"
    # a child that failed by itself says why, at every death
    assert "the real reason: boom" in events[0].message and "exit code 3" in events[0].message
    gave_up = events[-1]
    assert gave_up.name == "notifier" and gave_up.returncode == 3
    assert "3 times within 30 s (a crash loop): giving up" in gave_up.message
    assert "the real reason: boom" in gave_up.message
    # given up: it stays dead, and supervision does not report it again
    time.sleep(1.5)
    assert platform.supervise() == [] and platform.children["notifier"].poll() == 3


CONFIG_FAILER = [sys.executable, "-c", "import sys; print('upgestao-identity: configuration error: "
                  "UPGESTAO_IDENTITY_JWKS: not a valid JWKS document', file=sys.stderr); sys.exit(2)"]


def test_a_configuration_error_stops_at_once_with_the_childs_own_words(bare_platform):
    """Issue 11: a child stopped by its configuration (exit 2) is never restarted: the platform gives up at
    the first death, showing the child's own error, instead of restarting it while the user waits."""
    platform = bare_platform
    platform._spawn("identity", CONFIG_FAILER)
    events = supervise_until(platform, lambda es: any(e.kind == "gave_up" for e in es), timeout=5)
    assert [e.kind for e in events] == ["gave_up"]
    assert events[0].returncode == 2 and "configuration error: not restarted" in events[0].message
    assert "UPGESTAO_IDENTITY_JWKS: not a valid JWKS document" in events[0].message
    time.sleep(0.5)
    assert platform.supervise() == [] and platform.children["identity"].poll() == 2  # never started again


def test_stop_cancels_pending_restarts(bare_platform):
    platform = bare_platform
    platform._spawn("messaging", SLEEPER)
    platform.kill("messaging", signal.SIGKILL)
    platform.children["messaging"].wait(5)
    assert [e.kind for e in platform.supervise()] == ["died"]
    assert "messaging" in platform.restarting
    platform.stop(timeout=5)
    time.sleep(0.3)
    assert platform.supervise() == [] and platform.restarting == {}


def test_a_probe_address_in_the_shell_never_reaches_the_processes(bare_platform, monkeypatch):
    # one address for every run and relay process: all but the first would fail to bind it
    monkeypatch.setenv("UPGESTAO_PROBE_ADDRESS", "127.0.0.1:9000")
    assert "UPGESTAO_PROBE_ADDRESS" not in bare_platform.environment()
    assert "UPGESTAO_PROBE_ADDRESS" not in bare_platform.environment("identity")
