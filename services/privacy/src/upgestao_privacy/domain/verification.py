"""Verification of an audit log export: what an external auditor runs with the export and the public key.

The export is JSON Lines. The header (line 1) names the covered seqs ``[first_seq, end_seq)``, the
signed checkpoint of ``tree_size`` N, earlier signed checkpoints and the ``range_proof`` of the
covered seqs in the tree of N leaves. Each further line is ``{"seq", "leaf_hash", "record"}``:
``leaf_hash`` is what the server's tree store holds for that leaf, ``record`` the stored record,
whose leaf bytes are ``canonical_json(record)``.

``verify_export`` streams the lines, keeping only two hashes per record (the stored one and the
one recomputed from the record), and reports findings naming the first seq that cannot be vouched
for. Finding kinds:

- ``format``: the export is malformed;
- ``signature``: a checkpoint is not signed by the given key;
- ``missing``: a seq is absent inside the export (a deleted row);
- ``truncated``: the records stop before ``end_seq``;
- ``edited``: a record's hash differs from the authentic leaf hash, or the record is not canonical JSON;
- ``reordered``: a record's own ``seq`` differs from its line's seq, or lines are duplicated or out of order;
- ``tree``: the tree store's leaf hashes do not reproduce the signed root;
- ``root``: the records do not reproduce the signed root;
- ``checkpoint``: an earlier checkpoint's root is not reproduced (locates the damage to a seq interval);
- ``rollback``: a trusted checkpoint is larger than the exported tree.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from .checkpoints import Checkpoint, CheckpointError, b64decode, b64encode, verify_checkpoint
from .leaves import canonical_json
from .merkle import HASH_SIZE, Frontier, ProofError, leaf_hash, root_from_range

EXPORT_FORMAT = "upgestao-audit-export/v1"
MAX_FINDINGS = 10_000


@dataclass(frozen=True)
class Finding:
    """One problem found in an export; ``seq`` is the first seq it concerns, None when it concerns no record."""

    kind: str
    seq: int | None
    detail: str


@dataclass
class Report:
    """The outcome of verifying an export; ``ok`` when there are no findings."""

    ok: bool
    first_seq: int
    end_seq: int
    tree_size: int
    records: int
    findings: list[Finding]
    checkpoint: Checkpoint | None = None
    omitted: int = 0  # findings left out past MAX_FINDINGS
    omitted_first_seq: int | None = None  # the smallest seq among the omitted findings

    @property
    def first_bad_seq(self) -> int | None:
        """The smallest seq named by any finding."""
        seqs = [finding.seq for finding in self.findings if finding.seq is not None]
        if self.omitted_first_seq is not None:
            seqs.append(self.omitted_first_seq)
        return min(seqs, default=None)

    def summary(self) -> str:
        """Human text: a first ``OK: ...`` or ``TAMPERED: ...`` line, then one line per finding."""
        span = f"records [{self.first_seq}, {self.end_seq}) of tree size {self.tree_size}"
        if self.ok:
            line = f"OK: {self.records} {span} reproduce the signed root"
            if self.checkpoint is not None:
                signed = self.checkpoint.signed_at.isoformat()
                line += f" (checkpoint signed at {signed} by key {self.checkpoint.key_id})"
            return line
        first = self.first_bad_seq
        total = len(self.findings) + self.omitted
        lines = [
            f"TAMPERED: first bad seq {first if first is not None else 'unknown'}; "
            f"{total} finding{'s' if total != 1 else ''} over {span} ({self.records} records read)"
        ]
        for finding in self.findings:
            where = f" seq {finding.seq}:" if finding.seq is not None else ""
            lines.append(f"  {finding.kind}:{where} {finding.detail}")
        if self.omitted:
            lines.append(f"  ... and {self.omitted} more findings")
        return "\n".join(lines)


def header_line(
    first_seq: int,
    end_seq: int,
    checkpoint: Checkpoint,
    checkpoints: Sequence[Checkpoint],
    range_proof: Sequence[bytes],
    *,
    exported_at: datetime,
    from_: datetime | None = None,
    to: datetime | None = None,
) -> str:
    """The export's first line (no newline): seqs ``[first_seq, end_seq)`` of the tree of ``checkpoint``."""
    header = {
        "format": EXPORT_FORMAT,
        "first_seq": first_seq,
        "end_seq": end_seq,
        "tree_size": checkpoint.tree_size,
        "checkpoint": checkpoint.to_dict(),
        "checkpoints": [c.to_dict() for c in sorted(checkpoints, key=lambda c: c.tree_size)],
        "range_proof": [b64encode(element) for element in range_proof],
        "from": from_.isoformat() if from_ is not None else None,
        "to": to.isoformat() if to is not None else None,
        "exported_at": exported_at.isoformat(),
    }
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False)


def record_line(seq: int, leaf_hash: bytes | None, record: Mapping[str, Any]) -> str:
    """One record line of the export (no newline); ``leaf_hash`` as the tree store holds it."""
    stored = b64encode(leaf_hash) if leaf_hash is not None else None
    return json.dumps({"seq": seq, "leaf_hash": stored, "record": record}, separators=(",", ":"), ensure_ascii=False)


class _Findings:
    """Collects findings up to MAX_FINDINGS, counting the rest."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.omitted = 0
        self.omitted_first_seq: int | None = None

    def add(self, kind: str, seq: int | None, detail: str) -> None:
        if len(self.items) < MAX_FINDINGS:
            self.items.append(Finding(kind, seq, detail))
            return
        self.omitted += 1
        if seq is not None and (self.omitted_first_seq is None or seq < self.omitted_first_seq):
            self.omitted_first_seq = seq

    def report(self, header: _Header | None, records: int) -> Report:
        items = sorted(self.items, key=lambda f: (f.seq is not None, f.seq or 0))
        if header is None:
            return Report(not items, 0, 0, 0, records, items, None, self.omitted, self.omitted_first_seq)
        return Report(
            not items and not self.omitted,
            header.first_seq,
            header.end_seq,
            header.tree_size,
            records,
            items,
            header.checkpoint,
            self.omitted,
            self.omitted_first_seq,
        )


class _Header(NamedTuple):
    first_seq: int
    end_seq: int
    tree_size: int
    checkpoint: Checkpoint
    checkpoints: list[Any]
    range_proof: list[bytes]


def _integer(header: Mapping[str, Any], name: str) -> int:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"header {name} must be an integer >= 0, got {value!r}")
    return value


def _parse_header(line: str | bytes) -> _Header:
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):  # (RecursionError: nested too deep)
        raise ValueError("the header line is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("the header line is not a JSON object")
    if header.get("format") != EXPORT_FORMAT:
        raise ValueError(f"header format is {header.get('format')!r}, expected {EXPORT_FORMAT!r}")
    first_seq, end_seq, tree_size = (_integer(header, name) for name in ("first_seq", "end_seq", "tree_size"))
    if not first_seq <= end_seq <= tree_size:
        raise ValueError(f"header range [{first_seq}, {end_seq}) is not within tree size {tree_size}")
    checkpoint = Checkpoint.from_dict(header.get("checkpoint"))
    if checkpoint.tree_size != tree_size:
        raise ValueError(f"header tree_size {tree_size} differs from its checkpoint's {checkpoint.tree_size}")
    checkpoints = header.get("checkpoints", [])
    if not isinstance(checkpoints, list):
        raise ValueError("header checkpoints must be a list")
    proof_texts = header.get("range_proof")
    if not isinstance(proof_texts, list):
        raise ValueError("header range_proof must be a list")
    proof = [b64decode(text, f"range_proof[{i}]") for i, text in enumerate(proof_texts)]
    if any(len(element) != HASH_SIZE for element in proof):
        raise ValueError(f"range_proof elements must be {HASH_SIZE} bytes")
    return _Header(first_seq, end_seq, tree_size, checkpoint, checkpoints, proof)


def _signed_checkpoints(header: _Header, public_key: bytes, findings: _Findings) -> list[Checkpoint]:
    """The header's earlier checkpoints that parse and carry a valid signature."""
    good = []
    for position, data in enumerate(header.checkpoints):
        try:
            checkpoint = Checkpoint.from_dict(data)
        except ValueError as error:
            findings.add("format", None, f"checkpoints[{position}]: {error}")
            continue
        try:
            verify_checkpoint(checkpoint, public_key)
        except CheckpointError as error:
            findings.add("signature", None, f"checkpoints[{position}]: {error}")
            continue
        good.append(checkpoint)
    return good


def _prefix(hashes: dict[int, bytes], count: int) -> list[bytes]:
    """The hashes of slots ``0, 1, ...`` up to the first one absent (at most ``count``)."""
    prefix: list[bytes] = []
    while len(prefix) < count and (hashed := hashes.get(len(prefix))) is not None:
        prefix.append(hashed)
    return prefix


def _seqs(start: int, end: int) -> str:
    return f"seq {start}" if end - start == 1 else f"seqs {start}..{end - 1} ({end - start} rows)"


def verify_export(
    lines: Iterable[str | bytes],
    public_key: bytes,
    *,
    trusted: Sequence[Checkpoint] = (),
    on_record: Callable[[int, bytes], None] | None = None,
) -> Report:
    """Verify a JSON Lines export against ``public_key``, streaming.

    ``trusted``: checkpoints verified on an earlier run (a full export must reproduce their roots,
    and must not be smaller). ``on_record(seq, leaf_hash)`` is called with the hash recomputed
    from each readable record.
    """
    findings = _Findings()
    stream = iter(lines)
    first_line = next((line for line in stream if line.strip()), None)
    if first_line is None:
        findings.add("format", None, "the export is empty: no header line")
        return findings.report(None, 0)
    try:
        header = _parse_header(first_line)
    except ValueError as error:
        findings.add("format", None, str(error))
        return findings.report(None, 0)

    try:
        verify_checkpoint(header.checkpoint, public_key)
    except CheckpointError as error:
        findings.add("signature", None, f"export checkpoint: {error}")
    earlier = _signed_checkpoints(header, public_key, findings)
    for checkpoint in trusted:
        try:
            verify_checkpoint(checkpoint, public_key)
        except CheckpointError as error:
            findings.add("signature", None, f"trusted checkpoint: {error}")
            continue
        if checkpoint.tree_size > header.tree_size:
            findings.add(
                "rollback",
                header.tree_size,
                f"the log has {header.tree_size} records but a checkpoint of tree size {checkpoint.tree_size} "
                "was verified before",
            )
            continue
        # the export's own checkpoint of that size (a rewriter re-signs them all) must sign the same root
        same_size = [c for c in (header.checkpoint, *earlier) if c.tree_size == checkpoint.tree_size]
        if any(c.root_hash != checkpoint.root_hash for c in same_size):
            findings.add("checkpoint", None, f"the trusted checkpoint of tree size {checkpoint.tree_size} signed at "
                         f"{checkpoint.signed_at.isoformat()} and the export's checkpoint of that size sign "
                         "different roots: the log was rewritten and signed again")
            earlier = [c for c in earlier if c.tree_size != checkpoint.tree_size]  # walk the trusted one
        if checkpoint.tree_size < header.tree_size:
            earlier.append(checkpoint)

    first, end, size = header.first_seq, header.end_seq, header.tree_size
    count = end - first
    # by slot (seq - first), holding only what the lines gave: the header's range is not yet
    # vouched for, and must not size the memory used (a forged header may claim 2**63 seqs)
    stored: dict[int, bytes] = {}
    computed: dict[int, bytes] = {}
    seen: set[int] = set()
    records, flagged = _read_records(stream, header, stored, computed, seen, findings, on_record)

    last = count - 1  # the last slot seen
    if len(seen) < count:  # some are absent: name the gaps before the last one seen
        last = -1
        for slot in sorted(seen):
            if slot > last + 1:
                gap = _seqs(first + last + 1, first + slot)
                findings.add("missing", first + last + 1, f"{gap} absent from the export")
            last = slot
    if last + 1 < count:
        cut = first + last + 1
        findings.add("truncated", cut, f"the export stops before seq {cut}: {_seqs(cut, end)} absent")
    if count == 0:
        return findings.report(header, records)

    signed_root = header.checkpoint.root_hash
    complete = len(seen) == count  # (then as many lines were read)
    authentic = False
    if complete and len(stored) == count:
        leaves = list(map(stored.__getitem__, range(count)))
        try:
            authentic = root_from_range(first, end, size, leaves, header.range_proof) == signed_root
        except ProofError as error:
            findings.add("format", None, f"range_proof: {error}")
    if authentic:
        for slot, (mine, theirs) in enumerate(zip(map(computed.get, range(count)), leaves, strict=True)):
            if mine != theirs and first + slot not in flagged:
                findings.add("edited", first + slot, "the record's hash differs from the authentic leaf hash")
    else:
        _check_roots(header, stored, computed, complete, findings)
    if first == 0:
        _walk_checkpoints(header, earlier, _prefix(stored if authentic else computed, count), authentic, findings)
    return findings.report(header, records)


def _read_records(
    stream: Iterator[str | bytes],
    header: _Header,
    stored: dict[int, bytes],
    computed: dict[int, bytes],
    seen: set[int],
    findings: _Findings,
    on_record: Callable[[int, bytes], None] | None,
) -> tuple[int, set[int]]:
    """Stream the record lines into ``stored``/``computed`` hash slots.

    Returns how many record lines were read and the seqs already reported as edited or as
    holding a record of another seq.
    """
    first, end = header.first_seq, header.end_seq
    loads, a2b, encode, hash_leaf = json.JSONDecoder().decode, binascii.a2b_base64, canonical_json, leaf_hash
    records = 0
    flagged: set[int] = set()
    highest = first - 1
    for line_number, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        records += 1
        try:
            entry = loads(line.decode("utf-8") if isinstance(line, bytes) else line)
        except (ValueError, RecursionError):  # UnicodeDecodeError included; RecursionError: nested too deep
            findings.add("format", None, f"line {line_number} is not JSON")
            continue
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if type(seq) is not int:
            findings.add("format", None, f"line {line_number} has no integer seq")
            continue
        if not first <= seq < end:
            findings.add("format", seq, f"line {line_number}: seq {seq} is outside the export's range [{first}, {end})")
            continue
        slot = seq - first
        if slot in seen:
            findings.add("reordered", seq, f"seq {seq} appears more than once (line {line_number})")
            continue
        seen.add(slot)
        if seq < highest:
            findings.add("reordered", seq, f"seq {seq} comes after seq {highest} (line {line_number})")
        else:
            highest = seq
        text = entry.get("leaf_hash")
        if text is not None:
            try:
                decoded = a2b(text, strict_mode=True) if isinstance(text, str) else None
            except (binascii.Error, ValueError):
                decoded = None
            if decoded is None or len(decoded) != HASH_SIZE:
                findings.add("format", seq, f"leaf_hash of seq {seq} is not a base64 {HASH_SIZE}-byte hash")
            else:
                stored[slot] = decoded
        record = entry.get("record")
        if not isinstance(record, dict):
            findings.add("edited", seq, "the record is not a JSON object")
            flagged.add(seq)
            continue
        try:
            computed[slot] = hashed = hash_leaf(encode(record))
        except (ValueError, RecursionError):
            findings.add("edited", seq, "the record is not canonical JSON (NaN or infinity)")
            flagged.add(seq)
            continue
        if on_record is not None:
            on_record(seq, hashed)
        claimed = record.get("seq")
        if type(claimed) is not int or claimed != seq:
            findings.add("reordered", seq, f"the record on the line of seq {seq} says seq {claimed!r}")
            flagged.add(seq)
    return records, flagged


def _check_roots(
    header: _Header,
    stored: dict[int, bytes],
    computed: dict[int, bytes],
    complete: bool,
    findings: _Findings,
) -> None:
    """The stored hashes did not reproduce the signed root: say why, and whether the records do."""
    first, end, size = header.first_seq, header.end_seq, header.tree_size
    count = end - first
    signed_root = header.checkpoint.root_hash
    if complete:
        absent = [first + slot for slot in range(count) if slot not in stored]
        if absent:
            findings.add("tree", absent[0], f"the tree store has no leaf hash for {len(absent)} records")
        else:
            detail = (
                f"the tree store's leaf hashes of [{first}, {end}) do not reproduce the signed root of tree size {size}"
            )
            findings.add("tree", None, detail)
    unreadable = count - len(computed)
    if unreadable:
        detail = f"the signed root of tree size {size} cannot be recomputed: {unreadable} records absent or unreadable"
        findings.add("root", None, detail)
        return
    leaves = list(map(computed.__getitem__, range(count)))
    try:
        reproduced = root_from_range(first, end, size, leaves, header.range_proof) == signed_root
    except ProofError:
        reproduced = False  # already reported as a format finding
    if not reproduced:
        findings.add("root", None, f"the records [{first}, {end}) do not reproduce the signed root of tree size {size}")


def _walk_checkpoints(
    header: _Header,
    checkpoints: list[Checkpoint],
    hashes: list[bytes],
    authentic: bool,
    findings: _Findings,
) -> None:
    """Recompute prefix roots at checkpoint sizes; the first mismatch locates the damage after the last good one."""
    end = header.end_seq
    walk = [c for c in checkpoints if 0 < c.tree_size <= end]
    if authentic:
        walk = [c for c in walk if c.tree_size < header.tree_size]  # the header's root is already reproduced
    elif end == header.tree_size:
        walk.append(header.checkpoint)
    if not walk:
        return
    walk.sort(key=lambda c: c.tree_size)
    usable = len(hashes)  # the hashes of seqs 0.. up to the first absent or unreadable one
    frontier = Frontier()
    good = 0
    for checkpoint in walk:
        if checkpoint.tree_size > usable:
            return
        if checkpoint.tree_size > frontier.size:
            frontier.extend(hashes[frontier.size : checkpoint.tree_size])  # type: ignore[arg-type]
        if frontier.root() == checkpoint.root_hash:
            good = checkpoint.tree_size
            continue
        signed = f"checkpoint of tree size {checkpoint.tree_size} signed at {checkpoint.signed_at.isoformat()}"
        if authentic:
            rewritten = f"[{good}, {checkpoint.tree_size})"
            detail = f"the {signed} is not a prefix of the signed tree: the log was rewritten in {rewritten}"
        else:
            detail = f"records [{good}, {checkpoint.tree_size}) do not reproduce the root of the {signed}" + (
                f"; records before seq {good} match the checkpoint of tree size {good}" if good else ""
            )
        findings.add("checkpoint", good, detail)
        return
