"""``audit verify``: the auditor's command, checking an export file or the live audit API against the public key.

Only the standard library (urllib) and the pure domain code: an auditor runs it without the
service's dependencies. Exit status: 0 verified, 1 tampering found, 2 usage or connection error.

``--against FILE`` checks the log against checkpoints kept outside it (the checkpoint file the relay
appends to, or what ``audit tail --checkpoints`` kept): each must be a prefix of the current tree. A
rewrite of the database that was signed again with the pod's own key verifies on its own (the key is
the same); it cannot reproduce the roots signed before it (issue 11, finding 7).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from .domain.checkpoints import (
    Checkpoint,
    CheckpointError,
    b64decode,
    checkpoints_from_lines,
    decode_public_key,
    verify_checkpoint,
)
from .domain.merkle import HASH_SIZE, ProofError, verify_consistency, verify_inclusion
from .domain.verification import EXPORT_FORMAT, Finding, Report, verify_export

TOKEN_ENV = "UPGESTAO_TOKEN"
TIMEOUT = 60.0


class ApiError(RuntimeError):
    """The audit API could not be reached, refused the request, or answered outside its contract."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to ``parser``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", metavar="FILE", help="a JSON Lines export file to verify")
    source.add_argument("--url", metavar="BASE_URL", help="the gateway, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", help=f"bearer token for --url (default: ${TOKEN_ENV})")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", metavar="B64", help="the log's Ed25519 public key, base64 of its raw 32 bytes")
    key.add_argument("--public-key-file", metavar="PATH", help="a file holding the base64 public key")
    parser.add_argument(
        "--state", metavar="FILE", help="remembers the last verified checkpoint; the next run requires consistency"
    )
    parser.add_argument(
        "--samples", type=int, default=32, metavar="N", help="inclusion proofs to check over HTTP (default 32)"
    )
    parser.add_argument(
        "--against", metavar="FILE",
        help="checkpoints kept outside the log (JSON Lines: the checkpoint file, or audit tail --checkpoints); "
             "every one must be a prefix of the current log",
    )


def run(args: argparse.Namespace) -> int:
    """Verify, print the report; 0 OK, 1 tampered, 2 usage or connection error."""
    try:
        public_key = _public_key(args)
        if getattr(args, "samples", 32) < 0:
            raise ValueError("--samples must be >= 0")
        kept = read_checkpoint_file(args.against) if getattr(args, "against", None) else []
        if args.export:
            report = _verify_file_with_state(args.export, public_key, args.state, against=kept)
        else:
            token = args.token or os.environ.get(TOKEN_ENV)
            if not token:
                raise ValueError(f"--url needs --token or ${TOKEN_ENV}")
            report = verify_api(args.url, token, public_key, state_path=args.state, samples=args.samples,
                                against=kept)
    except (ApiError, OSError, ValueError) as error:
        print(f"audit verify: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    if getattr(args, "against", None):
        print(_against_summary(report, kept, args.against))
    return 0 if report.ok else 1


def read_checkpoint_file(path: str) -> list[Checkpoint]:
    """The checkpoints kept in ``path`` (JSON Lines); ``ValueError`` if it holds none or a bad line."""
    with open(path, "rb") as file:
        kept = checkpoints_from_lines(file, f"--against {path}")
    if not kept:
        raise ValueError(f"--against {path} holds no checkpoint")
    return kept


def _against_summary(report: Report, kept: list[Checkpoint], path: str) -> str:
    largest = kept[-1].tree_size
    if report.ok:
        return f"OK: the log extends all {len(kept)} checkpoints kept in {path} (up to tree size {largest})"
    return (f"REWRITTEN OR TAMPERED: the log is not the one the {len(kept)} checkpoints kept in {path} "
            f"(up to tree size {largest}) signed; a log signed again with the same key is a rewrite")


def _public_key(args: argparse.Namespace) -> bytes:
    if args.public_key_file:
        with open(args.public_key_file, encoding="ascii") as file:
            text = file.read()
    else:
        text = args.public_key
    return decode_public_key(text)


def _file_lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as file:
        yield from file


def verify_file(path: str, public_key: bytes, *, trusted: Iterable[Checkpoint] = ()) -> Report:
    """Verify an export file (streamed line by line)."""
    return verify_export(_file_lines(path), public_key, trusted=tuple(trusted))


def _verify_file_with_state(path: str, public_key: bytes, state_path: str | None, *,
                            against: list[Checkpoint] = ()) -> Report:
    remembered = _read_state(state_path)
    report = verify_file(path, public_key, trusted=[*([remembered] if remembered else ()), *against])
    if remembered is not None and report.first_seq > 0:
        finding = Finding("format", None, "a partial export cannot be checked against the --state checkpoint")
        report = _with_findings(report, [finding])
    if against and report.first_seq > 0:
        finding = Finding("format", None, "a partial export cannot be checked against --against checkpoints")
        report = _with_findings(report, [finding])
    if report.ok and state_path and report.checkpoint is not None:
        _write_state(state_path, report.checkpoint)
    return report


def verify_api(
    base_url: str, token: str, public_key: bytes, *, state_path: str | None = None, samples: int = 32,
    against: list[Checkpoint] = (),
) -> Report:
    """Verify the live log: the full export, sampled inclusion proofs, and consistency of the latest checkpoint.

    The latest checkpoint must extend the export's and, with ``state_path``, the one remembered
    from the previous run; on success it is remembered. Every checkpoint of ``against`` (kept
    outside the log) must be a prefix of the exported tree.

    Raises ``ApiError`` when the API cannot be reached or refuses a request, ``ValueError`` on an
    unreadable state file.
    """
    api = _Api(base_url, token)
    remembered = _read_state(state_path)
    tap = _SampleTap(samples)
    try:
        with api.get("/v1/audit/export") as response:
            report = verify_export(tap.lines(response), public_key, on_record=tap.record, trusted=tuple(against))
    except (OSError, http.client.HTTPException) as error:
        raise ApiError(f"reading GET /v1/audit/export failed: {error}") from None
    exported = report.checkpoint
    if exported is None:  # the header did not parse: nothing to anchor proofs on
        return report
    findings: list[Finding] = []
    _check_inclusions(api, exported, tap.hashes, findings)
    latest = _latest_checkpoint(api, public_key, findings)
    if latest is not None:
        _check_growth(api, exported, latest, findings, what="the export's checkpoint")
        if remembered is not None:
            try:
                verify_checkpoint(remembered, public_key)
            except CheckpointError as error:
                findings.append(Finding("signature", None, f"--state checkpoint: {error}"))
            else:
                _check_growth(api, remembered, latest, findings, what="the remembered checkpoint")
    report = _with_findings(report, findings)
    if report.ok and state_path and latest is not None:
        _write_state(state_path, latest)
    return report


def _with_findings(report: Report, extra: list[Finding]) -> Report:
    if not extra:
        return report
    findings = sorted([*report.findings, *extra], key=lambda f: (f.seq is not None, f.seq or 0))
    return replace(report, ok=False, findings=findings)


class _Api:
    """GET requests with the bearer token; every failure becomes an ``ApiError`` with a one-line message."""

    def __init__(self, base_url: str, token: str) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> http.client.HTTPResponse:
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        request = Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            return urlopen(request, timeout=TIMEOUT)
        except HTTPError as error:
            error.close()
            raise ApiError(f"GET {path} answered HTTP {error.code} {error.reason}") from None
        except (URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(f"cannot reach {self.base_url}: {reason}") from None

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            with self.get(path, params) as response:
                body = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ApiError(f"reading GET {path} failed: {error}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError(f"GET {path} did not answer JSON") from None


class _SampleTap:
    """Picks the sampled seqs from the export header and keeps their recomputed leaf hashes."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.wanted: set[int] = set()
        self.hashes: dict[int, bytes] = {}

    def lines(self, source: Iterable[bytes]) -> Iterator[bytes]:
        stream = iter(source)
        for line in stream:
            if line.strip():
                self._choose(line)
                yield line
                break
            yield line
        yield from stream

    def _choose(self, line: bytes) -> None:
        try:
            header = json.loads(line)
            if header.get("format") != EXPORT_FORMAT:
                return
            size, first, end = int(header["tree_size"]), int(header["first_seq"]), int(header["end_seq"])
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # verify_export reports the malformed header
        if size <= 0 or self.samples <= 0:
            return
        spread = {(i * size) // self.samples for i in range(self.samples)} | {size - 1}
        self.wanted = {seq for seq in spread if first <= seq < end}

    def record(self, seq: int, hashed: bytes) -> None:
        if seq in self.wanted:
            self.hashes[seq] = hashed


def _hash_list(data: Any, field: str, what: str) -> list[bytes]:
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise ValueError(f"{what} has no {field} list")
    hashes = [b64decode(text, f"{what} {field}[{i}]") for i, text in enumerate(data[field])]
    if any(len(hashed) != HASH_SIZE for hashed in hashes):
        raise ValueError(f"{what} {field} holds a hash that is not {HASH_SIZE} bytes")
    return hashes


def _check_inclusions(api: _Api, checkpoint: Checkpoint, hashes: Mapping[int, bytes], findings: list[Finding]) -> None:
    """Inclusion proofs of the sampled records (hashes recomputed from the export) in the export's signed tree."""
    size = checkpoint.tree_size
    for seq in sorted(hashes):
        mine = hashes[seq]
        data = api.get_json("/v1/audit/proof/inclusion", {"seq": seq, "tree_size": size})
        try:
            path = _hash_list(data, "audit_path", f"inclusion proof of seq {seq}")
            if data.get("seq") != seq or data.get("tree_size") != size:
                raise ValueError(
                    f"asked for seq {seq} in tree size {size}, got {data.get('seq')} in {data.get('tree_size')}"
                )
            theirs = b64decode(data.get("leaf_hash"), f"inclusion proof of seq {seq} leaf_hash")
        except ValueError as error:
            findings.append(Finding("inclusion", seq, f"malformed inclusion proof: {error}"))
            continue
        if theirs != mine:
            findings.append(Finding("inclusion", seq, "the API's leaf hash differs from the exported record's hash"))
            continue
        try:
            verify_inclusion(mine, seq, size, path, checkpoint.root_hash)
        except ProofError as error:
            findings.append(Finding("inclusion", seq, str(error)))


def _latest_checkpoint(api: _Api, public_key: bytes, findings: list[Finding]) -> Checkpoint | None:
    data = api.get_json("/v1/audit/checkpoint")
    try:
        latest = Checkpoint.from_dict(data)
    except ValueError as error:
        findings.append(Finding("format", None, f"latest checkpoint: {error}"))
        return None
    try:
        verify_checkpoint(latest, public_key)
    except CheckpointError as error:
        findings.append(Finding("signature", None, f"latest checkpoint: {error}"))
        return None
    return latest


def _check_growth(api: _Api, old: Checkpoint, new: Checkpoint, findings: list[Finding], *, what: str) -> None:
    """``new`` must extend ``old``: same root at the same size, else a verified consistency proof."""
    if new.tree_size < old.tree_size:
        detail = f"the log shrank: {what} had tree size {old.tree_size}, the latest has {new.tree_size}"
        findings.append(Finding("rollback", new.tree_size, detail))
        return
    if new.tree_size == old.tree_size:
        if new.root_hash != old.root_hash:
            detail = f"{what} and the latest checkpoint sign different roots for tree size {old.tree_size}"
            findings.append(Finding("consistency", None, detail))
        return
    params = {"first": old.tree_size, "second": new.tree_size}
    data = api.get_json("/v1/audit/proof/consistency", params)
    try:
        proof = _hash_list(data, "proof", f"consistency proof {old.tree_size}->{new.tree_size}")
        if data.get("first") != old.tree_size or data.get("second") != new.tree_size:
            raise ValueError(
                f"asked for {old.tree_size}->{new.tree_size}, got {data.get('first')}->{data.get('second')}"
            )
        verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    except ValueError as error:  # ProofError included
        detail = (
            f"{what} (tree size {old.tree_size}) is not a prefix of the latest (tree size {new.tree_size}): {error}"
        )
        findings.append(Finding("consistency", None, detail))


def _read_state(path: str | None) -> Checkpoint | None:
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return Checkpoint.from_dict(json.load(file))
    except ValueError as error:
        raise ValueError(f"state file {path} does not hold a checkpoint: {error}") from None


def _write_state(path: str, checkpoint: Checkpoint) -> None:
    """Atomically replace the state file with ``checkpoint``."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".audit-state-", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(checkpoint.to_dict(), file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
