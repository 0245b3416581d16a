"""Service tests: compliance queries over RPC, their own audit, and the audit stream."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.config import load_settings
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing import wait_for
from upgestao_privacy.adapters.audit_stream import tail
from upgestao_privacy.domain.checkpoints import decode_public_key
from upgestao_privacy.domain.verification import verify_export
from upgestao_privacy.settings import load_audit_settings


def test_search_filters_newest_first_with_a_cursor(privacy):
    subject, actor = str(uuid.uuid4()), str(uuid.uuid4())
    mine = [privacy.record(subject_id=subject, actor_id=actor, action="read") for _ in range(5)]
    shared = privacy.record(subject_id=subject, action="share", recipient="crm-1", fields=("email",))
    others = [privacy.record(action="update") for _ in range(3)]
    denied = privacy.record(subject_id=subject, outcome="denied", actor_id=actor)
    privacy.publish([*mine, shared, *others, denied])
    privacy.wait_count(10)
    dpo = privacy.caller(privacy.DPO)

    page = dpo.audit_search({"subject_id": subject}, 3, None)
    assert [i["audit_id"] for i in page["items"]] == [denied["audit_id"], shared["audit_id"], mine[4]["audit_id"]]
    assert [i["seq"] for i in page["items"]] == sorted((i["seq"] for i in page["items"]), reverse=True)
    rest = dpo.audit_search({"subject_id": subject}, 3, page["next_cursor"])
    assert [i["audit_id"] for i in rest["items"]] == [r["audit_id"] for r in reversed(mine[1:4])]
    last = dpo.audit_search({"subject_id": subject}, 3, rest["next_cursor"])
    assert [i["audit_id"] for i in last["items"]] == [mine[0]["audit_id"]] and last["next_cursor"] is None

    assert len(dpo.audit_search({"actor_id": actor, "outcome": "success"}, 50, None)["items"]) == 5
    assert len(dpo.audit_search({"action": "update"}, 50, None)["items"]) == 3
    assert dpo.audit_search({"request_id": mine[2]["request_id"]}, 50, None)["items"][0]["audit_id"] == \
        mine[2]["audit_id"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert dpo.audit_search({"from": future}, 50, None)["items"] == []
    item = dpo.audit_search({"action": "share"}, 50, None)["items"][0]
    assert item["recipient"] == "crm-1" and item["fields"] == ["email"]

    for bad, field in (({"action": "peek"}, "action"), ({"outcome": "maybe"}, "outcome"),
                       ({"colour": "red"}, "colour"), ({"from": "yesterday"}, "from"),
                       ({"from": future, "to": datetime.now(UTC).isoformat()}, "from")):
        with pytest.raises(ServiceError) as err:
            dpo.audit_search(bad, 50, None)
        assert err.value.status == 422 and err.value.extensions["errors"][0]["field"] == field
    with pytest.raises(ServiceError):
        dpo.audit_search({}, 50, "not-a-cursor")


def test_the_summary_says_who_saw_what_and_with_whom_it_was_shared(privacy):
    subject, admin = str(uuid.uuid4()), str(uuid.uuid4())
    privacy.publish([
        privacy.record(subject_id=subject, actor_id=admin, fields=("email",), purpose="support"),
        privacy.record(subject_id=subject, actor_id=admin, fields=("phone",), purpose="support"),
        privacy.record(subject_id=subject, action="share", recipient="integration:crm", fields=("email", "full_name"),
                       service="integrations", purpose="crm sync"),
        privacy.record(subject_id=subject, actor_id=str(uuid.uuid4()), outcome="denied", fields=()),
        privacy.record(),  # someone else's
    ])
    privacy.wait_count(5)
    summary = privacy.caller(privacy.DPO).audit_subject_summary(subject)
    assert summary["total_records"] == 4 and summary["denied_attempts"] == 1
    (access,) = summary["accesses"]
    assert (access["actor_id"], access["purpose"], access["fields"], access["count"]) == \
        (admin, "support", ["email", "phone"], 2)
    (share,) = summary["shared_with"]
    assert (share["recipient"], share["fields"]) == ("integration:crm", ["email", "full_name"])


def test_queries_need_audit_read_and_are_themselves_audited(privacy):
    privacy.start_relay()  # privacy's own audit records travel through its outbox like anyone's
    attendant = privacy.caller(privacy.ATTENDANT, request_id="req-attendant-1")
    with pytest.raises(ServiceError) as err:
        attendant.audit_search({}, 10, None)
    assert err.value.status == 403
    with pytest.raises(ServiceError):
        privacy.caller({}, request_id="req-anonymous-1").audit_checkpoint()
    subject = str(uuid.uuid4())
    privacy.caller(privacy.DPO, request_id="req-dpo-1").audit_search({"subject_id": subject}, 10, None)

    dpo = privacy.caller(privacy.DPO)

    def found(request_id: str):
        items = dpo.audit_search({"request_id": request_id}, 10, None)["items"]
        return items[0] if items else None

    refused = wait_for(lambda: found("req-attendant-1"))
    assert (refused["action"], refused["outcome"], refused["actor_id"]) == \
        ("audit_query", "denied", privacy.ATTENDANT["actor_id"])
    assert wait_for(lambda: found("req-anonymous-1"))["outcome"] == "denied"
    query = wait_for(lambda: found("req-dpo-1"))
    assert (query["action"], query["outcome"], query["actor_id"], query["subject_id"], query["fields"]) == \
        ("audit_query", "success", privacy.DPO["actor_id"], subject, ["subject_id"])
    assert query["service"] == "privacy" and query["resource_type"] == "audit_log"


def test_an_export_of_a_time_range_verifies_against_its_checkpoint(privacy):
    early = datetime.now(UTC) - timedelta(hours=3)
    privacy.publish([privacy.record(occurred_at=early + timedelta(minutes=i)) for i in range(10)])
    privacy.publish([privacy.record() for _ in range(10)])
    privacy.wait_count(20)
    dpo = privacy.caller(privacy.DPO)
    header = dpo.audit_export_start((early - timedelta(seconds=1)).isoformat(),
                                    (early + timedelta(minutes=30)).isoformat())
    assert (header["first_seq"], header["end_seq"], header["tree_size"]) == (0, 10, 20)
    lines = [json.dumps(header), *(json.dumps(line) for line in dpo.audit_export_records(0, 10))]
    report = verify_export(lines, decode_public_key(dpo.audit_public_key()["public_key"]))
    assert report.ok, report.summary()


def test_audit_tail_replays_the_stream_from_first_from_an_offset_and_from_a_time(privacy, monkeypatch):
    monkeypatch.setenv("PRIVACY_AUDIT_STREAM_RECORDS_PER_MESSAGE", "10")  # messages: seqs 0-9, 10-19, 20-24
    records = [privacy.record() for _ in range(25)]
    privacy.publish(records)
    privacy.wait_count(25)
    privacy.start_stream_feeder()
    settings = load_audit_settings(load_settings("privacy"))

    def replay(offset) -> list[dict]:
        out = io.StringIO()
        tail(privacy.amqp_uri, settings, offset, out, idle_timeout_s=1.0)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    everything = wait_for(lambda: (r := replay("first")) and len(r) >= 25 and r, timeout=20)
    assert [r["seq"] for r in everything] == list(range(25))
    assert [r["audit_id"] for r in everything] == [r["audit_id"] for r in records]
    assert everything == privacy.stored()
    assert [r["seq"] for r in replay(2)] == [20, 21, 22, 23, 24]  # the third message
    assert [r["seq"] for r in replay(datetime.now(UTC) + timedelta(minutes=5))] == []
    assert len(replay(datetime.now(UTC) - timedelta(minutes=5))) == 25
