"""Fuzzing the export verifier (``verify_export``) with mutated exports.

An auditor runs the verifier on a file it got from elsewhere, so every input must end in a
:class:`Report` (never an exception), within a time and memory budget that depends on the
export's size, not on what its header claims; and an export whose record content differs from
the log's is never reported ``ok``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fuzzing import MiB, bounded, fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from upgestao_privacy.domain.checkpoints import CheckpointSigner
from upgestao_privacy.domain.leaves import canonical_json, leaf_for
from upgestao_privacy.domain.merkle import DictNodeSource, Frontier, leaf_hash, range_proof
from upgestao_privacy.domain.verification import Report, header_line, record_line, verify_export

T0 = datetime(2026, 11, 29, 19, 0, 0, 123456, tzinfo=UTC)
SIZE = 12
SIGNER = CheckpointSigner(bytes(range(32)))


def _record(seq: int) -> dict[str, Any]:
    return {"audit_id": f"00000000-0000-4000-8000-{seq % 10**12:012d}",
            "occurred_at": (T0 + timedelta(seconds=seq % 86400)).isoformat(),
            "service": "identity", "action": "read", "resource_type": "user", "subject_id": f"s-{seq % 3}",
            "actor_id": "a-1", "fields": ["email", "full_name"], "purpose": "atendimento São Paulo",
            "outcome": "success", "recipient": None, "seq": seq}


class _Log:
    """A genuine log of SIZE records, a checkpoint every 4, exported as the server does."""

    def __init__(self) -> None:
        self.records = [_record(seq) for seq in range(SIZE)]
        frontier, self.nodes, self.checkpoints = Frontier(), DictNodeSource(), []
        for seq, record in enumerate(self.records):
            self.nodes.add(frontier.append(leaf_hash(leaf_for(record, seq))))
            if frontier.size % 4 == 0 or frontier.size == SIZE:
                self.checkpoints.append(SIGNER.sign(frontier.size, frontier.root(), T0 + timedelta(hours=seq)))

    def export(self, first: int, end: int) -> list[str]:
        checkpoint = self.checkpoints[-1]
        earlier = [c for c in self.checkpoints[:-1] if first < c.tree_size <= end]
        proof = range_proof(first, end, SIZE, self.nodes) if first < end else []
        lines = [header_line(first, end, checkpoint, earlier, proof, exported_at=T0 + timedelta(days=1))]
        lines += [record_line(seq, self.nodes.nodes[(0, seq)], self.records[seq]) for seq in range(first, end)]
        return lines


LOG = _Log()
GENUINE = {seq: canonical_json(record) for seq, record in enumerate(LOG.records)}
RANGES = [(0, SIZE), (0, 5), (3, 9), (11, 12), (4, 4)]

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-1, max_value=2**64)
                | st.floats() | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
garbage_lines = st.one_of(
    st.binary(max_size=60), st.text(max_size=60), json_values.map(json.dumps),
    st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 100_000).map(lambda depth: '{"seq":0,"record":' + '{"a":' * depth + "1" + "}" * (depth + 1)),
)
HEADER_KEYS = ["format", "first_seq", "end_seq", "tree_size", "checkpoint", "checkpoints", "range_proof"]
CHECKPOINT_KEYS = ["origin", "tree_size", "root_hash", "signed_at", "key_id", "signature"]


@st.composite
def mutations(draw, lines: list[str]) -> list[str | bytes]:
    """``lines`` with one to four changes: lines dropped, duplicated, moved, cut, bytes flipped,
    garbage added, members of a record or of the header replaced."""
    mutated: list[str | bytes] = list(lines)
    for _ in range(draw(st.integers(1, 4))):
        if not mutated:
            break
        i = draw(st.integers(0, len(mutated) - 1))
        kind = draw(st.sampled_from(["drop", "duplicate", "move", "cut", "flip", "garbage", "record", "header",
                                     "checkpoint"]))
        if kind == "drop":
            del mutated[i]
        elif kind == "duplicate":
            mutated.insert(draw(st.integers(0, len(mutated))), mutated[i])
        elif kind == "move":
            mutated.insert(draw(st.integers(0, len(mutated))), mutated.pop(i))
        elif kind == "cut":
            line = mutated[i]
            mutated[i] = line[: draw(st.integers(0, max(0, len(line) - 1)))]
        elif kind == "flip":
            data = bytearray(mutated[i].encode() if isinstance(mutated[i], str) else mutated[i])
            if data:
                for _ in range(draw(st.integers(1, 3))):
                    data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
            mutated[i] = bytes(data)
        elif kind == "garbage":
            mutated.insert(draw(st.integers(0, len(mutated))), draw(garbage_lines))
        else:
            mutated = _edit_json(draw, mutated, kind)
    if draw(st.booleans()):  # as read from a file: bytes, with line ends
        mutated = [(line.encode() if isinstance(line, str) else line) + b"\n" for line in mutated]
    return mutated


def _edit_json(draw, lines: list[str | bytes], kind: str) -> list[str | bytes]:
    index = 0 if kind in ("header", "checkpoint") else draw(st.integers(0, len(lines) - 1))
    try:
        entry = json.loads(lines[index])
    except (ValueError, RecursionError):  # (a garbage line inserted before)
        return lines
    if not isinstance(entry, dict):
        return lines
    if kind == "record" and isinstance(entry.get("record"), dict):
        target, keys = entry["record"], [*entry["record"], "extra"]
    elif kind == "record":
        target, keys = entry, ["seq", "leaf_hash", "record"]
    elif kind == "checkpoint" and isinstance(entry.get("checkpoint"), dict):
        target, keys = entry["checkpoint"], CHECKPOINT_KEYS
    else:
        target, keys = entry, HEADER_KEYS
    key = draw(st.sampled_from(keys))
    if draw(st.integers(0, 4)) == 0:
        target.pop(key, None)
    else:
        target[key] = draw(json_values)
    changed = list(lines)
    changed[index] = json.dumps(entry, ensure_ascii=draw(st.booleans()))
    return changed


def verify(lines: list[str | bytes], **kwargs: Any) -> Report:
    # budgets for an export of at most a few hundred kB: its size, never what its header claims
    with bounded("verify_export", seconds=1.0, memory=64 * MiB):
        report = verify_export(lines, SIGNER.public_key, **kwargs)
    assert isinstance(report, Report)
    assert report.ok == (not report.findings and not report.omitted)
    report.summary()  # (the text the command prints must build too)
    return report


def record_contents(lines: list[str | bytes]) -> list[tuple[Any, bytes]] | None:
    """``[(seq, canonical record)]`` of the record lines, None when one cannot be read as a record."""
    contents = []
    for line in [line for line in lines if line.strip()][1:]:
        try:
            entry = json.loads(line)
            contents.append((entry["seq"], canonical_json(entry["record"])))
        except (ValueError, TypeError, KeyError, RecursionError):
            return None
    return contents


@fuzz
@given(st.sampled_from(RANGES), st.data())
def test_a_mutated_export_is_reported_and_never_ok_with_other_records(span, data):
    lines = data.draw(mutations(LOG.export(*span)), label="lines")
    report = verify(lines)
    if report.ok:
        contents = record_contents(lines)
        assert contents is not None, "ok for an export with a line that is not a record"
        assert len(contents) == report.end_seq - report.first_seq == report.records
        for seq, content in contents:
            assert content == GENUINE.get(seq), f"ok for an export whose record of seq {seq} changed"


@fuzz
@given(st.sampled_from(RANGES))
def test_untouched_exports_are_ok(span):
    report = verify(LOG.export(*span))
    assert report.ok, report.summary()
    assert report.records == span[1] - span[0]


@fuzz
@given(st.lists(garbage_lines, max_size=5))
@example(["[" * 100_000 + "]" * 100_000])
@example([LOG.export(0, SIZE)[0], "[" * 100_000 + "]" * 100_000])
def test_garbage_is_reported_as_a_format_problem(lines):
    report = verify(lines)
    assert not report.ok
    assert "format" in {finding.kind for finding in report.findings}


def _forged_header(first: int, end: int, size: int) -> str:
    """A header signed by another key, claiming ``[first, end)`` of a tree of ``size``."""
    checkpoint = CheckpointSigner(bytes(range(1, 33))).sign(size, bytes(32), T0)
    return header_line(first, end, checkpoint, [], [], exported_at=T0)


@fuzz
@given(st.integers(0, 2**63).flatmap(lambda end: st.tuples(st.integers(0, end), st.just(end))),
       st.lists(st.integers(0, 2**63), max_size=3))
@example((0, 10**9), [])
@example((0, 2**63), [2**63 - 1])
@example((0, 10**15), [10**15 - 1])
def test_what_a_header_claims_does_not_size_the_work(span, seqs):
    first, end = span
    lines = [_forged_header(first, end, end)]
    lines += [record_line(seq, bytes(32), _record(seq)) for seq in seqs]
    report = verify(lines)
    assert not report.ok
    assert "signature" in {finding.kind for finding in report.findings}


@fuzz
@given(st.sampled_from(RANGES), st.data())
def test_trusted_checkpoints_and_mutations(span, data):
    """With the checkpoints an earlier run verified, as ``audit verify --state`` passes them."""
    lines = data.draw(mutations(LOG.export(*span)), label="lines")
    trusted = data.draw(st.lists(st.sampled_from(LOG.checkpoints), max_size=2), label="trusted")
    report = verify(lines, trusted=trusted)
    if report.ok:
        contents = record_contents(lines)
        assert contents is not None
        assert all(content == GENUINE.get(seq) for seq, content in contents)
