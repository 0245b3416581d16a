"""Messaging end to end through the gateway, every service running as a process (issue 13: R1.3, R2.1,
R3.1, R5.3, D2, D3): a conversation's whole life, private notes, idempotent sends, staff chat membership,
edits with history, unread counts and read cursors, accent-blind search, every content read audited,
nothing in clear where it must not be, and one customer's erasure.

Each test makes its own staff, team and customers (the platform is shared): tests are independent and
may run in any order. Nothing sleeps: what happens asynchronously (the audit log, the snooze timer, the
broker) is polled for with a deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from e2e_api import new_request_id, wait_for_audit
from e2e_messaging import broker_tap, database_texts, events_of, messaging_as, png, words
from upgestao_kernel.leaks import LeakScanner, log_texts
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e
pytest_plugins = ["e2e_messaging_fixtures"]  # api, admin_token, dpo, desk


def _later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


# -- a conversation's life ----------------------------------------------------------------------------


def test_open_pending_snoozed_reopened_by_an_incoming_message_then_resolved(desk, platform):
    a = desk.staff("a")
    team = desk.team(a)
    customer = desk.customer()
    with broker_tap(platform, ("messaging.events",)) as tap:
        conversation = desk.conversation(a, customer, team_id=team, subject="Pedido 1234 atrasado")
        cid = conversation["id"]
        assert (conversation["status"], conversation["subject"], conversation["snoozed_until"]) == (
            "open", "Pedido 1234 atrasado", None)
        assert (conversation["customer_id"], conversation["team_id"], conversation["assignee_id"]) == (
            customer, team, None)
        desk.send(a, cid, "Vamos verificar com a transportadora.")
        assert desk.patch(a, cid, status="pending")["status"] == "pending"

        snoozed = desk.patch(a, cid, status="snoozed", snoozed_until=_later(3600))
        assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"] is not None
        assert datetime.fromisoformat(snoozed["snoozed_until"]) > datetime.now(UTC) + timedelta(minutes=59)

        desk.send(a, cid, "Chegou, obrigado!", direction="incoming")  # the customer answers: reopened
        reopened = desk.get(a, f"/v1/conversations/{cid}")
        assert (reopened["status"], reopened["snoozed_until"]) == ("open", None)

        assert desk.patch(a, cid, status="resolved")["status"] == "resolved"
        desk.send(a, cid, "Mais uma dúvida", direction="incoming")  # a resolved one reopens too
        assert desk.get(a, f"/v1/conversations/{cid}")["status"] == "open"

        def changes() -> list[tuple]:
            return [(e["data"]["previous"], e["data"]["status"], e["data"]["reason"])
                    for e in events_of(tap(), "messaging.conversation_status_changed.v1")
                    if e["data"]["conversation_id"] == cid]

        wait_for(lambda: len(changes()) == 5, timeout=15, interval=0.1)
        assert changes() == [("open", "pending", "requested"), ("pending", "snoozed", "requested"),
                             ("snoozed", "open", "incoming_message"), ("open", "resolved", "requested"),
                             ("resolved", "open", "incoming_message")]


def test_a_snooze_ends_by_itself(desk):
    a = desk.staff("a")
    cid = desk.conversation(a, desk.customer(), team_id=desk.team(a))["id"]
    refused = desk.api.patch(f"/v1/conversations/{cid}", a.token,
                             json={"status": "snoozed", "snoozed_until": _later(-60)})
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["snoozed_until"]
    desk.patch(a, cid, status="snoozed", snoozed_until=_later(1.5))
    assert desk.get(a, f"/v1/conversations/{cid}")["status"] == "snoozed"
    woken = wait_for(lambda: (c := desk.get(a, f"/v1/conversations/{cid}"))["status"] == "open" and c,
                     timeout=30, interval=0.25)
    assert woken["snoozed_until"] is None


def test_triage_assignee_team_priority_and_labels_with_filters(desk):
    a, b = desk.staff("a"), desk.staff("b")
    team = desk.team(a, b)
    customer = desk.customer()
    cid = desk.conversation(a, customer, team_id=team, priority="low", labels=["boleto"])["id"]
    changed = desk.patch(a, cid, assignee_id=b.id, priority="urgent", labels=["Boleto", "VIP"])
    assert (changed["assignee_id"], changed["priority"], changed["labels"]) == (b.id, "urgent", ["boleto", "vip"])
    assert changed["subject"] is None  # a change answers no sealed value
    mine = desk.get(b, "/v1/conversations", assignee_id=b.id, label="vip")["items"]
    assert [c["id"] for c in mine] == [cid] and "subject" not in mine[0]
    assert desk.get(b, "/v1/conversations", customer_id=customer, status="resolved")["items"] == []
    # assigned to b, it left a's view (an attendant sees their own and their teams' unassigned)
    assert desk.api.get(f"/v1/conversations/{cid}", a.token).status_code == 404
    desk.patch(b, cid, assignee_id=None)
    assert desk.get(a, f"/v1/conversations/{cid}")["assignee_id"] is None
    bad = desk.api.patch(f"/v1/conversations/{cid}", a.token, json={"assignee_id": desk.customer()})
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["assignee_id"]


# -- private notes, idempotent sends ----------------------------------------------------------------------


def test_a_private_note_is_in_no_published_event_and_no_customer_payload(desk, platform):
    a = desk.staff("a")
    cid = desk.conversation(a, desk.customer(), team_id=desk.team(a))["id"]
    secret = f"Nota interna: cliente {words('sus')} parece fraude"
    with broker_tap(platform, ("messaging.events",)) as tap:
        note = desk.send(a, cid, secret, private=True)
        reply = desk.send(a, cid, "Resposta visível ao cliente")
        assert (note["private"], reply["private"]) == (True, False)
        page = desk.get(a, f"/v1/conversations/{cid}/messages")["items"]
        assert [(m["id"], m["private"]) for m in page] == [(note["id"], True), (reply["id"], False)]  # staff see it

        def created() -> dict[str, dict]:
            return {e["data"]["message_id"]: e for e in events_of(tap(), "messaging.message_created.v1")}

        events = wait_for(lambda: (found := created()) and {note["id"], reply["id"]} <= set(found) and found,
                          timeout=15, interval=0.1)
        published = [(m["routing_key"], m["body"]) for m in tap()]
    # integrations drop private notes by the flag; no event carries any body at all
    assert events[note["id"]]["data"]["private"] is True and events[reply["id"]]["data"]["private"] is False
    for event in events.values():
        assert "body" not in event["data"]
    LeakScanner([secret]).assert_clean(published)


def test_a_repeated_client_message_id_answers_the_same_message_with_200(desk):
    a, b = desk.staff("a"), desk.staff("b")
    cid = desk.conversation(a, desk.customer(), team_id=desk.team(a, b))["id"]
    first = desk.api.post(f"/v1/conversations/{cid}/messages", a.token,
                          json={"body": "Olá!", "direction": "outgoing", "client_message_id": "msg-1"})
    again = desk.api.post(f"/v1/conversations/{cid}/messages", a.token,
                          json={"body": "Olá!", "direction": "outgoing", "client_message_id": "msg-1"})
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert first.json() == again.json()
    assert first.headers["Location"] == again.headers["Location"] == f"/v1/messages/{first.json()['id']}"
    # another id is another message; the same id from another author is theirs, not a's
    other = desk.send(a, cid, "Olá!", client_message_id="msg-2")
    by_b = desk.send(b, cid, "Olá!", client_message_id="msg-1")
    assert len({first.json()["id"], other["id"], by_b["id"]}) == 3 and by_b["author_id"] == b.id
    page = desk.get(a, f"/v1/conversations/{cid}/messages")["items"]
    assert [m["id"] for m in page] == [first.json()["id"], other["id"], by_b["id"]]


# -- staff chat -----------------------------------------------------------------------------------------


def test_a_removed_member_keeps_no_access_by_any_route(desk):
    a, b, c = desk.staff("a"), desk.staff("b"), desk.staff("c")
    chat = desk.chat(a, b, c, title="Plantão de sábado")
    assert (chat["kind"], chat["title"], chat["creator_id"]) == ("group", "Plantão de sábado", a.id)
    assert set(chat["member_ids"]) == {a.id, b.id, c.id}
    word = words("plant")
    before = desk.post(b, chat["id"], f"Quem cobre o {word}?")
    desk.post(a, chat["id"], "Eu cubro")
    assert [m["id"] for m in desk.search(b, word)] == [before["id"]]
    assert desk.unread(b)[chat["id"]] == 1
    # c may not remove b (only the creator or a moderator), a may
    refused = desk.api.delete(f"/v1/chats/{chat['id']}/members/{b.id}", c.token)
    assert refused.status_code == 403, refused.text
    removed = desk.api.delete(f"/v1/chats/{chat['id']}/members/{b.id}", a.token)
    assert removed.status_code == 200 and set(removed.json()["member_ids"]) == {a.id, c.id}

    cid, mid = chat["id"], before["id"]
    for method, path, body in [
        ("GET", f"/v1/chats/{cid}", None), ("GET", f"/v1/chats/{cid}/messages", None),
        ("POST", f"/v1/chats/{cid}/messages", {"body": "ainda estou aqui?"}),
        ("POST", f"/v1/chats/{cid}/read", {"message_id": mid}), ("GET", f"/v1/messages/{mid}", None),
        ("PATCH", f"/v1/messages/{mid}", {"body": "editado"}), ("DELETE", f"/v1/messages/{mid}", None),
        ("GET", f"/v1/messages/{mid}/history", None),
        ("POST", f"/v1/chats/{cid}/members", {"user_id": b.id}),
        ("GET", "/v1/messages/search", None),
    ]:
        params = {"q": word, "chat_id": cid} if path == "/v1/messages/search" else None
        response = desk.api.request(method, path, b.token, json=body, params=params)
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
        assert response.json()["type"].endswith("/not-found")
    assert desk.search(b, word) == []  # what b wrote there is the chat's, no longer b's to find
    assert cid not in desk.unread(b) and cid not in [c["id"] for c in desk.get(b, "/v1/chats")["items"]]
    assert desk.get(c, f"/v1/messages/{mid}")["body"] == f"Quem cobre o {word}?"  # members still read it


def test_a_direct_chat_is_two_people_once_and_an_admin_manages_groups_without_reading_them(desk):
    a, b = desk.staff("a"), desk.staff("b")
    direct = desk.chat(a, b, kind="direct")
    assert desk.chat(b, a, kind="direct", expect=200)["id"] == direct["id"]  # from either side, the same chat
    assert desk.api.post(f"/v1/chats/{direct['id']}/members", a.token,
                         json={"user_id": desk.staff("c").id}).status_code == 409
    group = desk.chat(a, b, title="Time de cobrança")
    desk.post(a, group["id"], "Bom dia")
    # the admin (messages.moderate) is no member: the group is not theirs to read
    assert desk.api.get(f"/v1/chats/{group['id']}/messages", desk.admin.token).status_code == 404
    managed = desk.api.delete(f"/v1/chats/{group['id']}/members/{b.id}", desk.admin.token)
    assert managed.status_code == 200, managed.text
    assert managed.json()["member_ids"] == [a.id] and managed.json()["title"] is None


# -- edits, deletes, history ----------------------------------------------------------------------------------


def test_edit_and_delete_keep_every_version_in_the_history(desk):
    a, s = desk.staff("a"), desk.staff("s", "supervisor")
    team = desk.team(a, s)
    cid = desk.conversation(a, desk.customer(), team_id=team)["id"]
    sent = desk.send(a, cid, "Seu boleto vence amanhã")
    assert sent["edited_at"] is None and sent["deleted"] is False
    first = desk.api.patch(f"/v1/messages/{sent['id']}", a.token, json={"body": "Seu boleto vence sexta"})
    assert first.status_code == 200, first.text
    assert first.json()["body"] == "Seu boleto vence sexta" and first.json()["edited_at"] is not None
    assert desk.api.patch(f"/v1/messages/{sent['id']}", a.token, json={"body": "Vence sexta, 10h"}).status_code == 200
    # only the author (or a moderator) edits: the supervisor who sees it may not
    assert desk.api.patch(f"/v1/messages/{sent['id']}", s.token, json={"body": "x"}).status_code == 403
    history = desk.get(s, f"/v1/messages/{sent['id']}/history")["items"]
    assert [(v["version"], v["body"]) for v in history] == [
        (1, "Seu boleto vence amanhã"), (2, "Seu boleto vence sexta"), (3, "Vence sexta, 10h")]
    assert history[1]["editor_id"] == a.id

    deleted = desk.api.delete(f"/v1/messages/{sent['id']}", a.token)
    assert deleted.status_code == 200, deleted.text
    assert (deleted.json()["deleted"], deleted.json()["body"]) == (True, None)
    assert desk.get(a, f"/v1/messages/{sent['id']}")["body"] is None
    assert [v["body"] for v in desk.get(s, f"/v1/messages/{sent['id']}/history")["items"]][:3] == [
        "Seu boleto vence amanhã", "Seu boleto vence sexta", "Vence sexta, 10h"]
    assert desk.search(a, "boleto", conversation_id=cid) == []  # a deleted message is found no more
    # the admin moderates any message at any time
    other = desk.send(a, cid, "Mensagem a moderar")
    moderated = desk.api.patch(f"/v1/messages/{other['id']}", desk.admin.token, json={"body": "[removido]"})
    assert moderated.status_code == 200 and moderated.json()["body"] == "[removido]"


# -- unread counts and read cursors ----------------------------------------------------------------------------


def test_unread_counts_and_read_cursors_for_two_users(desk):
    a, b, s = desk.staff("a"), desk.staff("b"), desk.staff("s", "supervisor")
    cid = desk.conversation(s, desk.customer(), team_id=desk.team(a, b, s))["id"]  # unassigned: a and b see it
    m1, m2, m3 = (desk.send(s, cid, f"Mensagem {n}", direction="incoming")["id"] for n in (1, 2, 3))
    assert desk.unread(a)[cid] == desk.unread(b)[cid] == 3
    assert desk.get(a, f"/v1/conversations/{cid}")["unread"] == 3

    read = desk.api.post(f"/v1/conversations/{cid}/read", a.token, json={"message_id": m2})
    assert read.status_code == 200, read.text
    assert (read.json()["conversation_id"], read.json()["user_id"], read.json()["message_id"]) == (cid, a.id, m2)
    assert desk.unread(a)[cid] == 1 and desk.unread(b)[cid] == 3
    back = desk.api.post(f"/v1/conversations/{cid}/read", a.token, json={"message_id": m1})  # never moves back
    assert back.status_code == 200 and back.json()["message_id"] == m2
    assert desk.unread(a)[cid] == 1
    desk.api.post(f"/v1/conversations/{cid}/read", b.token, json={"message_id": m3})
    assert cid not in desk.unread(b)  # nothing unread: no item
    receipts = {r["user_id"]: r["message_id"] for r in desk.get(s, f"/v1/conversations/{cid}/receipts")["items"]}
    assert receipts == {a.id: m2, b.id: m3}
    desk.send(a, cid, "Minha resposta")  # one's own messages are never unread to oneself
    assert desk.unread(a)[cid] == 1 and desk.unread(b)[cid] == 1
    assert desk.unread(a)["total"] >= 1
    elsewhere = desk.conversation(a, desk.customer(), assignee_id=a.id)["id"]
    foreign = desk.api.post(f"/v1/conversations/{cid}/read", a.token,
                            json={"message_id": desk.send(a, elsewhere, "x")["id"]})
    assert foreign.status_code == 422 and [e["field"] for e in foreign.json()["errors"]] == ["message_id"]


# -- search -------------------------------------------------------------------------------------------------


def test_search_ignores_accents_and_case_and_needs_every_word(desk):
    a, b = desk.staff("a"), desk.staff("b")
    team = desk.team(a, b)
    mine = desk.conversation(a, desk.customer(), team_id=team, assignee_id=a.id)["id"]
    theirs = desk.conversation(b, desk.customer(), team_id=team, assignee_id=b.id)["id"]
    tag = words("z")
    accented = desk.send(a, mine, f"Não recebi o boleto {tag}", direction="incoming")
    plain = desk.send(a, mine, f"nao consigo pagar {tag} AÇÃO", direction="incoming")
    desk.send(b, theirs, f"Não recebi nada {tag}", direction="incoming")  # b's: never a's to find

    def found(q: str, by=a, **params) -> set[str]:
        return {m["id"] for m in desk.search(by, q, **params)}

    assert found(f"não {tag}") == found(f"nao {tag}") == found(f"NAO {tag.upper()}") == {accented["id"], plain["id"]}
    assert found(f"boleto não {tag}") == {accented["id"]}  # every word required
    assert found(f"acao {tag}") == found(f"ação {tag}") == {plain["id"]}
    assert found(f"boleto pix {tag}") == set()
    assert len(found(f"não {tag}", by=b)) == 1  # b finds b's only
    assert found(f"{tag}", conversation_id=mine) == {accented["id"], plain["id"]}
    hits = desk.search(a, f"boleto {tag}")
    assert hits[0]["body"] == f"Não recebi o boleto {tag}"  # hits are messages, opened (and audited)
    assert desk.api.get("/v1/messages/search", a.token, params={"q": tag, "conversation_id": theirs}).status_code \
        == 404
    # newest first, paged by cursor
    page = desk.get(a, "/v1/messages/search", q=tag, limit=1)
    assert [m["id"] for m in page["items"]] == [plain["id"]] and page["next_cursor"]
    rest = desk.get(a, "/v1/messages/search", q=tag, limit=1, cursor=page["next_cursor"])
    assert [m["id"] for m in rest["items"]] == [accented["id"]]


# -- attachments -----------------------------------------------------------------------------------------------


def test_an_attachment_is_uploaded_linked_and_downloaded_as_sniffed(desk):
    a, b = desk.staff("a"), desk.staff("b")
    team = desk.team(a, b)
    cid = desk.conversation(a, desk.customer(), team_id=team, assignee_id=a.id)["id"]
    image = png()
    uploaded = desk.upload(a, image, "comprovante.txt", conversation_id=cid)  # the name says text, the bytes PNG
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()
    assert (attachment["content_type"], attachment["size"]) == ("image/png", len(image))
    import hashlib

    assert attachment["sha256"] == hashlib.sha256(image).hexdigest()
    sent = desk.send(a, cid, "Segue o comprovante", attachment_ids=[attachment["id"]])
    assert [x["id"] for x in sent["attachments"]] == [attachment["id"]]
    got = desk.api.get(f"/v1/attachments/{attachment['id']}", a.token)
    assert got.status_code == 200 and got.content == image and got.headers["Content-Type"] == "image/png"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert desk.api.get(f"/v1/attachments/{attachment['id']}", b.token).status_code == 404  # not b's conversation
    too_big = desk.upload(a, b"\0" * (10 * 1024 * 1024 + 1), "grande.bin", conversation_id=cid)
    assert too_big.status_code == 413


# -- the audit log -----------------------------------------------------------------------------------------------


def test_every_read_of_content_is_in_the_audit_log(desk, dpo):
    a = desk.staff("a")
    customer = desk.customer()
    cid = desk.conversation(a, customer, team_id=desk.team(a), subject="Assunto auditado")["id"]
    tag = words("aud")
    mid = desk.send(a, cid, f"Conteúdo auditado {tag}", direction="incoming")["id"]
    reply = desk.send(a, cid, "Resposta auditada")["id"]  # a page of two bodies: their records travel as one batch
    chat = desk.chat(a, desk.staff("b"), title="Sala auditada")
    chat_mid = desk.post(a, chat["id"], "Conversa interna")["id"]
    attachment = desk.upload(a, png(), "foto.png", conversation_id=cid).json()
    reads = {
        "conversation": (f"/v1/conversations/{cid}", None, ("conversation", customer, ["subject"])),
        "page": (f"/v1/conversations/{cid}/messages", None, ("message", customer, ["body"])),
        "message": (f"/v1/messages/{mid}", None, ("message", customer, ["body"])),
        "history": (f"/v1/messages/{mid}/history", None, ("message", customer, ["body"])),
        "search": ("/v1/messages/search", {"q": tag}, ("message", customer, ["body"])),
        "chat": (f"/v1/chats/{chat['id']}", None, ("chat", a.id, ["title"])),
        "chat page": (f"/v1/chats/{chat['id']}/messages", None, ("message", a.id, ["body"])),
        "attachment": (f"/v1/attachments/{attachment['id']}", None, ("attachment", customer, None)),
    }
    request_ids = {}
    for name, (path, params, _) in reads.items():
        request_ids[name] = new_request_id(f"read-{name}")
        response = desk.api.get(path, a.token, params=params, headers={"X-Request-ID": request_ids[name]})
        assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    for name, (_, _, (resource_type, subject, fields)) in reads.items():
        expected = {"service": "messaging", "action": "read", "resource_type": resource_type, "subject_id": subject,
                    "actor_id": a.id, "outcome": "success", **({"fields": fields} if fields else {})}
        wait_for_audit(desk.api, dpo, expected, what=f"the {name} read", request_id=request_ids[name])
    for message_id in (mid, reply):  # each body of the page its own record
        wait_for_audit(desk.api, dpo, {"resource_type": "message", "resource_id": message_id, "fields": ["body"]},
                       what=f"the page's read of {message_id}", request_id=request_ids["page"])
    assert chat_mid


# -- nothing in clear where it must not be (R3.1, R5.3) ---------------------------------------------------------------


def test_no_body_subject_title_or_search_word_in_clear_in_events_outbox_broker_tables_or_logs(desk, platform):
    a, b = desk.staff("a"), desk.staff("b")
    team = desk.team(a, b)
    secrets = {
        "body": f"Meu cartão {words('crt')} foi clonado ontem",
        "note": f"Anotação privada {words('prv')} sobre o cliente",
        "edited": f"Texto corrigido {words('edt')} pela atendente",
        "subject": f"Assunto sigiloso {words('sbj')}",
        "title": f"Grupo reservado {words('ttl')}",
        "chat": f"Conversa entre colegas {words('cht')}",
        "file": f"exame-{words('fil')}.png",
    }
    with broker_tap(platform) as tap:
        cid = desk.conversation(a, desk.customer(), team_id=team, subject=secrets["subject"])["id"]
        sent = desk.send(a, cid, secrets["body"], direction="incoming")
        desk.send(a, cid, secrets["note"], private=True)
        desk.api.patch(f"/v1/messages/{sent['id']}", a.token, json={"body": secrets["edited"]})
        chat = desk.chat(a, b, title=secrets["title"])
        desk.post(b, chat["id"], secrets["chat"])
        desk.upload(a, png(), secrets["file"], conversation_id=cid)
        for word in (secrets["body"].split()[2], secrets["chat"].split()[3]):
            desk.search(a, word)
        desk.get(a, f"/v1/conversations/{cid}/messages")
        desk.get(a, f"/v1/messages/{sent['id']}/history")
        rid = new_request_id("privacy-scan-last")
        desk.api.get(f"/v1/chats/{chat['id']}/messages", b.token, headers={"X-Request-ID": rid})
        wait_for(lambda: any(rid in m["body"] for m in tap()), timeout=20, interval=0.1)  # the last read's audit
        messages = tap()
    scanner = LeakScanner(list(secrets.values()) + [secrets["body"].split()[2], secrets["chat"].split()[3]])
    urls = platform.database_urls
    sources = {
        "messaging tables": database_texts(urls["messaging"]),  # every table: read models, search index, outbox
        "events and outboxes": [pair for service, url in urls.items() if service != "messaging"
                                for pair in database_texts(url, ("events", "outbox"))],
        "audit records": database_texts(urls["privacy"], ("audit_records",)),
        "broker": [(m["routing_key"], m["body"]) for m in messages] + [(m["routing_key"], m["headers"])
                                                                       for m in messages],
        "logs": list(log_texts(platform.log_dir)),
    }
    for kind, pairs in sources.items():
        assert len(pairs) >= 3, f"too little to scan in {kind}: {len(pairs)}"
        scanner.assert_clean(pairs)
    assert any(rid in text for _, text in sources["logs"])  # the logs cover the scenario


# -- erasure --------------------------------------------------------------------------------------------------


def test_erasing_one_customer_leaves_their_messages_unreadable_and_anothers_intact(desk, platform):
    a = desk.staff("a")
    team = desk.team(a)
    erased_customer, kept_customer = desk.customer("Apagada"), desk.customer("Mantida")
    tag_gone, tag_kept = words("gon"), words("kep")
    gone = desk.conversation(a, erased_customer, team_id=team, subject="Assunto a apagar")["id"]
    kept = desk.conversation(a, kept_customer, team_id=team, subject="Assunto a manter")["id"]
    gone_messages = [desk.send(a, gone, f"Dados da cliente {tag_gone} {n}", direction="incoming")["id"]
                     for n in range(3)] + [desk.send(a, gone, f"Resposta {tag_gone}")["id"]]
    kept_message = desk.send(a, kept, f"Outra cliente {tag_kept}", direction="incoming")["id"]
    assert len(desk.search(a, tag_gone)) == 4

    with broker_tap(platform, ("messaging.events",)) as tap:
        with messaging_as(platform, "privacy") as messaging:
            answer = messaging.erase_subject(erased_customer)
            again = messaging.erase_subject(erased_customer)  # idempotent
        assert (answer["subject_id"], answer["erased"], answer["shredded"]) == (erased_customer, True, True)
        assert again["subject_id"] == erased_customer and again["shredded"] is False

        def erased_events() -> list[dict]:
            return [e for e in events_of(tap(), "messaging.subject_erased.v1")
                    if e["data"]["subject_id"] == erased_customer]

        wait_for(lambda: len(erased_events()) >= 2, timeout=15, interval=0.1)
        # both requests confirmed; only the first shredded (its messages are counted by the purge that follows)
        assert [e["data"]["shredded"] for e in erased_events()] == [True, False]
        purged = wait_for(lambda: [e for e in events_of(tap(), "messaging.subject_purged.v1")
                                   if e["data"]["subject_id"] == erased_customer], timeout=15, interval=0.1)
        assert [e["data"]["messages"] for e in purged] == [4]

    for mid in gone_messages:
        assert desk.get(a, f"/v1/messages/{mid}")["body"] is None
        assert all(v["body"] is None for v in desk.get(a, f"/v1/messages/{mid}/history")["items"])
    assert all(m["body"] is None for m in desk.get(a, f"/v1/conversations/{gone}/messages")["items"])
    assert desk.get(a, f"/v1/conversations/{gone}")["subject"] is None
    assert desk.search(a, tag_gone) == []
    # the other customer's stay as they were
    assert desk.get(a, f"/v1/messages/{kept_message}")["body"] == f"Outra cliente {tag_kept}"
    assert desk.get(a, f"/v1/conversations/{kept}")["subject"] == "Assunto a manter"
    assert [m["id"] for m in desk.search(a, tag_kept)] == [kept_message]

