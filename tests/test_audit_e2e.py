"""The audit log over HTTP (D3, R4.2): what people do with personal data shows up
in ``GET /v1/audit`` for the dpo, and only for the dpo; the dpo's own queries
are in it too; a subject's summary, pagination, precise 422s, and the JSON
Lines export with its checkpoint.

Audit records reach the privacy service's log asynchronously (outbox relay,
RabbitMQ, ingest): every check polls with a deadline (``wait_for_audit``).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from e2e_api import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Api,
    audit_search,
    create_user,
    new_request_id,
    wait_for_audit,
)
from e2e_identity import create_dpo

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
SUBJECT_READS = 5
ADMIN_READ = "staff profile shown to an authorised user"  # identity's purpose of a read by someone else


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def people(platform, api):
    """An admin, a dpo and an attendant, each logged in once."""
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    dpo_user, dpo_tokens = create_dpo(platform, api, admin)  # no admin may make a dpo (issue 11): the system does
    attendant_user, attendant_tokens = api.create_staff(admin, "attendant")
    return SimpleNamespace(
        admin=admin, admin_user=api.get("/v1/me", admin).json(),
        dpo=dpo_tokens["access_token"], dpo_user=dpo_user,
        attendant=attendant_tokens["access_token"], attendant_user=attendant_user,
    )


@pytest.fixture(scope="module")
def subject(api, people):
    """A user whose profile the admin read SUBJECT_READS times, every read in the log (the creation
    is one more read: identity shows the creator the new profile)."""
    user = create_user(api, people.admin, "attendant")
    rids = [new_request_id(f"admin-read-{n}") for n in range(SUBJECT_READS)]
    for rid in rids:
        response = api.get(f"/v1/users/{user['id']}", people.admin, headers={"X-Request-ID": rid})
        assert response.status_code == 200, response.text
    for rid in rids:
        wait_for_audit(api, people.dpo, {"action": "read", "subject_id": user["id"]}, what="the admin's read",
                       request_id=rid)
    return user


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["request_id"] == response.headers["X-Request-ID"]
    return body


# -- (a) what a user does is in the log -------------------------------------------------------


def test_a_login_and_a_profile_read_are_in_the_log_with_actor_subject_fields_and_request_id(api, people):
    user = people.attendant_user
    login_rid, me_rid = new_request_id("login"), new_request_id("me")
    login = api.post("/v1/auth/login", json={"email": user["email"], "password": PASSWORD},
                     headers={"X-Request-ID": login_rid})
    assert login.status_code == 200, login.text
    me = api.get("/v1/me", login.json()["access_token"], headers={"X-Request-ID": me_rid})
    assert me.status_code == 200 and me.json()["id"] == user["id"]

    logged_in = wait_for_audit(api, people.dpo, {"action": "login", "outcome": "success"}, what="the login",
                               request_id=login_rid)
    assert logged_in["service"] == "identity" and logged_in["resource_type"] == "session"
    assert logged_in["subject_id"] == user["id"]
    assert logged_in["actor_id"] is None  # nobody is authenticated while logging in
    assert logged_in["request_id"] == login_rid and logged_in["fields"] == []

    read = wait_for_audit(api, people.dpo, {"action": "read"}, what="GET /v1/me", actor_id=user["id"],
                          request_id=me_rid)
    assert (read["service"], read["resource_type"], read["outcome"]) == ("identity", "user", "success")
    assert read["actor_id"] == read["subject_id"] == read["resource_id"] == user["id"]
    assert read["actor_role"] == "attendant" and read["purpose"] == "own profile"
    assert {"full_name", "email", "phone", "birth_date", "address"} <= set(read["fields"])
    assert read["request_id"] == me_rid and read["source_ip"]
    assert isinstance(read["seq"], int) and read["seq"] >= 0 and read["audit_id"]
    assert datetime.fromisoformat(read["occurred_at"]).tzinfo is not None
    assert read["recipient"] is None
    # the record names fields, never values
    assert user["email"] not in json.dumps(read) and user["full_name"] not in json.dumps(read)


# -- (b) only the dpo reads the log, and a refusal is itself audited ---------------------------


@pytest.mark.parametrize("who", ["attendant", "admin"])
def test_anyone_but_the_dpo_is_refused_and_the_refusal_is_in_the_log(api, people, who):
    token = getattr(people, who)
    actor_id = people.attendant_user["id"] if who == "attendant" else people.admin_user["id"]
    rid = new_request_id(f"audit-refused-{who}")
    body = assert_problem(api.get("/v1/audit", token, params={"limit": 5}, headers={"X-Request-ID": rid}), 403)
    assert body["permission"] == "audit.read" and "items" not in body

    denied = wait_for_audit(api, people.dpo, {"outcome": "denied"}, what=f"the {who}'s refused query",
                            request_id=rid)
    assert denied["actor_id"] == actor_id and denied["actor_role"] == who and denied["request_id"] == rid
    assert (denied["service"], denied["resource_type"], denied["purpose"]) == ("gateway", "audit", "authorization")


# -- (c) the dpo's queries are audited -----------------------------------------------------------


def test_the_dpos_own_query_is_an_audit_query_record(api, people):
    rid = new_request_id("dpo-query")
    looked_at = people.attendant_user["id"]
    response = api.get("/v1/audit", people.dpo, params={"subject_id": looked_at, "limit": 1},
                       headers={"X-Request-ID": rid})
    assert response.status_code == 200, response.text

    query = wait_for_audit(api, people.dpo, {"action": "audit_query"}, what="the dpo's query", request_id=rid)
    assert (query["service"], query["outcome"]) == ("privacy", "success")
    assert query["actor_id"] == people.dpo_user["id"] and query["actor_role"] == "dpo"
    assert query["subject_id"] == looked_at and "subject_id" in query["fields"]


# -- (d) a subject's summary -----------------------------------------------------------------------


def test_a_subjects_summary_lists_who_read_the_profile_with_fields_and_purpose(api, people, subject):
    response = api.get(f"/v1/audit/subjects/{subject['id']}/summary", people.dpo)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["subject_id"] == subject["id"]
    assert summary["total_records"] >= SUBJECT_READS + 1  # the reads and the creation
    assert summary["shared_with"] == [] and summary["denied_attempts"] == 0
    reads = [a for a in summary["accesses"] if a["actor_id"] == people.admin_user["id"] and a["action"] == "read"
             and a["purpose"] == ADMIN_READ]
    assert len(reads) == 1, summary["accesses"]
    [read] = reads
    assert (read["actor_role"], read["service"], read["resource_type"]) == ("admin", "identity", "user")
    assert {"full_name", "email", "phone", "birth_date", "address"} <= set(read["fields"])
    assert read["count"] == SUBJECT_READS
    assert datetime.fromisoformat(read["first_at"]) <= datetime.fromisoformat(read["last_at"])
    assert any(a["action"] == "create" for a in summary["accesses"])
    assert subject["email"] not in response.text


def test_a_subject_nobody_touched_has_an_empty_summary(api, people):
    nobody = "00000000-0000-4000-8000-0000000b0d1e"  # a subject is a UUID (anything else: 422, nothing stored)
    response = api.get(f"/v1/audit/subjects/{nobody}/summary", people.dpo)
    assert response.status_code == 200, response.text
    assert response.json()["total_records"] == 0 and response.json()["accesses"] == []


# -- (e) pagination -----------------------------------------------------------------------------------


def test_pages_go_back_in_time_without_overlap(api, people, subject):
    where = {"subject_id": subject["id"], "action": "read"}
    everything = audit_search(api, people.dpo, limit=500, **where)
    assert everything["next_cursor"] is None
    all_seqs = [r["seq"] for r in everything["items"]]
    assert len(all_seqs) >= SUBJECT_READS and all_seqs == sorted(all_seqs, reverse=True)

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **where, **({"cursor": cursor} if cursor else {})}
        page = audit_search(api, people.dpo, **params)
        pages.append([r["seq"] for r in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10
    assert [len(p) for p in pages] == [2] * (len(all_seqs) // 2) + ([1] if len(all_seqs) % 2 else [])
    assert all(max(newer) > max(older) for newer, older in zip(pages, pages[1:], strict=False))
    assert [seq for p in pages for seq in p] == all_seqs  # nothing missed, nothing twice


def test_a_cursor_that_was_not_given_is_422(api, people):
    body = assert_problem(api.get("/v1/audit", people.dpo, params={"cursor": "not-a-cursor"}), 422)
    assert [e["field"] for e in body["errors"]] == ["cursor"]


def test_filters_combine(api, people, subject):
    items = audit_search(api, people.dpo, subject_id=subject["id"], actor_id=people.admin_user["id"],
                         service="identity", resource_type="user", outcome="success", limit=500)["items"]
    assert {r["action"] for r in items} >= {"create", "read"}
    assert all(r["subject_id"] == subject["id"] and r["actor_id"] == people.admin_user["id"] for r in items)
    now = datetime.now(UTC)
    later = audit_search(api, people.dpo, subject_id=subject["id"], **{"from": (now + timedelta(hours=1)).isoformat()})
    assert later["items"] == []
    reads = audit_search(api, people.dpo, subject_id=subject["id"], action="read")["items"]
    window = audit_search(api, people.dpo, subject_id=subject["id"], action="read",
                          **{"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=5))
                             .isoformat()})
    assert window["items"] == reads and len(reads) >= SUBJECT_READS
    oldest = reads[-1]["occurred_at"]
    before = audit_search(api, people.dpo, subject_id=subject["id"], to=oldest)["items"]
    assert all(datetime.fromisoformat(r["occurred_at"]) < datetime.fromisoformat(oldest) for r in before)
    assert reads[-1]["audit_id"] not in {r["audit_id"] for r in before}  # `to` is exclusive


# -- (f) precise 422s ------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, field", [
    ({"action": "nope"}, "action"),
    ({"outcome": "maybe"}, "outcome"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "from"),
    ({"from": "last tuesday"}, "from"),
    ({"to": "2025-03-01T00:00:00"}, "to"),  # no offset
    ({"colour": "blue"}, "colour"),
])
def test_a_bad_query_parameter_is_422_naming_it(api, people, params, field):
    body = assert_problem(api.get("/v1/audit", people.dpo, params=params), 422)
    assert body["type"].endswith("/validation-error")
    assert [e["field"] for e in body["errors"]] == [field], body


@pytest.mark.parametrize("path, params, field", [
    ("/v1/audit/proof/inclusion", {"seq": "1.5", "tree_size": "3"}, "seq"),
    ("/v1/audit/proof/inclusion", {"seq": "3", "tree_size": "3"}, "seq"),
    ("/v1/audit/proof/inclusion", {"seq": "0"}, "tree_size"),
    ("/v1/audit/proof/consistency", {"first": "4", "second": "2"}, "first"),
    ("/v1/audit/proof/consistency", {"first": "0", "second": "x"}, "second"),
])
def test_bad_proof_parameters_are_422_naming_them(api, people, path, params, field):
    body = assert_problem(api.get(path, people.dpo, params=params), 422)
    assert [e["field"] for e in body["errors"]] == [field], body


def test_a_proof_beyond_the_log_is_422_from_privacy(api, people):
    size = api.get("/v1/audit/checkpoint", people.dpo).json()["tree_size"]
    body = assert_problem(api.get("/v1/audit/proof/inclusion", people.dpo,
                                  params={"seq": 0, "tree_size": size + 10**9}), 422)
    assert [e["field"] for e in body["errors"]] == ["tree_size"], body


# -- (g) the export, checkpoint and proofs -----------------------------------------------------------------


def test_the_export_streams_json_lines_a_header_then_every_record_in_seq_order(api, people, subject):
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    response = api.get("/v1/audit/export", people.dpo, params={"from": since}, stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Cache-Control"] == "no-store"
    raw = response.content
    assert raw.endswith(b"\n") and b"\n\n" not in raw
    lines = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    header, records = lines[0], lines[1:]

    assert header["format"] and datetime.fromisoformat(header["from"]) == datetime.fromisoformat(since)
    checkpoint = header["checkpoint"]
    assert {"origin", "tree_size", "root_hash", "signed_at", "key_id", "signature"} <= set(checkpoint)
    assert header["tree_size"] == checkpoint["tree_size"] >= header["end_seq"] > header["first_seq"] >= 0
    assert [r["seq"] for r in records] == list(range(header["first_seq"], header["end_seq"]))
    for line in records:
        assert line["record"]["seq"] == line["seq"] and len(base64.b64decode(line["leaf_hash"])) == 32
    exported = {line["record"]["audit_id"] for line in records}
    reads = audit_search(api, people.dpo, subject_id=subject["id"], action="read")["items"]
    assert {r["audit_id"] for r in reads} <= exported

    key = api.get("/v1/audit/public-key", people.dpo).json()
    assert key["algorithm"] == "Ed25519" and key["key_id"] == checkpoint["key_id"]


def test_a_record_is_proven_in_the_signed_tree(api, people, subject):
    checkpoint = api.get("/v1/audit/checkpoint", people.dpo)
    assert checkpoint.status_code == 200, checkpoint.text
    size = checkpoint.json()["tree_size"]
    record = audit_search(api, people.dpo, subject_id=subject["id"], action="read", limit=1)["items"][0]
    assert record["seq"] < size
    proof = api.get("/v1/audit/proof/inclusion", people.dpo, params={"seq": record["seq"], "tree_size": size})
    assert proof.status_code == 200, proof.text
    body = proof.json()
    assert (body["seq"], body["tree_size"]) == (record["seq"], size)
    assert all(len(base64.b64decode(h)) == 32 for h in body["audit_path"])
    consistency = api.get("/v1/audit/proof/consistency", people.dpo, params={"first": 1, "second": size})
    assert consistency.status_code == 200, consistency.text
    assert consistency.json()["first"] == 1 and consistency.json()["second"] == size


def test_the_auditors_verifier_accepts_the_live_log_through_the_gateway(platform, api, people, subject):
    """privacy's ``audit verify --url``: the export, sampled inclusion proofs, and the latest checkpoint's
    consistency, all fetched through these routes, check out against the public key."""
    verify_command = pytest.importorskip("upgestao_privacy.verify_command")
    checkpoints = pytest.importorskip("upgestao_privacy.domain.checkpoints")
    public_key = api.get("/v1/audit/public-key", people.dpo).json()["public_key"]
    report = verify_command.verify_api(platform.url, people.dpo, checkpoints.decode_public_key(public_key),
                                       samples=8)
    assert report.ok, report.summary()
