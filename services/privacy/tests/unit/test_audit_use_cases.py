"""Privacy's use cases on the fake unit of work and the in-memory audit store: no broker, no database.

Ingest (once, gap-free, checkpoints when due), every query (search, a subject's summary, checkpoints,
proofs, exports), every refusal, and the audit each query leaves as ``audit_query``. Proofs and
exports are checked with the domain's own verifiers, as an auditor would.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.audit import ACTIONS, OUTCOMES
from upgestao_kernel.errors import ServiceError
from upgestao_privacy.domain import merkle
from upgestao_privacy.domain.checkpoints import Checkpoint, decode_public_key, verify_checkpoint
from upgestao_privacy.domain.verification import verify_export
from upgestao_privacy.service_layer import ingest

from .conftest import ATTENDANT, DPO

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
S1 = "5e1f0c3a-9d2b-4c7e-8a6f-0b1c2d3e4f51"  # a subject id: a UUID
NOBODY = "00000000-0000-4000-8000-0000000000b0"  # a subject nobody touched


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def refused(call) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


def errors_of(exc: ServiceError) -> list[dict]:
    assert (exc.status, exc.slug) == (422, "validation-error")
    return exc.extensions["errors"]


def stored(body: dict) -> dict:
    """The record as the log keeps it (canonical times, sorted fields)."""
    return ingest.parse(body)


def public_key(fake_privacy) -> bytes:
    return decode_public_key(fake_privacy.queries().public_key()["public_key"])


# -- ingest -------------------------------------------------------------------------------------


def test_ingest_stores_each_record_once_with_gap_free_seqs(fake_privacy):
    records = [fake_privacy.record() for _ in range(5)]
    first = fake_privacy.ingest(records[:3])
    again = fake_privacy.ingest([records[1], records[3], records[3], records[4]])  # a redelivery, a repeat
    assert [a.seq for a in first.stored] == [0, 1, 2] and first.duplicates == 0
    assert [a.seq for a in again.stored] == [3, 4] and again.duplicates == 2
    rows = sorted(fake_privacy.store.rows("audit_records"), key=lambda r: r["seq"])
    assert [r["audit_id"] for r in rows] == [r["audit_id"] for r in records]
    assert [json.loads(r["leaf"])["seq"] for r in rows] == [0, 1, 2, 3, 4]
    assert again.stored[0].record == {**ingest.parse(records[3]), "seq": 3}
    nothing = fake_privacy.ingest(records)
    assert nothing.stored == [] and nothing.duplicates == 5 and nothing.checkpoint is None


def test_the_stored_tree_is_the_tree_of_the_leaves(fake_privacy):
    fake_privacy.ingest([fake_privacy.record() for _ in range(6)])
    checkpoint = fake_privacy.queries().checkpoint()
    leaves = [r["leaf"].encode() for r in sorted(fake_privacy.store.rows("audit_records"), key=lambda r: r["seq"])]
    assert unb64(checkpoint["root_hash"]) == merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves])


def test_a_malformed_record_is_refused_and_nothing_of_its_batch_is_stored(fake_privacy):
    bad = {**fake_privacy.record(), "outcome": "maybe"}
    with pytest.raises(ValueError, match="outcome"):
        fake_privacy.ingest([fake_privacy.record(), bad])
    assert fake_privacy.store.rows("audit_records") == []


def test_a_failed_transaction_leaves_the_log_as_it_was(fake_privacy):
    fake_privacy.ingest([fake_privacy.record()])
    with pytest.raises(RuntimeError), fake_privacy.transaction() as log:
        log.append([ingest.parse(fake_privacy.record())], T0)
        raise RuntimeError("the database went away before the commit")
    assert len(fake_privacy.store.rows("audit_records")) == 1
    assert [a.seq for a in fake_privacy.ingest([fake_privacy.record()]).stored] == [1]


def test_a_checkpoint_is_signed_when_due_and_by_the_timer_when_the_tree_grew(fake_privacy):
    key = public_key(fake_privacy)
    assert fake_privacy.ingest([fake_privacy.record() for _ in range(2)], checkpoint_every=3).checkpoint is None
    due = fake_privacy.ingest([fake_privacy.record() for _ in range(2)], checkpoint_every=3).checkpoint
    assert due is not None and due.tree_size == 4
    verify_checkpoint(due, key)
    assert ingest.sign_pending(fake_privacy.transaction, fake_privacy.signer) is None  # nothing arrived since
    fake_privacy.ingest([fake_privacy.record()], checkpoint_every=3)
    pending = ingest.sign_pending(fake_privacy.transaction, fake_privacy.signer)
    assert pending is not None and pending.tree_size == 5
    verify_checkpoint(pending, key)
    assert [r["tree_size"] for r in fake_privacy.store.rows("audit_checkpoints")] == [4, 5]


def test_the_timer_signs_the_empty_tree_once_and_the_next_checkpoint_counts_from_it(fake_privacy):
    assert ingest.sign_pending(fake_privacy.transaction, fake_privacy.signer).tree_size == 0
    assert ingest.sign_pending(fake_privacy.transaction, fake_privacy.signer) is None
    assert fake_privacy.ingest([fake_privacy.record()], checkpoint_every=2).checkpoint is None
    assert fake_privacy.ingest([fake_privacy.record()], checkpoint_every=2).checkpoint.tree_size == 2


# -- search -------------------------------------------------------------------------------------


def test_search_by_each_filter_newest_first_with_a_cursor(fake_privacy):
    subject, actor = str(uuid.uuid4()), str(uuid.uuid4())
    mine = [fake_privacy.record(subject_id=subject, actor_id=actor, action="read") for _ in range(5)]
    shared = fake_privacy.record(subject_id=subject, action="share", recipient="crm-1", fields=("email",))
    others = [fake_privacy.record(action="update", service="gateway", resource_type="customer") for _ in range(3)]
    denied = fake_privacy.record(subject_id=subject, outcome="denied", actor_id=actor)
    fake_privacy.ingest([*mine, shared, *others, denied])
    queries = fake_privacy.queries()

    page = queries.search({"subject_id": subject}, 3, None)
    assert [i["audit_id"] for i in page["items"]] == [denied["audit_id"], shared["audit_id"], mine[4]["audit_id"]]
    rest = queries.search({"subject_id": subject}, 3, page["next_cursor"])
    assert [i["audit_id"] for i in rest["items"]] == [r["audit_id"] for r in reversed(mine[1:4])]
    last = queries.search({"subject_id": subject}, 3, rest["next_cursor"])
    assert [i["audit_id"] for i in last["items"]] == [mine[0]["audit_id"]] and last["next_cursor"] is None

    def ids(filters: dict) -> set[str]:
        return {i["audit_id"] for i in queries.search(filters, 50, None)["items"]}

    assert ids({"actor_id": actor}) == {r["audit_id"] for r in (*mine, denied)}
    assert ids({"actor_id": actor, "outcome": "success"}) == {r["audit_id"] for r in mine}
    assert ids({"action": "update"}) == ids({"service": "gateway"}) == ids({"resource_type": "customer"}) == {
        r["audit_id"] for r in others}
    assert ids({"request_id": mine[2]["request_id"]}) == {mine[2]["audit_id"]}
    assert ids({"outcome": "denied"}) == {denied["audit_id"]}
    assert ids({"subject_id": subject, "action": "share", "service": "", "to": None}) == {shared["audit_id"]}
    assert queries.search({}, 50, None)["items"][0]["seq"] == 9
    assert queries.search({"subject_id": NOBODY}, 50, None) == {"items": [], "next_cursor": None}


def test_search_by_time_takes_from_inclusive_and_to_exclusive(fake_privacy):
    records = [fake_privacy.record(occurred_at=T0 + timedelta(minutes=n)) for n in range(5)]
    fake_privacy.ingest(records)
    queries = fake_privacy.queries()
    window = {"from": (T0 + timedelta(minutes=1)).isoformat(), "to": (T0 + timedelta(minutes=3)).isoformat()}
    found = queries.search(window, 50, None)["items"]
    assert [i["audit_id"] for i in found] == [records[2]["audit_id"], records[1]["audit_id"]]
    assert [i["seq"] for i in queries.search({"from": "2026-11-30T09:03:00-03:00"}, 50, None)["items"]] == [4, 3]


def test_search_reads_subject_and_actor_from_the_leaf_and_refuses_to_answer_over_edited_columns(fake_privacy):
    subject = str(uuid.uuid4())
    fake_privacy.ingest([fake_privacy.record(subject_id=subject) for _ in range(3)])
    rows = fake_privacy.store.tables["audit_records"]
    rows[1]["subject_id"] = "someone-else"  # an edit of the index column, around the tree
    exc = refused(lambda: fake_privacy.queries().search({"subject_id": subject}, 50, None))
    assert (exc.status, exc.slug) == (500, "audit-log-tampered")
    assert exc.extensions == {"tampered": [{"seq": 1, "columns": ["subject_id"]}]}
    assert refused(lambda: fake_privacy.queries().subject_summary(subject)).extensions == exc.extensions
    assert len(fake_privacy.query_audits(outcome="success", subject_id=subject)) == 2  # both asked, both audited


# -- a subject's summary ----------------------------------------------------------------------------


def test_subject_summary_groups_accesses_and_shares_and_counts_denials(fake_privacy):
    subject, actor = str(uuid.uuid4()), str(uuid.uuid4())
    reads = [fake_privacy.record(subject_id=subject, actor_id=actor, actor_role="admin", action="read",
                                 fields=("email",), occurred_at=T0 + timedelta(minutes=n)) for n in range(3)]
    phone = fake_privacy.record(subject_id=subject, actor_id=actor, actor_role="admin", action="read",
                                fields=("phone",), occurred_at=T0 + timedelta(minutes=5))
    share = fake_privacy.record(subject_id=subject, action="share", recipient="crm-1", service="integration-gateway",
                                fields=("email", "full_name"), occurred_at=T0 + timedelta(minutes=4))
    denied = fake_privacy.record(subject_id=subject, outcome="denied")
    fake_privacy.ingest([*reads, phone, share, denied, fake_privacy.record()])

    summary = fake_privacy.queries().subject_summary(subject)
    assert (summary["subject_id"], summary["total_records"], summary["denied_attempts"]) == (subject, 6, 1)
    [access] = summary["accesses"]
    assert access == {"actor_id": actor, "actor_role": "admin", "service": "identity", "resource_type": "user",
                      "action": "read", "purpose": "profile", "fields": ["email", "phone"], "count": 4,
                      "first_at": stored(reads[0])["occurred_at"], "last_at": stored(phone)["occurred_at"]}
    assert summary["shared_with"] == [{"recipient": "crm-1", "service": "integration-gateway",
                                       "fields": ["email", "full_name"], "count": 1,
                                       "first_at": stored(share)["occurred_at"],
                                       "last_at": stored(share)["occurred_at"],
                                       "name": None, "privacy_policy_url": None}]
    assert fake_privacy.queries().subject_summary(NOBODY)["total_records"] == 0


# -- checkpoints and proofs ------------------------------------------------------------------------


def test_the_checkpoint_query_signs_the_tree_when_it_grew_and_only_then(fake_privacy):
    fake_privacy.ingest([fake_privacy.record() for _ in range(3)])
    queries = fake_privacy.queries()
    checkpoint = queries.checkpoint()
    assert checkpoint["tree_size"] == 3
    verify_checkpoint(Checkpoint.from_dict(checkpoint), public_key(fake_privacy))
    assert queries.checkpoint() == checkpoint  # nothing new: the same one
    fake_privacy.ingest([fake_privacy.record()])
    assert queries.checkpoint()["tree_size"] == 4
    assert len(fake_privacy.store.rows("audit_checkpoints")) == 2
    assert queries.public_key()["key_id"] == fake_privacy.signer.key_id


def test_the_checkpoint_query_answers_the_checkpoint_an_ingest_signed_while_it_waited_for_the_lock(
        fake_privacy, monkeypatch):
    """The query reads the latest checkpoint (none) and the head (3 records), then takes the head's lock to sign;
    an ingest that signed the same tree in between leaves nothing to sign. The query answers that checkpoint
    (it used to answer an AttributeError: seen in CI, the audit stream's ingest signing beside the query)."""
    from upgestao_privacy.service_layer import audit_queries

    fake_privacy.ingest([fake_privacy.record() for _ in range(3)])
    real = audit_queries.checkpoint_if_due

    def after_an_ingest_signed(log, signer, now, **kwargs):
        ingest.sign_pending(fake_privacy.transaction, fake_privacy.signer, now)  # the other transaction's
        return real(log, signer, now, **kwargs)

    monkeypatch.setattr(audit_queries, "checkpoint_if_due", after_an_ingest_signed)
    checkpoint = fake_privacy.queries().checkpoint()
    assert checkpoint["tree_size"] == 3
    assert [r["tree_size"] for r in fake_privacy.store.rows("audit_checkpoints")] == [3]


def test_inclusion_and_consistency_proofs_verify_against_signed_roots(fake_privacy):
    fake_privacy.ingest([fake_privacy.record() for _ in range(7)])
    queries = fake_privacy.queries()
    small = Checkpoint.from_dict(queries.checkpoint())
    fake_privacy.ingest([fake_privacy.record() for _ in range(6)])
    large = Checkpoint.from_dict(queries.checkpoint())
    for seq in (0, 5, 6):
        proof = queries.inclusion_proof(seq, 7)
        assert (proof["seq"], proof["tree_size"]) == (seq, 7)
        merkle.verify_inclusion(unb64(proof["leaf_hash"]), seq, 7, [unb64(h) for h in proof["audit_path"]],
                                small.root_hash)
    leaf = fake_privacy.store.tables["audit_records"][12]["leaf"].encode()
    proof = queries.inclusion_proof(12, 13)
    assert unb64(proof["leaf_hash"]) == merkle.leaf_hash(leaf)
    merkle.verify_inclusion(merkle.leaf_hash(leaf), 12, 13, [unb64(h) for h in proof["audit_path"]], large.root_hash)
    consistency = queries.consistency_proof(7, 13)
    assert (consistency["first"], consistency["second"]) == (7, 13)
    merkle.verify_consistency(7, 13, small.root_hash, large.root_hash, [unb64(h) for h in consistency["proof"]])
    assert queries.consistency_proof(13, 13)["proof"] == []


def test_a_one_record_log_proves_its_leaf_with_an_empty_path(fake_privacy):
    fake_privacy.ingest([fake_privacy.record()])
    proof = fake_privacy.queries().inclusion_proof(0, 1)
    assert proof["audit_path"] == []
    assert unb64(proof["leaf_hash"]) == merkle.leaf_hash(fake_privacy.store.tables["audit_records"][0]["leaf"].encode())


def test_proofs_beyond_the_log_and_malformed_ones_are_refused_with_the_field_named(fake_privacy):
    fake_privacy.ingest([fake_privacy.record() for _ in range(4)])
    queries = fake_privacy.queries()
    assert errors_of(refused(lambda: queries.inclusion_proof(2, 9))) == [
        {"field": "tree_size", "message": "the log holds 4 records"}]
    assert errors_of(refused(lambda: queries.consistency_proof(2, 9))) == [
        {"field": "second", "message": "the log holds 4 records"}]
    assert errors_of(refused(lambda: queries.inclusion_proof(4, 4))) == [
        {"field": "seq", "message": "must be less than tree_size"}]
    assert errors_of(refused(lambda: queries.consistency_proof(3, 2))) == [
        {"field": "first", "message": "must not exceed second"}]
    assert errors_of(refused(lambda: queries.inclusion_proof(-1, 4))) == [
        {"field": "seq", "message": "must be an integer >= 0"}]
    assert errors_of(refused(lambda: queries.inclusion_proof(True, 4))) == [
        {"field": "seq", "message": "must be an integer >= 0"}]
    assert errors_of(refused(lambda: queries.consistency_proof(0, 0))) == [
        {"field": "second", "message": "must be an integer >= 1"}]


# -- export ---------------------------------------------------------------------------------------


def test_an_export_of_a_time_range_verifies_and_is_audited_once(fake_privacy):
    early = [fake_privacy.record(occurred_at=T0 + timedelta(minutes=n)) for n in range(4)]
    late = [fake_privacy.record(occurred_at=T0 + timedelta(hours=2, minutes=n)) for n in range(3)]
    fake_privacy.ingest(early[:2], checkpoint_every=2)  # checkpoints of 2 and 4 records
    fake_privacy.ingest(early[2:], checkpoint_every=2)
    fake_privacy.ingest(late)
    queries = fake_privacy.queries()
    start, end = T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()
    header = queries.export_start(start, end)
    assert header["format"] == "upgestao-audit-export/v1"
    # the checkpoint of 4 records covers the range: no new one is signed for it
    assert (header["first_seq"], header["end_seq"], header["tree_size"]) == (0, 4, 4)
    assert (header["from"], header["to"]) == (start, end)
    assert [c["tree_size"] for c in header["checkpoints"]] == [2, 4]
    lines = queries.export_records(0, 4)
    assert [line["seq"] for line in lines] == [0, 1, 2, 3]
    assert [line["record"]["audit_id"] for line in lines] == [r["audit_id"] for r in early]
    assert all(unb64(line["leaf_hash"]) == merkle.leaf_hash(fake_privacy.store.tables["audit_records"][line["seq"]]
                                                              ["leaf"].encode()) for line in lines)
    report = verify_export([json.dumps(header), *(json.dumps(line) for line in lines)], public_key(fake_privacy))
    assert report.ok, report.summary()
    assert [a["fields"] for a in fake_privacy.query_audits()] == [["from", "to"]]  # the pages are not audited again


def test_an_export_of_everything_and_of_an_empty_range(fake_privacy):
    fake_privacy.ingest([fake_privacy.record(occurred_at=T0) for _ in range(5)])
    queries = fake_privacy.queries()
    whole = queries.export_start()
    assert (whole["first_seq"], whole["end_seq"], whole["tree_size"]) == (0, 5, 5)
    lines = [json.dumps(whole), *(json.dumps(line) for line in queries.export_records(0, 5))]
    assert verify_export(lines, public_key(fake_privacy)).ok
    empty = queries.export_start((T0 + timedelta(days=1)).isoformat())
    assert (empty["first_seq"], empty["end_seq"], empty["range_proof"]) == (5, 5, [])
    assert queries.export_records(5, 5) == []


def test_an_edited_column_is_exported_as_filed_so_the_verifier_names_the_record(fake_privacy):
    fake_privacy.ingest([fake_privacy.record() for _ in range(3)])
    fake_privacy.store.tables["audit_records"][2]["actor_id"] = "someone-else"
    queries = fake_privacy.queries()
    header = queries.export_start()
    lines = queries.export_records(0, 3)
    assert lines[2]["record"]["actor_id"] == "someone-else"
    report = verify_export([json.dumps(header), *(json.dumps(line) for line in lines)], public_key(fake_privacy))
    assert not report.ok


def test_malformed_export_requests_are_refused(fake_privacy):
    queries = fake_privacy.queries()
    exc = refused(lambda: queries.export_start("2026-11-30T12:00:00+00:00", "2026-11-29T12:00:00+00:00"))
    assert errors_of(exc) == [{"field": "from", "message": "must not be after to"}]
    assert errors_of(refused(lambda: queries.export_start("yesterday"))) == [
        {"field": "from", "message": "must be an ISO-8601 date-time with a time zone"}]
    assert errors_of(refused(lambda: queries.export_start(None, "2026-11-30T12:00:00"))) == [
        {"field": "to", "message": "must be an ISO-8601 date-time with a time zone"}]
    assert errors_of(refused(lambda: queries.export_records(0, 1001))) == [
        {"field": "end", "message": "must be within [start, start + 1000]"}]
    assert errors_of(refused(lambda: queries.export_records(5, 4))) == [
        {"field": "end", "message": "must be within [start, start + 1000]"}]
    assert fake_privacy.query_audits() == []  # refused before anything was read


# -- refusals and the audit of each query ---------------------------------------------------------------


@pytest.mark.parametrize(("filters", "limit", "cursor", "errors"), [
    ({"colour": "red"}, 50, None, [{"field": "colour", "message": "is not a filter of the audit log"}]),
    ({"action": "dance"}, 50, None, [{"field": "action", "message": f"must be one of {', '.join(ACTIONS)}"}]),
    ({"outcome": "maybe"}, 50, None, [{"field": "outcome", "message": f"must be one of {', '.join(OUTCOMES)}"}]),
    ({"subject_id": "x" * 129}, 50, None,
     [{"field": "subject_id", "message": "must be a UUID (lowercase, 8-4-4-4-12 hexadecimal digits)"}]),
    ({"subject_id": "Maria da Silva"}, 50, None,
     [{"field": "subject_id", "message": "must be a UUID (lowercase, 8-4-4-4-12 hexadecimal digits)"}]),
    ({"actor_id": 7}, 50, None,
     [{"field": "actor_id", "message": "must be a non-empty string of at most 128 characters"}]),
    ({"from": "2026-11-30"}, 50, None,
     [{"field": "from", "message": "must be an ISO-8601 date-time with a time zone"}]),
    ({"from": "2026-11-30T12:00:00Z", "to": "2026-11-30T11:00:00Z"}, 50, None,
     [{"field": "from", "message": "must not be after to"}]),
    ({}, 0, None, [{"field": "limit", "message": "must be between 1 and 500"}]),
    ({}, 501, None, [{"field": "limit", "message": "must be between 1 and 500"}]),
    ({}, True, None, [{"field": "limit", "message": "must be between 1 and 500"}]),
    ({}, 50, "not-a-cursor", [{"field": "cursor", "message": "is not a cursor this API returned"}]),
    ({}, 50, base64.urlsafe_b64encode(b'{"before": -1}').decode(),
     [{"field": "cursor", "message": "is not a cursor this API returned"}]),
])
def test_bad_search_arguments_are_refused_with_the_exact_errors(fake_privacy, filters, limit, cursor, errors):
    exc = refused(lambda: fake_privacy.queries().search(filters, limit, cursor))
    assert errors_of(exc) == errors and exc.detail == "The audit query is invalid."
    assert fake_privacy.query_audits() == []


def test_a_subject_id_must_be_a_uuid_and_a_refused_one_is_stored_nowhere(fake_privacy):
    """Defence in depth behind the gateway's 422: an RPC caller naming a subject by anything but its id
    (a name, an e-mail, a path's text) is refused before the query is audited, so the text is stored
    in no record, for the caller with ``audit.read`` and for the one without."""
    typed = ("maria@example.com", "Maria da Silva", "", "x" * 65, None, 7, S1.upper(), S1 + "\n", f" {S1}")
    for bad in typed:
        for caller in (DPO, ATTENDANT):
            queries = fake_privacy.queries(caller)
            calls = [lambda q=queries, b=bad: q.subject_summary(b)]
            if bad not in ("", None):  # (an empty filter is no filter)
                calls.append(lambda q=queries, b=bad: q.search({"subject_id": b}, 50, None))
            for call in calls:
                assert errors_of(refused(call)) == [
                    {"field": "subject_id", "message": "must be a UUID (lowercase, 8-4-4-4-12 hexadecimal digits)"}]
    assert fake_privacy.query_audits() == [] and fake_privacy.query_audits(outcome="denied") == []
    assert fake_privacy.queries().subject_summary(S1)["total_records"] == 0


QUERIES = [
    ("search", lambda q: q.search({"subject_id": S1, "action": "read"}), S1, ["action", "subject_id"]),
    ("subject_summary", lambda q: q.subject_summary(S1), S1, ["subject_id"]),
    ("checkpoint", lambda q: q.checkpoint(), None, []),
    ("inclusion_proof", lambda q: q.inclusion_proof(0, 1), None, ["seq", "tree_size"]),
    ("consistency_proof", lambda q: q.consistency_proof(0, 1), None, ["first", "second"]),
    ("export_start", lambda q: q.export_start("2026-11-30T00:00:00+00:00"), None, ["from"]),
]


@pytest.mark.parametrize(("name", "call", "subject", "fields"), QUERIES, ids=[q[0] for q in QUERIES])
def test_each_query_is_audited_as_audit_query_in_its_own_unit(fake_privacy, name, call, subject, fields):
    fake_privacy.ingest([fake_privacy.record(subject_id=S1)])
    call(fake_privacy.queries())
    [audit] = fake_privacy.query_audits()
    assert {k: audit[k] for k in ("service", "action", "resource_type", "resource_id", "subject_id", "fields",
                                  "purpose", "actor_id", "actor_role", "request_id", "outcome")} == {
        "service": "privacy", "action": "audit_query", "resource_type": "audit_log", "resource_id": None,
        "subject_id": subject, "fields": fields, "purpose": "compliance", "actor_id": DPO.actor_id,
        "actor_role": "dpo", "request_id": DPO.request_id, "outcome": "success"}


@pytest.mark.parametrize(("name", "call", "subject", "fields"), QUERIES, ids=[q[0] for q in QUERIES])
def test_a_caller_without_audit_read_is_refused_and_the_refusal_audited(fake_privacy, name, call, subject, fields):
    fake_privacy.ingest([fake_privacy.record(subject_id=S1)])
    exc = refused(lambda: call(fake_privacy.queries(ATTENDANT)))
    assert (exc.status, exc.slug, exc.extensions) == (403, "forbidden", {"permission": "audit.read"})
    [denial] = fake_privacy.query_audits()
    assert (denial["outcome"], denial["purpose"], denial["subject_id"], denial["fields"], denial["actor_id"]) == (
        "denied", "authorization", subject, fields, ATTENDANT.actor_id)
    assert len(fake_privacy.store.rows("audit_checkpoints")) == 0  # nothing done on a refused unit


def test_export_pages_need_the_permission_too_and_only_the_system_acts_without_a_role(fake_privacy):
    from upgestao_kernel.context import RequestContext, system_context

    fake_privacy.ingest([fake_privacy.record()])
    assert refused(lambda: fake_privacy.queries(ATTENDANT).export_records(0, 1)).status == 403
    anonymous = RequestContext(request_id="r-anon", actor_role="dpo")
    assert refused(lambda: fake_privacy.queries(anonymous).search({})).status == 403
    assert [d["outcome"] for d in fake_privacy.query_audits()] == ["denied", "denied"]
    assert fake_privacy.queries(system_context()).search({})["items"][0]["seq"] == 0
    assert fake_privacy.query_audits(outcome="success")[0]["actor_id"] == "system"
