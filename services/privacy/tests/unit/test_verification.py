"""Export verification: untampered exports pass; each kind of tampering names the first bad seq."""

from __future__ import annotations

import base64
import json

import pytest
from upgestao_privacy.domain.checkpoints import CheckpointSigner
from upgestao_privacy.domain.leaves import canonical_json
from upgestao_privacy.domain.merkle import leaf_hash
from upgestao_privacy.domain.verification import Finding, Report, verify_export


def kinds(report):
    return sorted({finding.kind for finding in report.findings})


def edit(lines, seq, change, *, first=0):
    """Apply ``change(entry)`` to the line of ``seq`` (line 0 is the header)."""
    changed = list(lines)
    entry = json.loads(changed[seq - first + 1])
    change(entry)
    changed[seq - first + 1] = json.dumps(entry)
    return changed


@pytest.fixture
def log(fake_log):
    """100 records, a checkpoint every 10 (the last, at 100, is the export's)."""
    return fake_log(100, checkpoint_every=10)


def test_untampered_full_export(log):
    report = verify_export(log.export(), log.signer.public_key)
    assert report.ok, report.summary()
    assert (report.first_seq, report.end_seq, report.tree_size, report.records) == (0, 100, 100, 100)
    assert report.findings == [] and report.first_bad_seq is None
    assert report.summary().startswith("OK: 100 records [0, 100) of tree size 100")


def test_untampered_partial_exports(log):
    for first, end in ((17, 63), (0, 1), (99, 100), (64, 100), (0, 64), (5, 6)):
        report = verify_export(log.export(first, end), log.signer.public_key)
        assert report.ok, (first, end, report.summary())
        assert report.records == end - first


def test_export_against_an_older_checkpoint(log):
    older = log.checkpoints[4]  # tree size 50
    log.append(7)
    report = verify_export(log.export(checkpoint=older), log.signer.public_key)
    assert report.ok and report.tree_size == 50


def test_bytes_lines_and_blank_lines(log):
    lines = [line.encode() + b"\n" for line in log.export()]
    lines.insert(3, b"\n")
    assert verify_export(lines, log.signer.public_key).ok


def test_edited_record(log):
    lines = edit(log.export(), 42, lambda e: e["record"]["data"].update(value="Mallory"))
    report = verify_export(lines, log.signer.public_key)
    assert not report.ok
    assert report.findings == [Finding("edited", 42, "the record's hash differs from the authentic leaf hash")]
    assert report.first_bad_seq == 42
    assert report.summary().startswith("TAMPERED: first bad seq 42")
    assert "edited: seq 42:" in report.summary()


def test_edited_records_are_each_named(log):
    lines = edit(log.export(), 42, lambda e: e["record"].update(actor="root"))
    lines = edit(lines, 7, lambda e: e["record"].pop("subject"))
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("edited", 7), ("edited", 42)]
    assert report.first_bad_seq == 7


def test_edited_record_in_a_partial_export(log):
    lines = edit(log.export(17, 63), 40, lambda e: e["record"].update(action="person.deleted"), first=17)
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("edited", 40)]


def test_deleted_row(log):
    lines = log.export()
    del lines[42 + 1]
    report = verify_export(lines, log.signer.public_key)
    assert kinds(report) == ["missing", "root"]
    assert report.first_bad_seq == 42
    assert report.records == 99


def test_deleted_rows_in_a_partial_export(log):
    lines = log.export(10, 60)
    del lines[30 - 10 + 1 : 33 - 10 + 1]
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings if f.kind == "missing"] == [("missing", 30)]
    assert "seqs 30..32 (3 rows)" in report.summary()
    assert report.first_bad_seq == 30


def test_swapped_contents(log):
    lines = log.export()
    first, second = json.loads(lines[31]), json.loads(lines[71])
    first["record"], second["record"] = second["record"], first["record"]
    lines[31], lines[71] = json.dumps(first), json.dumps(second)
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("reordered", 30), ("reordered", 70)]
    assert report.first_bad_seq == 30


def test_swapped_contents_with_renumbered_records_are_edits(log):
    lines = log.export()
    first, second = json.loads(lines[31]), json.loads(lines[71])
    first["record"], second["record"] = second["record"], first["record"]
    first["record"]["seq"], second["record"]["seq"] = 30, 70
    lines[31], lines[71] = json.dumps(first), json.dumps(second)
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("edited", 30), ("edited", 70)]


def test_lines_out_of_order_and_duplicated(log):
    lines = log.export()
    lines[21], lines[22] = lines[22], lines[21]  # seqs 20 and 21
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("reordered", 20)]
    duplicated = [*log.export()[:60], log.export()[50], *log.export()[60:]]
    report = verify_export(duplicated, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("reordered", 49)]


def test_truncated(log):
    report = verify_export(log.export()[:-3], log.signer.public_key)
    assert kinds(report) == ["root", "truncated"]
    assert report.first_bad_seq == 97
    assert "seqs 97..99 (3 rows)" in report.summary()
    only_header = verify_export(log.export()[:1], log.signer.public_key)
    assert only_header.first_bad_seq == 0 and "truncated" in kinds(only_header)


def test_record_and_leaf_hash_edited_together(log):
    def forge(entry):
        entry["record"]["data"]["value"] = "Mallory"
        entry["leaf_hash"] = base64.b64encode(leaf_hash(canonical_json(entry["record"]))).decode()

    report = verify_export(edit(log.export(), 42, forge), log.signer.public_key)
    assert kinds(report) == ["checkpoint", "root", "tree"]
    checkpoint = next(f for f in report.findings if f.kind == "checkpoint")
    assert checkpoint.seq == 40  # the checkpoint of size 40 still holds; the one of 50 does not
    assert "[40, 50)" in checkpoint.detail
    assert report.first_bad_seq == 40


def test_forgery_before_any_checkpoint(fake_log):
    log = fake_log(30)  # only the export's own checkpoint

    def forge(entry):
        entry["record"]["actor"] = "root"
        entry["leaf_hash"] = base64.b64encode(leaf_hash(canonical_json(entry["record"]))).decode()

    report = verify_export(edit(log.export(), 3, forge), log.signer.public_key)
    assert kinds(report) == ["checkpoint", "root", "tree"]
    assert report.first_bad_seq == 0  # nothing can be vouched for


def test_tree_store_damaged_but_records_intact(log):
    lines = edit(log.export(), 42, lambda e: e.update(leaf_hash=base64.b64encode(b"\x00" * 32).decode()))
    report = verify_export(lines, log.signer.public_key)
    assert kinds(report) == ["tree"]
    lines = edit(log.export(), 42, lambda e: e.update(leaf_hash=None))
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("tree", 42)]


def test_tampered_signature(log):
    lines = log.export()
    header = json.loads(lines[0])
    signature = bytearray(base64.b64decode(header["checkpoint"]["signature"]))
    signature[5] ^= 1
    header["checkpoint"]["signature"] = base64.b64encode(bytes(signature)).decode()
    lines[0] = json.dumps(header)
    report = verify_export(lines, log.signer.public_key)
    assert kinds(report) == ["signature"]
    assert report.first_bad_seq is None
    assert report.summary().startswith("TAMPERED: first bad seq unknown")


def test_signed_root_changed(log):
    """Changing the root in the header breaks its signature, and the records no longer reproduce it."""
    lines = log.export()
    header = json.loads(lines[0])
    header["checkpoint"]["root_hash"] = base64.b64encode(b"\x01" * 32).decode()
    lines[0] = json.dumps(header)
    report = verify_export(lines, log.signer.public_key)
    assert {"signature", "tree", "root"} <= set(kinds(report))


def test_checkpoint_from_another_key(log):
    other = CheckpointSigner(bytes(range(1, 33)))
    log.sign(other)  # the export's checkpoint, signed by the wrong key
    report = verify_export(log.export(), log.signer.public_key)
    assert kinds(report) == ["signature"]
    assert "names key" in report.findings[0].detail


def test_earlier_checkpoint_from_another_key(fake_log):
    log = fake_log(20, checkpoint_every=10)
    genuine = log.checkpoints[0]
    log.checkpoints[0] = CheckpointSigner(bytes(range(1, 33))).sign(10, genuine.root_hash, genuine.signed_at)
    report = verify_export(log.export(), log.signer.public_key)
    assert kinds(report) == ["signature"]
    assert report.findings[0].detail.startswith("checkpoints[0]")


def test_rewritten_history(log):
    """A validly signed earlier checkpoint whose root is not a prefix of the exported tree."""
    old = log.checkpoints[2]  # tree size 30
    log.checkpoints[2] = log.signer.sign(30, b"\x07" * 32, old.signed_at)
    report = verify_export(log.export(), log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("checkpoint", 20)]
    assert "rewritten" in report.findings[0].detail


def test_trusted_checkpoint(log):
    trusted = log.checkpoints[3]
    assert verify_export(log.export(), log.signer.public_key, trusted=[trusted]).ok
    bigger = log.signer.sign(120, b"\x02" * 32, trusted.signed_at)
    report = verify_export(log.export(), log.signer.public_key, trusted=[bigger])
    assert [(f.kind, f.seq) for f in report.findings] == [("rollback", 100)]
    forked = log.signer.sign(40, b"\x02" * 32, trusted.signed_at)
    report = verify_export(log.export(), log.signer.public_key, trusted=[forked])
    assert kinds(report) == ["checkpoint"]


def test_non_canonical_record(log):
    lines = log.export()
    lines[43] = lines[43].replace('"n":42', '"n":NaN')
    report = verify_export(lines, log.signer.public_key)
    assert [(f.kind, f.seq) for f in report.findings] == [("edited", 42)]
    lines = edit(log.export(), 42, lambda e: e.update(record=[1, 2]))
    assert [(f.kind, f.seq) for f in verify_export(lines, log.signer.public_key).findings] == [("edited", 42)]


@pytest.mark.parametrize(
    "header",
    [
        "",
        "not json",
        "[]",
        '{"format": "other"}',
    ],
)
def test_malformed_header(header):
    report = verify_export([header] if header else [], b"\x00" * 32)
    assert not report.ok and kinds(report) == ["format"]


def test_malformed_header_fields(log):
    for change in (
        {"first_seq": 50, "end_seq": 40},
        {"end_seq": 101},
        {"tree_size": 99},
        {"range_proof": ["nope"]},
        {"checkpoint": {"origin": "x"}},
    ):
        lines = log.export()
        lines[0] = json.dumps({**json.loads(lines[0]), **change})
        assert kinds(verify_export(lines, log.signer.public_key)) == ["format"], change


def test_malformed_record_lines(log):
    lines = log.export()
    lines[11] = "{not json"
    report = verify_export(lines, log.signer.public_key)
    assert {"format", "missing"} <= set(kinds(report))
    assert report.first_bad_seq == 10
    lines = edit(log.export(), 10, lambda e: e.update(seq=500))
    assert verify_export(lines, log.signer.public_key).first_bad_seq == 10


def test_empty_range(log):
    report = verify_export(log.export(30, 30), log.signer.public_key)
    assert report.ok and report.records == 0


def test_empty_log(fake_log):
    log = fake_log(0)
    assert verify_export(log.export(), log.signer.public_key).ok


def test_report_summary_lists_findings():
    report = Report(False, 0, 10, 10, 9, [Finding("root", None, "x"), Finding("missing", 4, "seq 4 absent")])
    assert report.first_bad_seq == 4
    lines = report.summary().splitlines()
    assert lines[0].startswith("TAMPERED: first bad seq 4; 2 findings")
    assert lines[1:] == ["  root: x", "  missing: seq 4: seq 4 absent"]
