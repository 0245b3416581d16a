"""Service tests: messaging on real RabbitMQ and PostgreSQL, called over RPC as the gateway calls it.

One conversation's life (statuses, snooze timer, messages, private note, edit and history, deletion,
search with accents, read cursors for two users), another attendant refused it by every route, staff
chat with a removal, no body in clear in any table or message, and the erasure of one customer over
privacy's broker user. The idempotent send is raced by two green threads on PostgreSQL, held together
between their existence check and their append so that the stream's version-0 append must decide.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.leaks import LeakScanner, table_texts
from upgestao_kernel.testing import wait_for
from upgestao_messaging.service import MessagingService

BODIES = ["Não consigo emitir o boleto da fatura", "Nota interna: cliente irritadiço", "Já reenviei o boleto",
          "Plantão de sábado combinado"]
SUBJECT = "Segunda via da fatura"
TABLES = ("events", "outbox", "conversations", "messages", "message_versions", "chats", "read_cursors",
          "search_terms")


def test_health_answers_over_rpc(run_service):
    proxy = run_service(MessagingService, "upgestao_messaging:migrations")
    assert proxy.health() == {"service": "messaging", "status": "ok", "database": "ok"}
    assert proxy.ping() == {"service": "messaging"}


def _status(exc_info) -> int:
    return exc_info.value.status


def test_a_conversation_over_rpc(desk, caplog, capfd):
    caplog.set_level(logging.INFO)  # the platform's level (at DEBUG, nameko.rpc logs every reply: see README)
    admin, ana, bia = desk.person(role="admin"), desk.person(), desk.person(role="supervisor")
    customer = desk.person("customer")
    as_admin, as_ana, as_bia = desk.caller(admin), desk.caller(ana), desk.caller(bia)
    team = as_admin.create_team("Suporte", [ana, bia])
    assert as_ana.team(team["id"])["member_ids"] == sorted([ana, bia])

    c = as_admin.open_conversation({"customer_id": customer, "channel": "whatsapp", "team_id": team["id"],
                                    "assignee_id": ana, "subject": SUBJECT})
    assert c["status"] == "open" and c["subject"] == SUBJECT
    cid = c["id"]
    incoming = as_ana.send_message(cid, {"body": BODIES[0], "direction": "incoming", "client_message_id": "wa-1"})
    assert incoming["created"] is True
    again = as_ana.send_message(cid, {"body": BODIES[0], "direction": "incoming", "client_message_id": "wa-1"})
    assert again["created"] is False and again["message"] == incoming["message"]  # the same answer, read back
    note = as_ana.send_message(cid, {"body": BODIES[1], "direction": "outgoing", "private": True})["message"]
    reply = as_ana.send_message(cid, {"body": "Já enviei o boleto", "direction": "outgoing"})["message"]
    assert as_ana.edit_message(reply["id"], BODIES[2])["edited_at"] is not None
    assert [h["body"] for h in as_admin.message_history(reply["id"])["items"]] == ["Já enviei o boleto", BODIES[2]]

    # lifecycle: pending, snoozed (the timer reopens it), resolved, reopened by an incoming message
    assert as_ana.update_conversation(cid, {"status": "pending"})["status"] == "pending"
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    assert as_ana.update_conversation(cid, {"status": "snoozed", "snoozed_until": soon})["status"] == "snoozed"
    wait_for(lambda: as_ana.conversation(cid)["status"] == "open", 10)
    as_ana.update_conversation(cid, {"status": "resolved"})
    late = as_ana.send_message(cid, {"body": "Ainda não chegou", "direction": "incoming"})["message"]
    assert as_ana.conversation(cid)["status"] == "open"
    assert as_ana.delete_message(late["id"])["deleted"] is True

    page = as_bia.messages(cid, limit=2)
    assert [(m["id"], m["deleted"]) for m in page["items"]] == [(reply["id"], False), (late["id"], True)]
    assert page["has_more_before"] and not page["has_more_after"] and page["items"][1]["body"] is None
    assert [m["body"] for m in as_bia.messages(cid, before=reply["id"])["items"]] == BODIES[:2]
    assert [m["id"] for m in as_bia.search("NAO consigo fatura")["items"]] == [incoming["message"]["id"]]
    assert [m["id"] for m in as_bia.search("boleto")["items"]] == [reply["id"], incoming["message"]["id"]]

    # read cursors and unread counts for two users
    assert as_bia.unread()["total"] == 3
    as_bia.mark_read(cid, note["id"])
    assert as_bia.unread() == {"total": 1, "items": [{"conversation_id": cid, "unread": 1}]}
    assert as_ana.unread()["total"] == 0
    assert [(r["user_id"], r["message_id"]) for r in as_ana.read_receipts(cid)["items"]] == [(bia, note["id"])]

    # another attendant of the team, the conversation assigned to ana: refused as absent, everywhere
    carla = desk.person()
    as_admin.update_team(team["id"], {"member_ids": [ana, bia, carla]})
    as_admin.update_conversation(cid, {"assignee_id": bia})
    as_carla = desk.caller(carla)
    for call in (lambda: as_carla.conversation(cid), lambda: as_carla.messages(cid),
                 lambda: as_carla.message(note["id"]), lambda: as_carla.message_history(note["id"]),
                 lambda: as_carla.send_message(cid, {"body": "x", "direction": "outgoing"}),
                 lambda: as_carla.mark_read(cid, note["id"]), lambda: as_carla.read_receipts(cid),
                 lambda: as_carla.edit_message(note["id"], "x"), lambda: as_carla.delete_message(note["id"]),
                 lambda: as_carla.update_conversation(cid, {"assignee_id": carla})):
        with pytest.raises(ServiceError) as caught:
            call()
        assert _status(caught) == 404
    assert as_carla.conversations()["items"] == [] and as_carla.search("boleto")["items"] == []
    assert as_carla.unread()["total"] == 0
    with pytest.raises(ServiceError) as caught:
        desk.caller().conversations()  # no token
    assert _status(caught) == 403

    # staff chat, with a removal
    group = as_ana.create_chat({"kind": "group", "member_ids": [bia, carla], "title": "Plantão"})
    posted = as_carla.send_chat_message(group["id"], {"body": BODIES[3]})["message"]
    assert as_bia.chat_messages(group["id"])["items"][0]["id"] == posted["id"]
    as_ana.remove_chat_member(group["id"], carla)
    with pytest.raises(ServiceError) as caught:
        as_carla.chat_messages(group["id"])
    assert _status(caught) == 404
    assert as_admin.chats()["items"] == []  # the admin is in no chat

    # no body, subject or title in clear anywhere messaging keeps or sends
    scanner = LeakScanner([*BODIES, SUBJECT, "Plantão"])
    assert scanner.assert_clean([pair for table in TABLES for pair in table_texts(desk.db, table)]) > 20
    out, err = capfd.readouterr()
    assert scanner.assert_clean({"logs": [caplog.text, out, err]}) == 3  # what the service logged meanwhile
    _rebuilds_identically(desk)


def _rebuilds_identically(desk) -> None:
    """The read models come back from the event log exactly as they were (``rebuild``)."""
    from upgestao_kernel.projections import rebuild, snapshot
    from upgestao_messaging.adapters.projections import projections

    with desk.db.connect() as conn:
        before = snapshot(conn, projections())
    assert rebuild(desk.db, projections()) > 0
    with desk.db.connect() as conn:
        assert snapshot(conn, projections()) == before


def test_erasure_of_one_customer_over_rpc(desk):
    admin = desk.person(role="admin")
    joana, pedro = desk.person("customer"), desk.person("customer")
    as_admin = desk.caller(admin)
    cj = as_admin.open_conversation({"customer_id": joana, "channel": "email", "subject": "Assunto da Joana"})["id"]
    cp = as_admin.open_conversation({"customer_id": pedro, "channel": "email"})["id"]
    mj = as_admin.send_message(cj, {"body": "Meu telefone novo é outro", "direction": "incoming"})["message"]["id"]
    mp = as_admin.send_message(cp, {"body": "Pedro pergunta do prazo", "direction": "incoming"})["message"]["id"]
    # attacks: the admin's own proxy saying it is privacy; a caller naming an actor without a token
    for forger in (as_admin, desk.caller(admin, caller_service="privacy"),
                   desk.caller(actor_id=admin, actor_role="admin", caller_service="privacy")):
        for call in (forger.erase_subject, forger.export_subject):
            with pytest.raises(ServiceError) as caught:
                call(joana)
            assert _status(caught) == 403
    with pytest.raises(ServiceError) as caught:
        desk.caller(actor_id=admin, actor_role="admin").message(mj)
    assert _status(caught) == 403
    privacy = desk.caller(service="privacy")
    exported = privacy.export_subject(joana)
    assert exported["conversations"][0]["messages"][0]["body"] == "Meu telefone novo é outro"
    first, again = privacy.erase_subject(joana), privacy.erase_subject(joana, "deletion", "req-2")
    assert (first["erased"], first["messages"], first["shredded"]) == (True, None, True)  # counted by the purge
    assert (again["erased"], again["shredded"], again["request_id"]) == (True, False, "req-2")
    assert as_admin.message(mj)["body"] is None and as_admin.conversation(cj)["subject"] is None
    assert as_admin.search("telefone")["items"] == []
    assert as_admin.message(mp)["body"] == "Pedro pergunta do prazo"
    assert len(desk.rows("SELECT * FROM outbox WHERE routing_key = 'messaging.subject_erased.v1'")) == 2
    assert len(desk.rows("SELECT * FROM subject_keys WHERE subject_id = :s AND shredded_at IS NOT NULL",
                         s=joana)) == 1
    scanner = LeakScanner(["Meu telefone novo é outro", "Assunto da Joana"])
    scanner.assert_clean([pair for table in TABLES for pair in table_texts(desk.db, table)])
    wait_for(lambda: desk.rows("SELECT messages FROM subject_purges WHERE purged_at IS NOT NULL"), timeout=15)
    assert [r.messages for r in desk.rows("SELECT messages FROM subject_purges")] == [1]  # the sweep's purge
    _rebuilds_identically(desk)  # the erasure and its purge included


def test_idempotent_send_raced_on_postgresql(database_factory, monkeypatch, tmp_path):
    """Two senders of one client_message_id, both past the existence check before either appends."""
    monkeypatch.setenv("UPGESTAO_ENV", "test")
    monkeypatch.setenv("UPGESTAO_DATA_DIR", str(tmp_path / "var"))
    from threading import Barrier

    from upgestao_kernel.config import load_settings
    from upgestao_kernel.context import RequestContext
    from upgestao_kernel.db import create_engine, green_postgres
    from upgestao_kernel.migrations import upgrade
    from upgestao_kernel.unit_of_work import UnitOfWork
    from upgestao_kernel.vault import Vault, load_keys
    from upgestao_messaging.adapters.ports import Person
    from upgestao_messaging.adapters.projections import projections
    from upgestao_messaging.adapters.sql_repositories import with_sql_repositories
    from upgestao_messaging.domain.search import TermHasher
    from upgestao_messaging.service_layer.access import Attachments, Deps
    from upgestao_messaging.service_layer.api import MessagingApi

    green_postgres()
    url = database_factory("messaging_race")
    upgrade("upgestao_messaging:migrations", url)
    engine = create_engine(url)
    keyring, blind = load_keys(load_settings("messaging"))
    vault = Vault(keyring, blind)
    agent, customer = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    people = {agent: Person(agent, "staff", "attendant", True), customer: Person(customer, "customer", None, True)}
    roles = {"attendant": frozenset({"conversations.read", "conversations.write", "conversations.read_all"})}
    barrier = Barrier(2)

    class Together(Attachments):
        holding = True

        def link(self, uow, attachment_ids, **kwargs):  # called after the check, before the append
            if self.holding:
                barrier.wait(timeout=10)

    together = Together()

    def api() -> MessagingApi:
        context = RequestContext(request_id=str(uuid.uuid4()), actor_id=agent, actor_role="attendant")
        return MessagingApi(Deps(
            unit_of_work=lambda: with_sql_repositories(UnitOfWork(engine, "messaging", context, projections(),
                                                                  vault=vault)),
            permissions_of=lambda role: roles.get(role or "", frozenset()),
            directory=type("D", (), {"lookup": staticmethod(lambda ids: {i: people[i] for i in ids if i in people})}),
            hasher=TermHasher(b"race-test-search-key-0123456789"), attachments=together))

    together.holding = False
    # with a subject: the customer's data key exists before the race (two first seals of one subject would
    # serialise on the key's row, not on the message's stream)
    conversation = api().open_conversation({"customer_id": customer, "channel": "web", "subject": "Pedido"})["id"]
    together.holding = True
    data = {"body": "Enviado duas vezes", "direction": "outgoing", "client_message_id": "tap-twice"}
    results = [eventlet.spawn(api().send_message, conversation, dict(data)) for _ in range(2)]
    answers = [g.wait() for g in results]
    assert sorted(a["created"] for a in answers) == [False, True]
    assert answers[0]["message"]["id"] == answers[1]["message"]["id"]
    assert answers[0]["message"]["body"] == answers[1]["message"]["body"] == "Enviado duas vezes"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM outbox WHERE routing_key = "
                                    "'messaging.message_created.v1'")).scalar() == 1
        # the loser's seal rolled back with its unit: one create audit record for the body
        creates = conn.execute(sa.text("SELECT body FROM outbox WHERE exchange = 'audit'")).scalars().all()
        assert sum(1 for b in creates if b["action"] == "create" and b["resource_type"] == "message") == 1
    engine.dispose()
