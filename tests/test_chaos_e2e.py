"""The short, deterministic chaos run for CI (issue 9): ``bench/chaos.py`` with a fixed plan --
kills of services and relays (the supervisor restarts them) and one broker stop/start -- under
the recorded workload, on fresh PostgreSQL databases; then nothing lost, nothing duplicated,
every audited access recorded once and the audit log verified.

``make chaos`` runs the long, random version (``--seed`` reproduces one)."""

from __future__ import annotations

import pytest
from e2e_platform import load_script

PLAN = ("kill:identity@6,kill:privacy-relay@14,stall:privacy@20/3,broker@28/4,kill:gateway@40,"
        "kill:identity-relay@46,kill:privacy@52")


@pytest.fixture(scope="module")
def chaos():
    return load_script("bench/chaos.py", "upgestao_chaos", imports_from=("bench", "scripts"))


def test_a_seed_reproduces_the_schedule(chaos):
    targets = chaos.process_names()
    first = chaos.random_schedule(7, 600, chaos.FAULT_KINDS, 10, targets)
    assert first == chaos.random_schedule(7, 600, chaos.FAULT_KINDS, 10, targets)
    assert first != chaos.random_schedule(8, 600, chaos.FAULT_KINDS, 10, targets)
    assert 30 <= len(first) <= 90  # about duration / every, within the first 90 %
    assert all(5 < f.at_s < 540 for f in first)
    assert [f.at_s for f in first] == sorted(f.at_s for f in first)
    assert {f.kind for f in first} == set(chaos.FAULT_KINDS)
    assert all(f.target in targets for f in first if f.kind in ("kill", "stall"))
    assert all(2 <= f.duration_s <= 8 for f in first if f.kind in ("stall", "broker"))
    only = chaos.random_schedule(7, 600, ("kill",), 10, targets)
    assert only and {f.kind for f in only} == {"kill"}


def test_a_plan_is_parsed_and_checked(chaos):
    plan = chaos.parse_plan("broker@40/5,kill:identity@10,stall:privacy@20/4")
    assert [f.label() for f in plan] == ["kill:identity", "stall:privacy/4s", "broker/5s"]
    assert [f.at_s for f in plan] == [10, 20, 40]
    for bad in ("kill:nobody@5", "explode@5", "kill:identity"):
        with pytest.raises(chaos.ChaosError):
            chaos.parse_plan(bad)


@pytest.mark.e2e
@pytest.mark.timeout(330)
def test_short_chaos_run_keeps_every_promise(chaos):
    config = chaos.Config(duration_s=60, seed=20261201, database="postgresql", plan=chaos.parse_plan(PLAN),
                          workers=2, quiesce_s=120, write=False)
    result = chaos.run_chaos(config)
    table = chaos.render(result)
    print(table)
    assert result["faults"]["injected"] == len(config.plan), table
    assert result["faults"]["by_kind"] == {"kill": 5, "stall": 1, "broker": 1}, table
    assert result["violations"] == {}, table
    assert result["lost"] == 0 and result["duplicated"] == 0, table
    assert result["audit"]["verify"].startswith("OK"), table
    # the run did real work, and checked it
    assert result["customers"]["acknowledged"] >= 20, table
    assert result["effects_checked"]["audited_requests"] >= result["customers"]["acknowledged"], table
    assert all(run["recovery_s"] is not None for run in result["faults"]["runs"]), table
    assert result["restarts"] and all(r["kind"] != "gave_up" for r in result["restarts"]), table
