"""The DPO console's in-browser audit verification (js/audit_verify.js) against the privacy service's own code.

The vectors are made here with the Python implementation the log runs on (merkle.py builds the tree and its
inclusion proofs, CheckpointSigner signs the checkpoint with a key made for the test, leaves.leaf_for writes
the records' leaves); node runs the browser module on them (audit_verify_runner.mjs), and every check it
reports is compared with what must happen: a genuine checkpoint and proof verify, and one flipped bit in the
signature, the root, the tree size, a proof hash, the leaf hash or the record makes the right check fail.
No broker, no database, no browser: node's WebCrypto has Ed25519 as Chromium's does.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from upgestao_privacy.domain import merkle
from upgestao_privacy.domain.checkpoints import Checkpoint, CheckpointSigner, b64decode, b64encode, verify_checkpoint
from upgestao_privacy.domain.leaves import leaf_for

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "services/integration-gateway/src/upgestao_gateway/web/static/js/audit_verify.js"
RUNNER = Path(__file__).with_name("audit_verify_runner.mjs")
NODE = shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists() else None)

pytestmark = pytest.mark.skipif(NODE is None, reason="node (20+) is not installed: the browser module cannot run")

SIZES = (1, 2, 3, 5, 7, 8, 13, 64, 100)
BASE = ("base", 13, 5)  # (name, tree size, seq) of the case the tampering starts from


def _record(seq: int) -> dict:
    """A record as privacy's ingest stores it (every key, fields sorted, UTC microseconds), then its seq.
    Some hold what JSON writers disagree on: non-ASCII, control characters, quotes, U+2028, astral planes."""
    odd = ["", "revisão de cadastro — São Paulo", 'aspas "duplas" e \\barra', "linha\nnova\t\u0007",
           "emoji \U0001F642 e \u2028 separador", "日本語"][seq % 6]
    record = {
        "audit_id": str(uuid.UUID(int=seq + 1)),
        "occurred_at": (datetime(2026, 12, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=seq, microseconds=seq))
        .isoformat(timespec="microseconds"),
        "service": "identity", "action": ("read", "update", "share")[seq % 3], "resource_type": "user",
        "resource_id": str(uuid.UUID(int=seq + 1000)), "subject_id": str(uuid.UUID(int=seq + 2000)),
        "fields": sorted({"email", "name", "job_title"} if seq % 2 else {"phone"}),
        "purpose": f"support {odd}".strip(), "actor_id": None if seq % 4 == 0 else str(uuid.UUID(int=7)),
        "actor_role": "dpo", "request_id": f"req-{seq}", "source_ip": "10.1.2.0/24", "outcome": "success",
        "recipient": "crm-export" if seq % 3 == 2 else None,
    }
    return json.loads(leaf_for(record, seq))  # the record with its seq, as the search returns it


class Log:
    """A log of ``size`` records: its tree, a signed checkpoint, the public key answer."""

    def __init__(self, size: int, signer: CheckpointSigner) -> None:
        self.records = [_record(seq) for seq in range(size)]
        self.leaves = [merkle.leaf_hash(leaf_for(r, r["seq"])) for r in self.records]
        self.source = merkle.DictNodeSource.from_leaf_hashes(self.leaves)
        root = merkle.root_at(size, self.source)
        assert root == merkle.root_of(self.leaves)
        self.checkpoint = signer.sign(size, root, datetime.now(UTC))
        verify_checkpoint(self.checkpoint, signer.public_key)
        self.public_key = {"algorithm": "Ed25519", "key_id": signer.key_id, "public_key": signer.public_key_b64}

    def proof(self, seq: int) -> dict:
        path = merkle.inclusion_proof(seq, len(self.records), self.source)
        merkle.verify_inclusion(self.leaves[seq], seq, len(self.records), path, self.checkpoint.root_hash)
        return {"seq": seq, "tree_size": len(self.records), "leaf_hash": b64encode(self.leaves[seq]),
                "audit_path": [b64encode(h) for h in path]}

    def case(self, name: str, seq: int, with_record: bool = True) -> dict:
        return {"name": name, "checkpoint": self.checkpoint.to_dict(), "public_key": dict(self.public_key),
                "proof": self.proof(seq), "record": self.records[seq] if with_record else None}


def _flip(text: str, bit: int = 0) -> str:
    """Base64 of the same bytes with one bit flipped (bit 0: the lowest of the first byte)."""
    data = bytearray(b64decode(text))
    data[bit // 8] ^= 1 << (bit % 8)
    return b64encode(bytes(data))


@pytest.fixture(scope="module")
def signer() -> CheckpointSigner:
    return CheckpointSigner(os.urandom(32))


@pytest.fixture(scope="module")
def logs(signer) -> dict[int, Log]:
    return {size: Log(size, signer) for size in SIZES}


def _run(cases: list[dict], tmp_path: Path) -> dict[str, dict]:
    vectors = tmp_path / "vectors.json"
    vectors.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([NODE, str(RUNNER), str(MODULE), str(vectors)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"node failed:\n{done.stderr}"
    results = {item["name"]: item for item in json.loads(done.stdout)}
    for name, item in results.items():
        assert "error" not in item, f"{name}: the module threw {item['error']}"
    return {name: item["result"] for name, item in results.items()}


def _failed(result: dict) -> dict[str, str]:
    """{step: code} of the checks that failed."""
    return {s["step"]: s["code"] for s in result["steps"] if not s["ok"]}


def test_genuine_checkpoints_and_proofs_verify(logs, tmp_path):
    cases = []
    for size, log in logs.items():
        for seq in sorted({0, size // 2, size - 1, min(5, size - 1)}):
            cases.append(log.case(f"{size}/{seq}", seq))
    results = _run(cases, tmp_path)
    assert len(results) == len(cases)
    for case in cases:
        result = results[case["name"]]
        assert result["ok"], f"{case['name']}: {result['steps']}"
        assert [s["step"] for s in result["steps"]] == ["signature", "proof", "leaf"]
        # the browser writes each record's leaf byte for byte as privacy does
        assert result["canonical"] == leaf_for(case["record"], case["record"]["seq"]).decode("utf-8")


def test_one_flipped_bit_fails_the_right_check(logs, signer, tmp_path):
    _, size, seq = BASE
    log = logs[size]
    base = log.case("base", seq)
    cases = [base]
    expected: dict[str, dict[str, str]] = {"base": {}}

    def tampered(name: str, fails: dict[str, str], change) -> None:
        case = copy.deepcopy(base)
        case["name"] = name
        change(case)
        cases.append(case)
        expected[name] = fails

    for bit in (0, 7, 8 * 63 + 7):
        tampered(f"signature bit {bit}", {"signature": "signature"},
                 lambda c, bit=bit: c["checkpoint"].update(signature=_flip(c["checkpoint"]["signature"], bit)))
    for bit in (0, 8 * 31 + 7):
        # the root is signed, and the proof no longer reaches it
        tampered(f"root bit {bit}", {"signature": "signature", "proof": "proof"},
                 lambda c, bit=bit: c["checkpoint"].update(root_hash=_flip(c["checkpoint"]["root_hash"], bit)))
    for bit in (0, 1, 4):
        tampered(f"tree size bit {bit}", {"signature": "signature", "proof": "proof"},
                 lambda c, bit=bit: c["checkpoint"].update(tree_size=c["checkpoint"]["tree_size"] ^ (1 << bit)))
    tampered("signed_at", {"signature": "signature"},
             lambda c: c["checkpoint"].update(signed_at="2020-01-01T00:00:00.000000+00:00"))
    for position in range(len(base["proof"]["audit_path"])):
        tampered(f"proof hash {position}", {"proof": "proof"},
                 lambda c, p=position: c["proof"]["audit_path"].__setitem__(p, _flip(c["proof"]["audit_path"][p], 9)))
    tampered("proof too short", {"proof": "proof"}, lambda c: c["proof"]["audit_path"].pop())
    tampered("proof too long", {"proof": "proof"}, lambda c: c["proof"]["audit_path"].append(c["proof"]["leaf_hash"]))
    tampered("proof for another tree size", {"proof": "proof"}, lambda c: c["proof"].update(tree_size=size - 1))
    # the leaf hash the log serves: the proof no longer reaches the root, nor matches the record
    tampered("leaf hash bit", {"proof": "proof", "leaf": "leaf"},
             lambda c: c["proof"].update(leaf_hash=_flip(c["proof"]["leaf_hash"], 3)))
    # the record as the search shows it: one letter of one field
    tampered("record field", {"leaf": "leaf"}, lambda c: c["record"].update(purpose=c["record"]["purpose"] + "!"))
    tampered("record seq", {"leaf": "leaf"}, lambda c: c["record"].update(seq=seq + 1))
    tampered("record extra key", {"leaf": "leaf"}, lambda c: c["record"].update(note=None))
    tampered("public key bit", {"signature": "signature"},
             lambda c: c["public_key"].update(public_key=_flip(c["public_key"]["public_key"], 2)))

    # another key re-signs a forged root: it names its own key id, or the real one
    forger = CheckpointSigner(os.urandom(32))
    forged = forger.sign(size, merkle.root_of(log.leaves[:-1] + [bytes(32)]), datetime.now(UTC))
    tampered("forged by another key", {"signature": "signature", "proof": "proof"},
             lambda c: c.update(checkpoint=forged.to_dict()))
    posing = Checkpoint(forged.tree_size, forged.root_hash, forged.signed_at, signer.key_id, forged.signature)
    tampered("forged naming the real key", {"signature": "signature", "proof": "proof"},
             lambda c: c.update(checkpoint=posing.to_dict()))
    tampered("origin", {"signature": "malformed", "proof": "malformed"},
             lambda c: c["checkpoint"].update(origin="upgestao.audit/v2"))

    results = _run(cases, tmp_path)
    for name, fails in expected.items():
        result = results[name]
        assert _failed(result) == fails, f"{name}: {result['steps']}"
        assert result["ok"] is (not fails), name


def test_the_page_flow_fetches_and_verifies(logs, tmp_path):
    """fetchAndVerify: what the page's Verify button runs, with the API answering from a dictionary (as a
    browser test double at the HTTP boundary does)."""
    log = logs[100]
    size = 100
    checkpoint = log.checkpoint.to_dict()

    def responses(checkpoint: dict, seq: int) -> dict:
        return {"/v1/audit/checkpoint": checkpoint, "/v1/audit/public-key": log.public_key,
                f"/v1/audit/proof/inclusion?seq={seq}&tree_size={size}": log.proof(seq)}

    altered = {**checkpoint, "root_hash": _flip(checkpoint["root_hash"], 5)}
    cases = [
        {"name": "newest", "responses": responses(checkpoint, size - 1)},
        {"name": "chosen record", "responses": responses(checkpoint, 42), "seq": 42, "record": log.records[42]},
        {"name": "record newer than the checkpoint", "responses": responses(checkpoint, size - 1), "seq": size + 5},
        {"name": "altered checkpoint", "responses": responses(altered, 42), "seq": 42, "record": log.records[42]},
        {"name": "edited record", "responses": responses(checkpoint, 42), "seq": 42,
         "record": {**log.records[42], "action": "delete"}},
        {"name": "empty log", "responses": {"/v1/audit/checkpoint": {**checkpoint, "tree_size": 0},
                                            "/v1/audit/public-key": log.public_key}},
        {"name": "no proof for a bigger tree", "responses": {"/v1/audit/checkpoint": {**checkpoint, "tree_size": 200},
                                                             "/v1/audit/public-key": log.public_key}},
    ]
    results = _run(cases, tmp_path)

    assert results["newest"]["ok"] and results["newest"]["seq"] == size - 1
    assert [s["step"] for s in results["newest"]["steps"]] == ["signature", "proof"]
    assert results["chosen record"]["ok"]
    assert [s["step"] for s in results["chosen record"]["steps"]] == ["signature", "proof", "leaf"]
    later = results["record newer than the checkpoint"]
    assert later["ok"] and later["seq"] == size - 1
    assert _failed(results["altered checkpoint"]) == {"signature": "signature", "proof": "proof"}
    assert _failed(results["edited record"]) == {"leaf": "leaf"}
    # a checkpoint of 0 records (its root is not that of the empty tree here): nothing to prove, signature bad
    assert results["empty log"]["seq"] is None
    assert _failed(results["empty log"]) == {"signature": "signature"}
    assert results["empty log"]["asked"] == ["/v1/audit/checkpoint", "/v1/audit/public-key"]
    assert _failed(results["no proof for a bigger tree"]) == {"signature": "signature", "proof": "proof"}


def _consistency(log: Log, first: int) -> dict:
    size = len(log.records)
    proof = merkle.consistency_proof(first, size, log.source)
    first_root = merkle.root_of(log.leaves[:first])
    merkle.verify_consistency(first, size, first_root, log.checkpoint.root_hash, proof)
    return {"first": first, "second": size, "proof": [b64encode(h) for h in proof]}


def test_the_log_only_grew_since_a_checkpoint_verified_before(logs, signer, tmp_path):
    """A checkpoint verified earlier (the page keeps it): the current one must extend it, by the consistency
    proof merkle.py makes; a log rolled back, or rewritten and signed again, fails the "consistency" check."""
    cases, expected = [], {}
    for first, second in ((1, 2), (2, 3), (3, 8), (5, 13), (7, 8), (8, 13), (13, 64), (64, 100), (5, 100), (13, 13)):
        case = logs[second].case(f"{first}->{second}", second - 1)
        case.update(previous=logs[first].checkpoint.to_dict(), consistency=_consistency(logs[second], first))
        cases.append(case)
        expected[case["name"]] = {}

    def tampered(name: str, fails: dict[str, str], first: int, second: int, change) -> None:
        case = logs[second].case(name, second - 1)
        case.update(previous=logs[first].checkpoint.to_dict(),
                    consistency=_consistency(logs[second], first) if first <= second else None)
        change(case)
        cases.append(case)
        expected[name] = fails

    for position in range(len(_consistency(logs[100], 13)["proof"])):
        tampered(f"consistency hash {position}", {"consistency": "consistency"}, 13, 100,
                 lambda c, p=position: c["consistency"]["proof"].__setitem__(p, _flip(c["consistency"]["proof"][p], 4)))
    tampered("consistency too short", {"consistency": "consistency"}, 13, 100,
             lambda c: c["consistency"]["proof"].pop())
    tampered("consistency for other sizes", {"consistency": "consistency"}, 13, 100,
             lambda c: c["consistency"].update(first=8, proof=_consistency(logs[100], 8)["proof"]))
    # a history rewritten and signed again with the real key: record 3 edited, the tree rebuilt
    rewritten = [bytes(h) for h in logs[100].leaves]
    rewritten[3] = merkle.leaf_hash(b'{"edited":true}')
    forged_source = merkle.DictNodeSource.from_leaf_hashes(rewritten)
    forged = signer.sign(100, merkle.root_of(rewritten), datetime.now(UTC))

    def rewrite(case: dict) -> None:
        case["checkpoint"] = forged.to_dict()
        case["consistency"]["proof"] = [b64encode(h) for h in merkle.consistency_proof(13, 100, forged_source)]
        case["proof"] = None
        case["record"] = None

    tampered("rewritten and re-signed", {"consistency": "consistency"}, 13, 100, rewrite)
    # rolled back: the log now has fewer records than the checkpoint verified before
    tampered("rolled back", {"consistency": "consistency"}, 64, 13, lambda c: None)
    results = _run(cases, tmp_path)
    for name, fails in expected.items():
        result = results[name]
        assert _failed(result) == fails, f"{name}: {result['steps']}"
        if not fails:
            assert [s["step"] for s in result["steps"]] == ["signature", "consistency", "proof", "leaf"], name


def test_the_page_flow_checks_consistency_with_the_remembered_checkpoint(logs, signer, tmp_path):
    log = logs[100]
    base = {"/v1/audit/checkpoint": log.checkpoint.to_dict(), "/v1/audit/public-key": log.public_key,
            "/v1/audit/proof/inclusion?seq=99&tree_size=100": log.proof(99)}
    other = CheckpointSigner(os.urandom(32))
    cases = [
        {"name": "grown", "previous": logs[13].checkpoint.to_dict(),
         "responses": {**base, "/v1/audit/proof/consistency?first=13&second=100": _consistency(log, 13)}},
        {"name": "rolled back", "previous": logs[13].checkpoint.to_dict(),
         "responses": {**base, "/v1/audit/checkpoint": logs[8].checkpoint.to_dict(),
                       "/v1/audit/proof/inclusion?seq=7&tree_size=8": logs[8].proof(7)}},
        {"name": "no consistency proof", "previous": logs[13].checkpoint.to_dict(), "responses": base},
        # a remembered checkpoint of another key (another platform on this address): not compared
        {"name": "another key", "previous": other.sign(13, logs[13].checkpoint.root_hash, datetime.now(UTC)).to_dict(),
         "responses": base},
        # a remembered checkpoint naming this key but not signed by it: forgotten, not compared
        {"name": "unsigned memory", "previous": {**logs[13].checkpoint.to_dict(),
                                                 "signature": _flip(logs[13].checkpoint.to_dict()["signature"])},
         "responses": base},
    ]
    results = _run(cases, tmp_path)
    grown = results["grown"]
    assert grown["ok"] and [s["step"] for s in grown["steps"]] == ["signature", "consistency", "proof"]
    assert grown["previous"]["tree_size"] == 13
    assert "/v1/audit/proof/consistency?first=13&second=100" in grown["asked"]
    assert _failed(results["rolled back"]) == {"consistency": "consistency"}
    assert _failed(results["no consistency proof"]) == {"consistency": "consistency"}
    for name in ("another key", "unsigned memory"):
        assert results[name]["ok"], name
        assert results[name]["previous"] is None
        assert [s["step"] for s in results[name]["steps"]] == ["signature", "proof"], name
