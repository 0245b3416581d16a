"""``audit verify``: against an export file, and against a tiny local HTTP server playing the audit API."""

from __future__ import annotations

import argparse
import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from upgestao_privacy.domain.checkpoints import b64encode, checkpoint_line
from upgestao_privacy.verify_command import configure, run, verify_api, verify_file

TOKEN = "auditor-token"


class FakeApi:
    """What the gateway serves, from a FakeLog; tests swap parts of it to tamper."""

    def __init__(self, log):
        self.log = log
        self.export_lines = None  # None: log.export()
        self.latest = None  # None: log.latest
        self.tamper_inclusion = False
        self.tamper_consistency = False
        self.requests = []

    def export(self):
        return self.export_lines if self.export_lines is not None else self.log.export()

    def checkpoint(self):
        return self.latest if self.latest is not None else self.log.latest

    def inclusion(self, seq, size):
        path = self.log.inclusion(seq, size)
        if self.tamper_inclusion and path:
            path[0] = bytes(32)
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_hash": b64encode(self.log.nodes.nodes[(0, seq)]),
            "audit_path": [b64encode(h) for h in path],
        }

    def consistency(self, first, second):
        proof = self.log.consistency(first, second)
        if self.tamper_consistency and proof:
            proof[-1] = bytes(32)
        return {"first": first, "second": second, "proof": [b64encode(h) for h in proof]}


def make_handler(api):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            url = urlsplit(self.path)
            query = {key: int(values[0]) for key, values in parse_qs(url.query).items()}
            api.requests.append((url.path, query))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.answer(401, {"error": "unauthorized"})
            if url.path == "/v1/audit/export":
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                for line in api.export():
                    self.wfile.write(line.encode() + b"\n")
                return None
            if url.path == "/v1/audit/checkpoint":
                return self.answer(200, api.checkpoint().to_dict())
            if url.path == "/v1/audit/proof/inclusion":
                return self.answer(200, api.inclusion(query["seq"], query["tree_size"]))
            if url.path == "/v1/audit/proof/consistency":
                return self.answer(200, api.consistency(query["first"], query["second"]))
            return self.answer(404, {"error": "not found"})

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def serve():
    servers = []

    def start(api):
        server = HTTPServer(("127.0.0.1", 0), make_handler(api))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def command(*argv):
    parser = argparse.ArgumentParser(prog="audit verify")
    configure(parser)
    return run(parser.parse_args(list(argv)))


@pytest.fixture
def log(fake_log):
    return fake_log(100, checkpoint_every=10)


def key_args(log):
    return ["--public-key", log.signer.public_key_b64]


def test_api_ok(log, serve, capsys):
    api = FakeApi(log)
    url = serve(api)
    assert command("--url", url, "--token", TOKEN, *key_args(log)) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 100 records [0, 100) of tree size 100")
    inclusion = [query["seq"] for path, query in api.requests if path == "/v1/audit/proof/inclusion"]
    assert 99 in inclusion and 0 in inclusion and len(inclusion) == 33  # 32 spread + the last leaf


def test_api_ok_with_a_newer_checkpoint(log, serve):
    api = FakeApi(log)
    api.export_lines = log.export()  # exported at 100 ...
    log.append(23)  # ... then the log grew
    url = serve(api)
    report = verify_api(url, TOKEN, log.signer.public_key, samples=8)
    assert report.ok, report.summary()
    assert ("/v1/audit/proof/consistency", {"first": 100, "second": 123}) in api.requests


def test_api_tampered_export(log, serve, capsys, monkeypatch):
    api = FakeApi(log)
    lines = log.export()
    entry = json.loads(lines[43])
    entry["record"]["actor"] = "someone-else"
    lines[43] = json.dumps(entry)
    api.export_lines = lines
    url = serve(api)
    monkeypatch.setenv("UPGESTAO_TOKEN", TOKEN)
    assert command("--url", url, *key_args(log)) == 1
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: first bad seq 42")


def test_api_bad_inclusion_proofs(log, serve):
    api = FakeApi(log)
    api.tamper_inclusion = True
    report = verify_api(serve(api), TOKEN, log.signer.public_key, samples=4)
    assert not report.ok
    assert {f.kind for f in report.findings} == {"inclusion"}


def test_api_bad_consistency_proof(log, serve):
    api = FakeApi(log)
    api.export_lines = log.export()
    log.append(5)
    api.tamper_consistency = True
    report = verify_api(serve(api), TOKEN, log.signer.public_key, samples=0)
    assert [f.kind for f in report.findings] == ["consistency"]


def test_api_latest_checkpoint_from_another_key(log, serve, fake_log):
    api = FakeApi(log)
    api.latest = fake_log(100, seed=bytes(range(1, 33))).latest
    report = verify_api(serve(api), TOKEN, log.signer.public_key, samples=0)
    assert [f.kind for f in report.findings] == ["signature"]


def test_state_remembers_and_detects_rollback(log, serve, fake_log, tmp_path, capsys):
    state = tmp_path / "audit-state.json"
    url = serve(FakeApi(log))
    assert command("--url", url, "--token", TOKEN, *key_args(log), "--state", str(state)) == 0
    remembered = json.loads(state.read_text())
    assert remembered["tree_size"] == 100
    capsys.readouterr()

    # the log grows: still consistent with the remembered checkpoint, which moves forward
    log.append(10)
    assert command("--url", url, "--token", TOKEN, *key_args(log), "--state", str(state)) == 0
    assert json.loads(state.read_text())["tree_size"] == 110
    capsys.readouterr()

    # the server is restored from an older backup: 95 records, same key
    rolled_back = serve(FakeApi(fake_log(95, checkpoint_every=10)))
    assert command("--url", rolled_back, "--token", TOKEN, *key_args(log), "--state", str(state)) == 1
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: first bad seq 95")
    assert "rollback: seq 95:" in out
    assert json.loads(state.read_text())["tree_size"] == 110  # not overwritten


def test_state_detects_a_rewritten_log(log, serve, fake_log, tmp_path):
    state = tmp_path / "state.json"
    verify_api(serve(FakeApi(log)), TOKEN, log.signer.public_key, state_path=str(state), samples=0)
    assert json.loads(state.read_text())["tree_size"] == 100
    # a different history under the same key, longer than the remembered one: records differ from seq 3
    forged = fake_log(3)
    forged.body = lambda seq: {"actor": "forger", "n": seq}
    forged.append(127)
    report = verify_api(serve(FakeApi(forged)), TOKEN, log.signer.public_key, state_path=str(state), samples=0)
    assert [f.kind for f in report.findings] == ["consistency"]
    assert "remembered" in report.findings[0].detail
    assert json.loads(state.read_text())["tree_size"] == 100


def test_connection_refused(log, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert command("--url", f"http://127.0.0.1:{port}", "--token", TOKEN, *key_args(log)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("audit verify: cannot reach http://127.0.0.1:")
    assert len(captured.err.strip().splitlines()) == 1


def test_wrong_token(log, serve, capsys):
    url = serve(FakeApi(log))
    assert command("--url", url, "--token", "wrong", *key_args(log)) == 2
    assert "HTTP 401" in capsys.readouterr().err


def test_usage_errors(log, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("UPGESTAO_TOKEN", raising=False)
    assert command("--url", "http://127.0.0.1:1", *key_args(log)) == 2
    assert "--token" in capsys.readouterr().err
    assert command("--export", str(tmp_path / "absent.jsonl"), *key_args(log)) == 2
    assert command("--export", "x", "--public-key", "not a key") == 2
    with pytest.raises(SystemExit):
        command("--export", "x")  # the key is required


def test_export_file(log, tmp_path, capsys):
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(log.export()) + "\n", encoding="utf-8")
    key_file = tmp_path / "audit.pub"
    key_file.write_text(log.signer.public_key_b64 + "\n")
    assert verify_file(str(path), log.signer.public_key).ok
    assert command("--export", str(path), "--public-key-file", str(key_file)) == 0
    assert capsys.readouterr().out.startswith("OK:")

    lines = log.export()
    del lines[51]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert command("--export", str(path), "--public-key-file", str(key_file)) == 1
    assert capsys.readouterr().out.startswith("TAMPERED: first bad seq 50")


def test_export_file_with_state(log, fake_log, tmp_path, capsys):
    state = tmp_path / "state.json"
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(log.export()) + "\n", encoding="utf-8")
    assert command("--export", str(path), *key_args(log), "--state", str(state)) == 0
    assert json.loads(state.read_text())["tree_size"] == 100
    smaller = fake_log(60, checkpoint_every=10)
    path.write_text("\n".join(smaller.export()) + "\n", encoding="utf-8")
    assert command("--export", str(path), *key_args(log), "--state", str(state)) == 1
    assert "rollback: seq 60:" in capsys.readouterr().out


def test_public_key_is_base64_of_the_raw_key(log):
    assert base64.b64decode(log.signer.public_key_b64) == log.signer.public_key


# -- against checkpoints kept outside the log (issue 11, finding 7) ------------------------------------------


def rewrite_without(fake_log, original, deleted_seq: int):
    """What someone holding the database and the pod's signing key can do: delete a record, rebuild
    the tree and sign every checkpoint again with the same key."""
    forged = fake_log(0)
    forged.body = lambda seq: type(original).body(seq if seq < deleted_seq else seq + 1)
    return forged.append(len(original.records) - 1, checkpoint_every=10)


def kept_file(tmp_path, checkpoints) -> str:
    path = tmp_path / "kept-checkpoints.jsonl"
    path.write_text("".join(checkpoint_line(c) + "\n" for c in checkpoints), encoding="ascii")
    return str(path)


def test_a_re_signed_rewrite_verifies_alone_and_is_caught_against_the_checkpoints_kept(
        log, fake_log, serve, tmp_path, capsys):
    kept = kept_file(tmp_path, log.checkpoints)  # what the relay appended, and the stream carried, earlier
    forged = rewrite_without(fake_log, log, 42)
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(forged.export()) + "\n", encoding="utf-8")

    assert command("--export", str(export), *key_args(log)) == 0  # every signature is the pod's: OK alone
    assert capsys.readouterr().out.startswith("OK: 99 records")

    assert command("--export", str(export), *key_args(log), "--against", kept) == 1
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: first bad seq 40")
    assert "is not a prefix of the signed tree: the log was rewritten in [40, 50)" in out
    assert "rollback: seq 99: the log has 99 records but a checkpoint of tree size 100" in out
    assert out.rstrip().splitlines()[-1] == (
        f"REWRITTEN OR TAMPERED: the log is not the one the 10 checkpoints kept in {kept} (up to tree size 100) "
        "signed; a log signed again with the same key is a rewrite")

    url = serve(FakeApi(forged))
    assert command("--url", url, "--token", TOKEN, *key_args(log), "--samples", "0") == 0
    capsys.readouterr()
    assert command("--url", url, "--token", TOKEN, *key_args(log), "--samples", "0", "--against", kept) == 1
    assert "the log was rewritten in [40, 50)" in capsys.readouterr().out


def test_an_edit_re_signed_at_the_same_size_is_caught_too(log, fake_log, tmp_path, capsys):
    forged = fake_log(0)
    forged.body = lambda seq: {**type(log).body(seq), "actor": "someone-else"} if seq == 97 else type(log).body(seq)
    forged.append(100, checkpoint_every=10)
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(forged.export()) + "\n", encoding="utf-8")
    kept = kept_file(tmp_path, log.checkpoints)
    assert command("--export", str(export), *key_args(log)) == 0
    capsys.readouterr()
    assert command("--export", str(export), *key_args(log), "--against", kept) == 1
    out = capsys.readouterr().out
    assert ("the trusted checkpoint of tree size 100 signed at 2026-11-29T19:01:40.123456+00:00 and the export's "
            "checkpoint of that size sign different roots: the log was rewritten and signed again") in out


def test_an_untouched_log_extends_every_checkpoint_kept(log, serve, tmp_path, capsys):
    kept = kept_file(tmp_path, log.checkpoints[:6])
    log.append(7, checkpoint_every=10)  # the log grew since
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(log.export()) + "\n", encoding="utf-8")
    assert command("--export", str(export), *key_args(log), "--against", kept) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == (
        f"OK: the log extends all 6 checkpoints kept in {kept} (up to tree size 60)")
    assert command("--url", serve(FakeApi(log)), "--token", TOKEN, *key_args(log), "--against", kept) == 0
    assert command("--export", str(export), *key_args(log), "--against", str(tmp_path / "absent")) == 2
    (tmp_path / "empty.jsonl").write_text("\n")
    assert command("--export", str(export), *key_args(log), "--against", str(tmp_path / "empty.jsonl")) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
