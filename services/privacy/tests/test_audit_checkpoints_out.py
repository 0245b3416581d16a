"""Service test: every signed checkpoint leaves the database (issue 11, finding 7), put on the ``audit.log``
stream after the records it covers and appended to the checkpoint file, by the relay's stream feeder
logged in as the runtime role."""

from __future__ import annotations

import io
import json

from upgestao_kernel.config import load_settings
from upgestao_kernel.testing import wait_for
from upgestao_privacy.adapters.audit_stream import tail
from upgestao_privacy.domain.checkpoints import Checkpoint, checkpoints_from_lines, decode_public_key, verify_checkpoint
from upgestao_privacy.settings import load_audit_settings


def test_checkpoints_go_to_the_stream_after_their_records_and_to_the_checkpoint_file(privacy, tmp_path, monkeypatch):
    kept = tmp_path / "auditor" / "audit-checkpoints.jsonl"
    monkeypatch.setenv("PRIVACY_CHECKPOINT_FILE", str(kept))
    privacy.publish([privacy.record() for _ in range(25)])
    privacy.wait_count(25)
    dpo = privacy.caller(privacy.DPO)
    wait_for(lambda: dpo.audit_checkpoint()["tree_size"] == 25, timeout=20)
    privacy.start_stream_feeder()

    def in_file() -> list[Checkpoint]:
        return checkpoints_from_lines(kept.read_bytes().splitlines()) if kept.exists() else []

    written = wait_for(lambda: (c := in_file()) and c[-1].tree_size == 25 and c, timeout=20)
    assert Checkpoint.from_dict(dpo.audit_checkpoint()) == written[-1]  # the one in the database, copied out
    key = decode_public_key(dpo.audit_public_key()["public_key"])
    for checkpoint in written:
        verify_checkpoint(checkpoint, key)
    assert sorted(c.tree_size for c in written) == sorted({c.tree_size for c in written})  # each once

    settings = load_audit_settings(load_settings("privacy"))
    records, checkpoints = io.StringIO(), io.StringIO()
    assert tail(privacy.amqp_uri, settings, "first", records, idle_timeout_s=1.0, checkpoints=checkpoints) == 25
    assert [json.loads(line)["seq"] for line in records.getvalue().splitlines()] == list(range(25))  # records only
    assert checkpoints_from_lines(checkpoints.getvalue().splitlines()) == written  # what an auditor keeps
    # nothing published twice: the position moved on
    with privacy.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT next_seq, checkpoints_published FROM audit_stream_position").one() == (
            25, 25)
