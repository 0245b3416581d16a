"""Data subjects' rights on the running service (RabbitMQ, PostgreSQL, the migrations): the RPCs answer
privacy's broker user alone, an erasure requested by privacy's event is done and confirmed, and after a
deletion identity's event log, replayed, holds nothing readable about the person while another is intact."""

from __future__ import annotations

import base64
import io
import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from kombu import Connection
from PIL import Image
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing import service_amqp_uri, wait_for
from upgestao_kernel.topology import events_exchange

ERASURE_REQUESTED = "privacy.erasure_requested.v1"
ERASED = "identity.subject_erased.v1"
CIPHERTEXT = "v1:"


def error_of(call, *args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(*args)
    return refused.value


def publish_erasure(amqp_uri: str, subject_id: str, mode: str, request_id: str) -> str:
    """``privacy.erasure_requested.v1`` as privacy's relay publishes it: on ``privacy.events``, from privacy's own
    broker user (the only one RabbitMQ lets write there, and the only sender identity's handler accepts)."""
    event_id = str(uuid.uuid4())
    envelope = {"event_id": event_id, "stream_id": f"request-{request_id}", "version": 2,
                "type": ERASURE_REQUESTED, "occurred_at": datetime.now(UTC).isoformat(),
                "actor": {"id": "system", "role": "system"}, "correlation_id": None, "causation_id": None,
                "data": {"request_id": request_id, "subject_id": subject_id, "mode": mode}}
    with Connection(service_amqp_uri(amqp_uri, "privacy")) as conn:
        conn.Producer().publish(envelope, exchange=events_exchange("privacy"), routing_key=ERASURE_REQUESTED,
                                message_id=event_id, serializer="json", delivery_mode=2)
    return event_id


def confirmations(identity, request_id: str) -> list[dict]:
    return [b["data"] for b in identity.published(ERASED) if b["data"]["request_id"] == request_id]


def png_b64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def vault_of(identity):
    """The service's own vault (its keys, from the environment the container read them from)."""
    import os

    from upgestao_kernel.config import load_settings
    from upgestao_kernel.vault import Vault, load_keys

    settings = load_settings("identity", {**os.environ, "IDENTITY_DATABASE_URL": identity.database_url})
    return Vault(*load_keys(settings, os.environ))


def test_the_data_subject_methods_answer_privacy_alone(identity):
    """An attacker holding another service's broker user (the gateway's, messaging's, the notifier's) or a
    staff token (even the dpo's) cannot export, erase, address, identify, correct or enumerate anyone."""
    ana = identity.add_user(1)
    dpo = identity.add_user(2)
    identity.assign_role(dpo["id"], "dpo")
    calls = [("export_subject", (ana["id"],)), ("erase_subject", (ana["id"], "deletion")),
             ("contacts", ([ana["id"]],)), ("find_subject", (ana["email"],)),
             ("apply_correction", (ana["id"], {"job_title": "Diretora"}, "c-1")),
             ("subject_ids", ({"kind": "every_user"},))]
    callers = [identity.as_service("gateway"), identity.as_service("messaging"),
               identity.as_service("notifier", dpo["id"], "dpo"), identity.caller(dpo["id"], "dpo"),
               identity.admin()]
    before = len(identity.audit(outcome="denied", resource_type="data_subject"))
    for caller in callers:
        for method, args in calls:
            problem = error_of(getattr(caller, method), *args)
            assert (problem.status, problem.slug) == (403, "forbidden"), (method, problem)
    denied = identity.audit(outcome="denied", resource_type="data_subject")
    assert len(denied) - before == len(callers) * len(calls)
    assert identity.published(ERASED) == []
    assert identity.admin().get_user(ana["id"])["job_title"] == "Atendente"  # nothing changed
    # privacy's own broker user, for a reviewer: answered
    privacy = identity.as_service("privacy", dpo["id"], "dpo")
    assert privacy.find_subject(ana["email"]) == {"subject_id": ana["id"], "kind": "user"}
    done = privacy.apply_correction(ana["id"], {"job_title": "Diretora"}, "c-1")
    assert done["changed"] == ["job_title"]
    corrected = identity.audit(action="update", purpose="correction c-1", subject_id=ana["id"])
    assert corrected and {a["actor_id"] for a in corrected} == {dpo["id"]}


def test_an_erasure_requested_by_privacy_is_done_confirmed_and_replay_proof(identity, amqp_uri):
    """Deletion of user A and of customer D through privacy's event; after a ``rebuild`` the event log and
    every table hold nothing readable about them (every sealed value of theirs fails to open, their blind
    indexes are nowhere), while user B and customer E are intact."""
    from upgestao_identity.adapters.projections import projections
    from upgestao_kernel.eventstore import read_all
    from upgestao_kernel.projections import rebuild
    from upgestao_kernel.vault import is_erased

    admin = identity.admin()
    a, b = identity.add_user(1, phone="+55 11 97777-0001"), identity.add_user(2)
    admin.set_photo(a["id"], png_b64())
    a_tokens = identity.caller(source_ip="198.51.100.4").login(a["email"], identity.password)
    identity.caller().request_password_reset(a["email"])
    d = admin.create_customer({"full_name": "Dora Dias", "email": "dora@example.com", "phone": "+55 21 98888-0002"})
    e = admin.create_customer({"full_name": "Edu Elias", "email": "edu@example.com"})
    vault = vault_of(identity)
    a_indexes = [vault.blind_index("email", a["email"])]
    d_indexes = [vault.blind_index("email", "dora@example.com"), vault.blind_index("phone", "+5521988880002")]
    secrets_of_a_and_d = [a["email"], a["full_name"], "Dora Dias", "dora@example.com", "5521988880002",
                          *a_indexes, *d_indexes]

    publish_erasure(amqp_uri, a["id"], "deletion", "req-a")
    publish_erasure(amqp_uri, d["id"], "deletion", "req-d")
    wait_for(lambda: confirmations(identity, "req-a") and confirmations(identity, "req-d"), 20)
    assert confirmations(identity, "req-a") == [{"request_id": "req-a", "subject_id": a["id"], "mode": "deletion"}]
    revoked = [p["data"] for p in identity.published("identity.session_revoked.v1")]
    assert {"session_id": a_tokens["session_id"], "user_id": a["id"], "reason": "erased"} in revoked

    # A can do nothing any more: no refresh, no token (a sign-in attempt comes after the scan below: like any
    # attempt with an unknown address it is counted under that address's blind index until forgotten)
    assert error_of(identity.caller().refresh, a_tokens["refresh_token"]).status == 401
    assert error_of(identity.caller(access_token=a_tokens["access_token"]).me).status == 401

    assert rebuild(identity.engine, projections()) > 0
    with identity.engine.connect() as conn:
        opened = {a["id"]: [], d["id"]: [], b["id"]: [], e["id"]: []}
        for event in read_all(conn):
            owner = event.stream_id.split("-", 1)[1]
            sealed = {k: v for k, v in (event.data.get("fields") or {}).items() if isinstance(v, str)}
            if owner in opened and sealed:
                opened[owner].append(vault.decrypt_many(conn, owner, sealed))
        text = {t: " ".join(r[0] for r in conn.execute(sa.text(f"SELECT t::text FROM {t} t")))
                for t in ("events", "users", "customers", "sessions", "password_resets", "credentials", "photos",
                          "notices", "known_networks", "login_budgets", "outbox", "request_replies")}
    for erased in (a["id"], d["id"]):
        assert opened[erased] and all(is_erased(v) for values in opened[erased] for v in values.values())
    assert any(v == b["full_name"] for values in opened[b["id"]] for v in values.values())
    assert any(v == "Edu Elias" for values in opened[e["id"]] for v in values.values())
    for table, content in text.items():
        for secret in secrets_of_a_and_d:
            assert secret not in content, (table, secret)
    assert vault.blind_index("email", b["email"]) in text["users"] + text["events"]
    assert all(a["id"] not in text[t] for t in ("users", "sessions", "credentials", "photos", "notices",
                                                 "known_networks", "password_resets"))

    # the read models, rebuilt, find A and D nowhere and B and E as before
    assert error_of(identity.caller().login, a["email"], identity.password).status == 401
    assert error_of(admin.get_user, a["id"]).status == 404
    assert error_of(admin.get_customer, d["id"]).status == 404
    assert admin.search_customers({"email": "dora@example.com"})["items"] == []
    assert admin.search_customers({"phone": "+55 21 98888-0002"})["items"] == []
    assert admin.get_customer(e["id"])["full_name"] == "Edu Elias"
    assert admin.get_user(b["id"])["email"] == b["email"]
    assert identity.caller().login(b["email"], identity.password)["access_token"]
    privacy = identity.as_service("privacy")
    assert privacy.find_subject(a["email"]) == {"subject_id": None, "kind": None}
    assert privacy.contacts([a["id"], b["id"]])["items"].keys() == {b["id"]}

    # the same request again: confirmed again, nothing erased twice
    shreds = len(identity.audit(action="erase", subject_id=a["id"]))
    publish_erasure(amqp_uri, a["id"], "deletion", "req-a")
    wait_for(lambda: len(confirmations(identity, "req-a")) == 2, 20)
    assert len(identity.audit(action="erase", subject_id=a["id"])) == shreds == 1


def test_an_erasure_request_forged_by_another_service_is_parked_never_handled(identity, amqp_uri):
    """The gateway's broker user cannot write ``privacy.events``, and a message it drops straight into identity's
    queue (the default exchange takes a queue's name) is parked by the handler's entrypoint: nobody is erased."""
    from upgestao_kernel.parking import list_parked

    ana = identity.add_user(1)
    envelope = {"event_id": str(uuid.uuid4()), "stream_id": "request-x", "version": 1, "type": ERASURE_REQUESTED,
                "occurred_at": datetime.now(UTC).isoformat(), "actor": {"id": "system", "role": "system"},
                "correlation_id": None, "causation_id": None,
                "data": {"request_id": "forged", "subject_id": ana["id"], "mode": "deletion"}}
    with Connection(service_amqp_uri(amqp_uri, "gateway")) as conn:
        conn.Producer().publish(envelope, exchange="", routing_key="identity.on_erasure_requested",
                                message_id="forged-1", serializer="json")
    parked = wait_for(lambda: list_parked(amqp_uri, "identity.on_erasure_requested"), 20)
    assert parked[0].message_id == "forged-1" and parked[0].error.startswith("NotTheSource")
    assert identity.published(ERASED) == []
    assert identity.admin().get_user(ana["id"])["email"] == ana["email"]


def test_blocking_and_anonymisation_through_the_service(identity, amqp_uri):
    admin = identity.admin()
    blocked, anonymous = identity.add_user(1), identity.add_user(2)
    tokens = identity.caller().login(blocked["email"], identity.password)
    publish_erasure(amqp_uri, blocked["id"], "blocking", "req-b")
    privacy = identity.as_service("privacy")
    assert privacy.erase_subject(anonymous["id"], "anonymisation", "req-n")["kind"] == "user"
    wait_for(lambda: confirmations(identity, "req-b"), 20)

    problem = error_of(admin.get_user, blocked["id"])
    assert (problem.status, problem.slug) == (403, "subject-blocked")
    assert identity.audit(outcome="denied", subject_id=blocked["id"], action="read")
    assert error_of(identity.caller().login, blocked["email"], identity.password).status == 403
    assert error_of(identity.caller().refresh, tokens["refresh_token"]).status == 401
    exported = privacy.export_subject(blocked["id"])
    assert (exported["status"], exported["profile"]["email"]) == ("blocked", blocked["email"])
    assert identity.audit(action="export", purpose="data subject access", subject_id=blocked["id"])

    shown = admin.get_user(anonymous["id"])
    assert (shown["status"], shown["email"], shown["full_name"], shown["role"]) == ("anonymised", None, None,
                                                                                    "attendant")
    [row] = identity.rows("SELECT email_index, email FROM users WHERE id = :u", u=anonymous["id"])
    assert (row.email_index, row.email) == (None, None)
    listed = [u["id"] for u in admin.list_users(100)["items"]]
    assert blocked["id"] not in listed and anonymous["id"] not in listed
    bad = error_of(privacy.erase_subject, anonymous["id"], "forget")
    assert (bad.status, bad.extensions["errors"][0]["field"]) == (422, "mode")
    assert json.dumps(identity.published(ERASED)).count(blocked["email"]) == 0

    # the DPO lifts the blocking (through privacy): the data is processed again; nobody else may
    dpo = identity.add_user(3)
    identity.assign_role(dpo["id"], "dpo")
    assert error_of(identity.as_service("privacy", identity.admin_id, "admin").unblock_subject,
                    blocked["id"]).status == 403
    assert error_of(identity.caller(dpo["id"], "dpo").unblock_subject, blocked["id"]).status == 403
    assert identity.as_service("privacy", dpo["id"], "dpo").unblock_subject(blocked["id"], "req-u")["blocked"] is False
    assert admin.get_user(blocked["id"])["status"] == "active"
    assert identity.caller().login(blocked["email"], identity.password)["access_token"]
    assert [p["data"] for p in identity.published("identity.subject_unblocked.v1")] == [
        {"request_id": "req-u", "subject_id": blocked["id"]}]
