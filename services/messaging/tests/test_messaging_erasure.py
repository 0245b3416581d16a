"""Erasure by privacy's event, on real RabbitMQ and PostgreSQL (issue 14).

Customer A has a conversation (a subject, messages, an edited one, a private note, an attachment, search
entries); customer B the same. Privacy publishes ``privacy.erasure_requested.v1`` for A (as its own broker
user), twice with two event ids, and one of them delivered twice; the gateway's broker user forges one for B
straight into messaging's queue. Then: A's erasure is confirmed once per request (``messaging.subject_erased.v1``
with the request id and the mode), shredded once; the sweep purges; replaying messaging's whole event store and
opening every sealed value finds every value of A's erased and every value of B's readable; no table holds A's
words, no search entry is A's and a search finds nothing of A's; B intact (the forged event parked); the read
models rebuild identically.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import amqp
import sqlalchemy as sa
from kombu import Connection
from upgestao_kernel.broker_identity import broker_user
from upgestao_kernel.config import load_settings
from upgestao_kernel.leaks import LeakScanner, table_texts
from upgestao_kernel.parking import list_parked
from upgestao_kernel.testing import service_amqp_uri, wait_for
from upgestao_kernel.topology import events_exchange_name
from upgestao_kernel.vault import Vault, is_erased, load_keys

REQUESTED = "privacy.erasure_requested.v1"
QUEUE = "messaging.on_erasure_requested"
A_WORDS = ["Quero apagar meu cadastro urgente", "Meu endereço é Rua das Acácias 12", "Nota: cliente pediu sigilo",
           "Assunto secreto da Ana"]
B_WORDS = ["Bruno pergunta sobre reembolso", "Assunto do Bruno"]
TABLES = ("events", "outbox", "conversations", "messages", "message_versions", "chats", "read_cursors",
          "search_terms", "attachments", "subject_purges")
PDF = b"%PDF-1.4\n% exame\n" + b"0" * 512


def _envelope(event_id: str, request_id: str, subject_id: str, mode: str = "deletion") -> dict:
    return {"event_id": event_id, "stream_id": f"request-{request_id}", "version": 3, "type": REQUESTED,
            "occurred_at": datetime.now(UTC).isoformat(), "actor": {"id": None, "role": "system"},
            "correlation_id": event_id, "causation_id": None,
            "data": {"request_id": request_id, "subject_id": subject_id, "mode": mode}}


def _json(value) -> dict:
    return value if isinstance(value, dict) else json.loads(value)


def _publish(uri: str, service: str, vhost: str, bodies: list[dict], *, exchange: str, routing_key: str) -> None:
    with Connection(uri, connect_timeout=5) as conn:
        channel = conn.channel()
        channel.confirm_select()
        for body in bodies:
            channel.basic_publish_confirm(
                amqp.Message(json.dumps(body), content_type="application/json", content_encoding="utf-8",
                             message_id=body["event_id"], delivery_mode=2, user_id=broker_user(service, vhost)),
                exchange=exchange, routing_key=routing_key)


def _customer_with_everything(desk, as_admin, words: list[str]) -> dict:
    customer = desk.person("customer")
    cid = as_admin.open_conversation({"customer_id": customer, "channel": "email", "subject": words[-1]})["id"]
    ids = [as_admin.send_message(cid, {"body": w, "direction": "incoming"})["message"]["id"] for w in words[:-1]]
    as_admin.edit_message(ids[0], words[0] + " hoje")
    upload = as_admin.upload_attachment({"conversation_id": cid, "name": f"{words[0][:5]}.pdf",
                                         "content_b64": base64.b64encode(PDF).decode()})
    as_admin.send_message(cid, {"body": "Segue o anexo", "direction": "outgoing", "private": True,
                                "attachment_ids": [upload["id"]]})
    return {"id": customer, "conversation": cid, "messages": ids, "attachment": upload["id"]}


def _sealed_values(desk) -> list[tuple[str, str, str, str]]:
    """Every sealed value of messaging's event store: (event type, subject, field, ciphertext)."""
    out = []
    for type_, data in desk.rows("SELECT type, data FROM events ORDER BY position"):
        data = _json(data)
        subject = data.get("key_subject_id") or data.get("customer_id") or data.get("creator_id")
        for field, sealed in (data.get("sealed") or {}).items():
            if sealed is not None:
                out.append((type_, subject, field, sealed))
    return out


def test_erasure_by_privacys_event_leaves_nothing_readable_of_a_and_b_intact(desk, amqp_uri):
    vhost = unquote(urlsplit(amqp_uri).path[1:]) or "/"
    admin = desk.person(role="admin")
    as_admin = desk.caller(admin)
    a = _customer_with_everything(desk, as_admin, A_WORDS)
    b = _customer_with_everything(desk, as_admin, B_WORDS)
    assert [m["id"] for m in as_admin.search("acacias")["items"]] == [a["messages"][1]]
    vault = Vault(*load_keys(load_settings("messaging"), os.environ))

    request_1, request_2, duplicate = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    privacy_uri = service_amqp_uri(amqp_uri, "privacy")
    gateway_uri = service_amqp_uri(amqp_uri, "gateway")
    forged = str(uuid.uuid4())
    # the attack first: the gateway's broker user forges B's erasure straight into messaging's queue
    _publish(gateway_uri, "gateway", vhost, [_envelope(forged, str(uuid.uuid4()), b["id"])], exchange="",
             routing_key=QUEUE)
    _publish(privacy_uri, "privacy", vhost, [_envelope(duplicate, request_1, a["id"]),
                                             _envelope(duplicate, request_1, a["id"]),  # delivered twice
                                             _envelope(str(uuid.uuid4()), request_2, a["id"], "anonymisation")],
             exchange=events_exchange_name("privacy"), routing_key=REQUESTED)

    def confirmations() -> list[dict]:
        rows = desk.rows("SELECT body FROM outbox WHERE routing_key = 'messaging.subject_erased.v1' ORDER BY id")
        return [_json(r.body)["data"] for r in rows]

    wait_for(lambda: len(confirmations()) >= 2, timeout=20, interval=0.05)
    assert sorted((c["request_id"], c["mode"], c["subject_id"]) for c in confirmations()) == sorted([
        (request_1, "deletion", a["id"]), (request_2, "anonymisation", a["id"])])
    assert sorted(c["shredded"] for c in confirmations()) == [False, True]  # whichever came first shreds
    parked = wait_for(lambda: {m.message_id: m for m in list_parked(amqp_uri, QUEUE)}.get(forged), timeout=20)
    assert "NotTheSource" in parked.error
    wait_for(lambda: desk.rows("SELECT purged_at FROM subject_purges WHERE subject_id = :s AND purged_at IS NOT NULL",
                               s=a["id"]), timeout=20, interval=0.05)
    assert len(confirmations()) == 2  # the duplicate delivery was handled once
    purged = desk.rows("SELECT body FROM outbox WHERE routing_key = 'messaging.subject_purged.v1'")
    # three of hers, and the note with the attachment
    assert [(_json(r.body)["data"]["subject_id"], _json(r.body)["data"]["messages"]) for r in purged] == [(a["id"], 4)]

    # replay: every sealed value of the event store opened
    values = _sealed_values(desk)
    with desk.db.connect() as conn:
        opened = [(subject, vault.decrypt(conn, subject, field, sealed)) for _, subject, field, sealed in values]
        a_attachment = conn.execute(sa.text("SELECT * FROM attachments WHERE id = :i"), {"i": a["attachment"]}).one()
        b_attachment = conn.execute(sa.text("SELECT * FROM attachments WHERE id = :i"), {"i": b["attachment"]}).one()
        b_name = vault.decrypt(conn, b["id"], "attachment_name", b_attachment.name_sealed)
    of_a = [v for s, v in opened if s == a["id"]]
    of_b = [v for s, v in opened if s == b["id"]]
    assert len(of_a) == 6 and all(is_erased(v) for v in of_a)  # subject, 3 bodies, an edit, the note
    assert len(of_b) == 4 and not any(is_erased(v) for v in of_b) and B_WORDS[0] in of_b
    assert a_attachment.erased and a_attachment.content_sealed is None and a_attachment.name_sealed is None
    assert not b_attachment.erased and b_name == "Bruno.pdf"

    # the read models and the index: nothing of A's, in clear or as an entry; B intact
    assert desk.rows("SELECT count(*) AS n FROM search_terms WHERE subject_id = :s", s=a["id"])[0].n == 0
    assert desk.rows("SELECT count(*) AS n FROM search_terms WHERE subject_id = :s", s=b["id"])[0].n > 0
    assert not desk.rows("SELECT id FROM messages WHERE key_subject_id = :s AND (body_sealed IS NOT NULL OR NOT "
                         "erased)", s=a["id"])
    assert not desk.rows("SELECT message_id FROM message_versions WHERE key_subject_id = :s AND body_sealed IS NOT "
                         "NULL", s=a["id"])
    for word in ("acacias", "apagar", "sigilo", "secreto"):
        assert as_admin.search(word)["items"] == []
    assert as_admin.message(a["messages"][1])["body"] is None
    assert as_admin.conversation(a["conversation"])["subject"] is None
    assert [m["id"] for m in as_admin.search("reembolso")["items"]] == [b["messages"][0]]
    assert as_admin.conversation(b["conversation"])["subject"] == B_WORDS[-1]
    scanner = LeakScanner([w for w in A_WORDS] + ["Acácias", "sigilo"])
    scanner.assert_clean([pair for table in TABLES for pair in table_texts(desk.db, table)])

    from upgestao_kernel.projections import rebuild, snapshot
    from upgestao_messaging.adapters.projections import projections

    with desk.db.connect() as conn:
        before = snapshot(conn, projections())
    assert rebuild(desk.db, projections()) > 0
    with desk.db.connect() as conn:
        assert snapshot(conn, projections()) == before  # the erasure and the purge included


def test_customer_ids_and_the_data_map_over_rpc(desk):
    admin = desk.person(role="admin")
    as_admin = desk.caller(admin)
    customers = sorted(desk.person("customer") for _ in range(3))
    for n, customer in enumerate(customers):
        as_admin.open_conversation({"customer_id": customer, "channel": "whatsapp" if n else "web"})
    privacy = desk.caller(service="privacy")
    assert privacy.customer_ids(None, 2) == {"items": customers[:2], "next": customers[1]}
    assert privacy.customer_ids("web") == {"items": customers[:1], "next": None}
    from upgestao_kernel.errors import ServiceError

    for forger in (as_admin, desk.caller(admin, caller_service="privacy")):
        try:
            forger.customer_ids()
        except ServiceError as exc:
            assert exc.status == 403
        else:
            raise AssertionError("customer_ids answered someone other than privacy")
    items = as_admin.data_map()["items"]
    assert {("message", "body"), ("conversation", "subject"), ("attachment", "attachment")} <= {
        (i["resource"], i["field"]) for i in items}
