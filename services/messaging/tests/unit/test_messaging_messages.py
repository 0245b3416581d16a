"""Messages on fakes: sealing and audited reads, idempotent sends, paging, edit window and history,
deletion, search with accents and visibility, read cursors, unread counts and receipts."""

from __future__ import annotations

import pytest
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.leaks import LeakScanner


@pytest.fixture
def desk(world):
    admin = world.staff("admin")
    agent, colleague = world.staff("attendant"), world.staff("attendant")
    team = world.api(admin).create_team("Suporte", [agent, colleague])["id"]
    customer = world.customer()
    c = world.api(admin).open_conversation({"customer_id": customer, "channel": "web", "team_id": team})["id"]
    return world, admin, agent, colleague, customer, c


def _send(world, user, c, body, **extra):
    return world.api(user).send_message(c, {"body": body, "direction": "outgoing", **extra})


def test_a_body_is_sealed_under_the_customer_and_never_leaves_in_clear(desk):
    world, admin, agent, colleague, customer, c = desk
    sent = _send(world, agent, c, "Seu CPF confere, Joaquina")
    assert sent["created"] is True and sent["message"]["body"] == "Seu CPF confere, Joaquina"
    row = world.store.rows("messages")[0]
    assert row["key_subject_id"] == customer and row["body_sealed"].startswith("fake1:")
    event = world.store.published("messaging.message_created.v1")[0]["data"]
    assert event == {"message_id": sent["message"]["id"], "conversation_id": c, "chat_id": None,
                     "customer_id": customer, "author_id": agent, "direction": "outgoing", "private": False,
                     "attachment_count": 0}
    scanner = LeakScanner(["Seu CPF confere, Joaquina", "Joaquina"])
    assert scanner.assert_clean({"outbox": world.store.outbox, "events": [e.data for e in world.store.events],
                                 "rows": world.store.rows("messages")}) > 0


def test_every_read_of_a_body_is_audited_with_its_subject(desk):
    world, admin, agent, colleague, customer, c = desk
    ids = [_send(world, agent, c, f"mensagem {n}")["message"]["id"] for n in range(3)]
    before = len(world.store.audit_records(action="read", resource_type="message"))
    page = world.api(colleague).messages(c)
    assert [m["id"] for m in page["items"]] == ids
    reads = world.store.audit_records(action="read", resource_type="message")[before:]
    assert [(r["resource_id"], r["subject_id"], r["fields"], r["purpose"], r["actor_id"]) for r in reads] == [
        (i, customer, ["body"], "conversation", colleague) for i in ids]


def test_private_notes_need_outgoing_and_incoming_needs_record_incoming(desk):
    world, admin, agent, colleague, customer, c = desk
    note = _send(world, agent, c, "nota interna", private=True)["message"]
    assert note["private"] is True
    assert world.store.published("messaging.message_created.v1")[-1]["data"]["private"] is True
    with pytest.raises(ServiceError) as caught:
        world.api(agent).send_message(c, {"body": "x", "direction": "incoming", "private": True})
    assert caught.value.extensions["errors"][0]["field"] == "private"
    with pytest.raises(ServiceError) as caught:
        world.api(agent).send_message(c, {"body": "x", "direction": "sideways"})
    assert caught.value.extensions["errors"][0]["field"] == "direction"
    with pytest.raises(ServiceError) as caught:
        world.api(world.staff("dpo")).send_message(c, {"body": "x", "direction": "incoming"})
    assert caught.value.status == 403  # the role lacks the permission: refused before any lookup


def test_client_message_id_makes_sending_idempotent(desk):
    world, admin, agent, colleague, customer, c = desk
    first = _send(world, agent, c, "olá", client_message_id="abc-1")
    again = _send(world, agent, c, "olá (retry)", client_message_id="abc-1")
    assert first["created"] is True and again["created"] is False
    assert again["message"]["id"] == first["message"]["id"] and again["message"]["body"] == "olá"
    other_author = _send(world, colleague, c, "olá", client_message_id="abc-1")
    assert other_author["created"] is True and other_author["message"]["id"] != first["message"]["id"]
    assert len(world.store.rows("messages")) == 2
    assert len(world.store.published("messaging.message_created.v1")) == 2
    for bad in ("", "x" * 101, 7):
        with pytest.raises(ServiceError):
            _send(world, agent, c, "x", client_message_id=bad)


def test_paging_by_position(desk):
    world, admin, agent, colleague, customer, c = desk
    ids = [_send(world, agent, c, f"m{n}")["message"]["id"] for n in range(120)]
    api = world.api(colleague)
    latest = api.messages(c)
    assert [m["id"] for m in latest["items"]] == ids[70:]
    assert (latest["has_more_before"], latest["has_more_after"]) == (True, False)
    older = api.messages(c, before=ids[70])
    assert [m["id"] for m in older["items"]] == ids[20:70] and older["has_more_before"] and older["has_more_after"]
    oldest = api.messages(c, before=ids[20], limit=200)
    assert [m["id"] for m in oldest["items"]] == ids[:20] and not oldest["has_more_before"]
    newer = api.messages(c, after=ids[100], limit=10)
    assert [m["id"] for m in newer["items"]] == ids[101:111] and newer["has_more_after"]
    assert api.messages(c, after=ids[-1])["items"] == []
    for kwargs, field in (({"limit": 201}, "limit"), ({"before": "x"}, "before"),
                          ({"before": ids[0], "after": ids[1]}, "after")):
        with pytest.raises(ServiceError) as caught:
            api.messages(c, **kwargs)
        assert caught.value.extensions["errors"][0]["field"] == field
    other = world.api(admin).open_conversation({"customer_id": customer, "channel": "web"})["id"]
    with pytest.raises(ServiceError):
        world.api(admin).messages(other, before=ids[5])  # a message of another conversation


def test_edit_window_history_and_moderation(desk):
    world, admin, agent, colleague, customer, c = desk
    mid = _send(world, agent, c, "versão um")["message"]["id"]
    api = world.api(agent)
    edited = api.edit_message(mid, "versão dois")
    assert edited["body"] == "versão dois" and edited["edited_at"] is not None
    with pytest.raises(ServiceError) as caught:
        world.api(colleague).edit_message(mid, "minha")
    assert caught.value.status == 403 and "author" in caught.value.detail
    world.clock.advance(901)
    with pytest.raises(ServiceError) as caught:
        api.edit_message(mid, "tarde demais")
    assert caught.value.status == 403 and "900 seconds" in caught.value.detail
    assert world.store.audit_records(outcome="denied", resource_id=mid, purpose="edit window")
    assert world.api(admin).edit_message(mid, "versão três (admin)")["body"] == "versão três (admin)"
    history = world.api(colleague).message_history(mid)["items"]
    assert [(h["version"], h["body"]) for h in history] == [(1, "versão um"), (2, "versão dois"),
                                                            (3, "versão três (admin)")]
    assert [h["editor_id"] for h in history] == [agent, agent, admin]
    assert world.store.audit_records(purpose="history")
    edited_event = world.store.published("messaging.message_edited.v1")[-1]["data"]
    assert edited_event["body_version"] == 3 and "body" not in edited_event and "sealed" not in edited_event


def test_delete_keeps_the_history_readable(desk):
    world, admin, agent, colleague, customer, c = desk
    mid = _send(world, agent, c, "apagar isto")["message"]["id"]
    deleted = world.api(agent).delete_message(mid)
    assert deleted["deleted"] is True and deleted["body"] is None
    [audited] = world.store.audit_records(action="delete", resource_id=mid)
    assert (audited["subject_id"], audited["fields"], audited["actor_id"]) == (customer, ["body"], agent)
    assert world.api(colleague).message(mid)["body"] is None
    assert world.api(colleague).message_history(mid)["items"][0]["body"] == "apagar isto"
    for again in (lambda: world.api(admin).delete_message(mid), lambda: world.api(admin).edit_message(mid, "volta")):
        with pytest.raises(ServiceError) as caught:
            again()
        assert caught.value.status == 409
    assert world.api(colleague).search("apagar")["items"] == []
    assert world.store.published("messaging.message_deleted.v1")[0]["data"]["editor_id"] == agent


def test_search_is_accent_and_case_insensitive_all_words_newest_first(desk):
    world, admin, agent, colleague, customer, c = desk
    a = _send(world, agent, c, "Não consigo pagar a fatura")["message"]["id"]
    b = _send(world, agent, c, "A FATURA chegou, nao se preocupe")["message"]["id"]
    _send(world, agent, c, "outra coisa")
    api = world.api(colleague)
    assert [m["id"] for m in api.search("nao fatura")["items"]] == [b, a]
    assert [m["id"] for m in api.search("NÃO consigo")["items"]] == [a]
    assert api.search("fatura inexistente")["items"] == []
    first = api.search("fatura", limit=1)
    assert [m["id"] for m in first["items"]] == [b] and first["next_cursor"]
    assert [m["id"] for m in api.search("fatura", limit=1, cursor=first["next_cursor"])["items"]] == [a]
    assert world.store.audit_records(purpose="search")[-1]["subject_id"] == customer
    world.api(agent).edit_message(a, "consegui pagar")
    assert api.search("consigo")["items"] == [] and [m["id"] for m in api.search("consegui")["items"]] == [a]
    with pytest.raises(ServiceError):
        api.search("   ")
    with pytest.raises(ServiceError):
        api.search("x", cursor="abc")


def test_read_cursors_unread_and_receipts_for_two_users(desk):
    world, admin, agent, colleague, customer, c = desk
    incoming = [world.api(agent).send_message(c, {"body": f"cliente {n}", "direction": "incoming"})["message"]["id"]
                for n in range(3)]
    own = _send(world, agent, c, "resposta")["message"]["id"]
    assert world.api(agent).unread() == {"total": 0, "items": []}  # recorded by the agent: their own
    assert world.api(colleague).unread() == {"total": 4, "items": [{"conversation_id": c, "unread": 4}]}
    marked = world.api(colleague).mark_read(c, incoming[1])
    assert marked["message_id"] == incoming[1] and marked["user_id"] == colleague
    assert world.api(colleague).unread()["total"] == 2
    assert world.api(colleague).conversation(c)["unread"] == 2
    back = world.api(colleague).mark_read(c, incoming[0])  # never moves back
    assert back["message_id"] == incoming[1]
    world.api(admin).mark_read(c, own)
    receipts = world.api(agent).read_receipts(c)["items"]
    assert sorted((r["user_id"], r["message_id"]) for r in receipts) == sorted([(colleague, incoming[1]),
                                                                                 (admin, own)])
    assert world.store.published("messaging.conversation_read.v1")[0]["data"] == {
        "conversation_id": c, "chat_id": None, "user_id": colleague, "message_id": incoming[1]}
    world.api(agent).delete_message(incoming[2])
    assert world.api(colleague).unread()["total"] == 1  # a deleted message is not unread
    with pytest.raises(ServiceError):
        world.api(colleague).mark_read(c, c)


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 20


def test_attachments_are_uploaded_sent_described_and_downloaded_by_the_rule(desk):
    import base64

    world, admin, agent, colleague, customer, c = desk
    outsider = world.staff("attendant")
    content = base64.b64encode(PNG).decode()
    uploaded = world.api(agent).upload_attachment({"name": "comprovante.png", "content_b64": content,
                                                   "conversation_id": c})
    assert (uploaded["name"], uploaded["content_type"], uploaded["size"]) == ("comprovante.png", "image/png", len(PNG))
    with pytest.raises(ServiceError) as caught:  # not the uploader's colleague to send
        world.api(colleague).send_message(c, {"body": "segue", "direction": "outgoing",
                                              "attachment_ids": [uploaded["id"]]})
    assert caught.value.status == 422
    sent = _send(world, agent, c, "segue o comprovante", attachment_ids=[uploaded["id"]])["message"]
    assert [a["id"] for a in sent["attachments"]] == [uploaded["id"]]
    assert world.store.published("messaging.message_created.v1")[-1]["data"]["attachment_count"] == 1
    page = world.api(colleague).messages(c)["items"]
    assert page[-1]["attachments"][0]["sha256"] == uploaded["sha256"]
    assert world.api(colleague).attachment(uploaded["id"])["content_b64"] == content
    with pytest.raises(ServiceError) as caught:
        world.api(outsider).attachment(uploaded["id"])
    assert caught.value.status == 404
    for bad, field in (({"name": "x.png", "content_b64": "%%%", "conversation_id": c}, "content_b64"),
                       ({"name": "x.png", "content_b64": content}, "conversation_id"),
                       ({"name": "x.png", "content_b64": content, "conversation_id": c, "chat_id": c},
                        "conversation_id")):
        with pytest.raises(ServiceError) as caught:
            world.api(agent).upload_attachment(bad)
        assert caught.value.extensions["errors"][0]["field"] == field
    with pytest.raises(ServiceError) as caught:  # into a conversation one does not see: as absent
        world.api(outsider).upload_attachment({"name": "x.png", "content_b64": content, "conversation_id": c})
    assert caught.value.status == 404
    world.api(None, caller_service="privacy").erase_subject(customer)
    with pytest.raises(ServiceError) as caught:
        world.api(colleague).attachment(uploaded["id"])
    assert caught.value.status == 404
    assert world.api(colleague).messages(c)["items"][-1]["attachments"] == []


def test_a_send_that_loses_its_conversations_stream_to_a_concurrent_reopening_runs_again(desk):
    from upgestao_messaging.service_layer.attachments import SealedAttachments

    world, admin, agent, colleague, customer, c = desk
    world.api(agent).update_conversation(c, {"status": "resolved"})

    class Meanwhile(SealedAttachments):
        """After the send's appends, before its commit: another customer message reopens the conversation."""

        raced = False

        def describe(self, uow, attachment_ids):
            if not Meanwhile.raced:
                Meanwhile.raced = True
                world.api(colleague).send_message(c, {"body": "ao mesmo tempo", "direction": "incoming"})
            return super().describe(uow, attachment_ids)

    sent = world.api(agent, attachments=Meanwhile(now=world.clock)).send_message(
        c, {"body": "cheguei primeiro?", "direction": "incoming"})
    assert sent["created"] is True and Meanwhile.raced
    assert sorted(m["body"] for m in world.api(admin).messages(c)["items"]) == ["ao mesmo tempo", "cheguei primeiro?"]
    reopenings = [e for e in world.store.published("messaging.conversation_status_changed.v1")
                  if e["data"]["reason"] == "incoming_message"]
    assert len(reopenings) == 1 and world.api(admin).conversation(c)["status"] == "open"


def test_search_refuses_too_many_words_and_goes_on_where_the_index_stopped(desk, monkeypatch):
    from upgestao_messaging.adapters.search_index import Hits
    from upgestao_messaging.domain.search import MAX_QUERY_WORDS

    world, admin, agent, colleague, customer, c = desk
    with pytest.raises(ServiceError) as caught:
        world.api(agent).search(" ".join(f"palavra{n}" for n in range(MAX_QUERY_WORDS + 1)))
    assert caught.value.extensions["errors"][0]["field"] == "q"
    older = _send(world, agent, c, "fatura antiga")["message"]
    asked = []

    def stopped_early(terms, *, visible, container=None, limit, before_position=None):
        asked.append(before_position)
        hits = Hits()
        hits.resume_before = 12345  # the work allowed for one call ran out before any hit
        return hits

    monkeypatch.setattr(world.index, "find", stopped_early)
    page = world.api(agent).search("fatura")
    assert page == {"items": [], "next_cursor": "12345"}
    monkeypatch.undo()
    assert [m["id"] for m in world.api(agent).search("fatura", cursor="12345")["items"]] == [older["id"]]
    assert asked == [None]


def test_the_sweep_removes_uploads_never_sent_and_keeps_sent_ones(desk):
    """An upload never sent is sealed personal data only its uploader can reach: the system's sweep drops it
    after UNLINKED_TTL; a sent attachment stays."""
    import base64

    from upgestao_messaging.service_layer.attachments import UNLINKED_TTL

    world, admin, agent, colleague, customer, c = desk
    content = base64.b64encode(PNG).decode()
    kept = world.api(agent).upload_attachment({"name": "enviado.png", "content_b64": content, "conversation_id": c})
    _send(world, agent, c, "segue", attachment_ids=[kept["id"]])
    dropped = world.api(agent).upload_attachment({"name": "rascunho.png", "content_b64": content,
                                                  "conversation_id": c})
    assert world.system().purge_unsent() == 0  # not yet abandoned
    world.clock.advance(UNLINKED_TTL.total_seconds() + 1)
    assert world.system().purge_unsent() == 1
    with pytest.raises(ServiceError) as caught:
        world.api(agent).attachment(dropped["id"])
    assert caught.value.status == 404
    assert world.api(agent).attachment(kept["id"])["content_b64"] == content
