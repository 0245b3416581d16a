"""Messaging's SQL adapters on SQLite and PostgreSQL through the real unit of work.

The projection: a message sent writes its row, its first version and its conversation's last activity, an
edit its row and its next version; on PostgreSQL each of those events is one statement (the first changes
as data-modifying CTEs of the last), on SQLite one statement a change: the same rows either way. The reads
of every request (statements built once, with parameters): a conversation, a message, a page of messages
either way from an anchor, a viewer's teams when the rule needs them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_messaging.adapters.ports import Person
from upgestao_messaging.adapters.projections import Delete, Insert, Update, _shape, projections
from upgestao_messaging.adapters.sql_repositories import with_sql_repositories
from upgestao_messaging.domain.search import TermHasher
from upgestao_messaging.service_layer.access import Deps
from upgestao_messaging.service_layer.api import MessagingApi
from upgestao_messaging.service_layer.attachments import SealedAttachments

ROLES = {"admin": frozenset({"conversations.read", "conversations.read_all", "conversations.write",
                              "teams.manage"}),
         "attendant": frozenset({"conversations.read", "conversations.write"})}
ADMIN, ANA, BIA, CUSTOMER = (str(uuid.uuid4()) for _ in range(4))
PEOPLE = {ADMIN: Person(ADMIN, "staff", "admin", True), ANA: Person(ANA, "staff", "attendant", True),
          BIA: Person(BIA, "staff", "attendant", True), CUSTOMER: Person(CUSTOMER, "customer", None, True)}


class Directory:
    def lookup(self, ids):
        return {i: PEOPLE[i] for i in ids if i in PEOPLE}


@pytest.fixture
def desk(messaging_database):
    engine = create_engine(messaging_database)
    vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
    folds = tuple(projections())

    def api(user_id: str) -> MessagingApi:
        context = RequestContext(request_id=str(uuid.uuid4()), actor_id=user_id, actor_role=PEOPLE[user_id].role)
        return MessagingApi(Deps(
            unit_of_work=lambda: with_sql_repositories(UnitOfWork(engine, "messaging", context, projections=folds,
                                                                  vault=vault)),
            permissions_of=lambda role: ROLES.get(role or "", frozenset()), directory=Directory(),
            hasher=TermHasher(b"projection-test-search-key-012345"),
            attachments=SealedAttachments(now=lambda: datetime.now(UTC))))

    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: statements.append(statement))
    yield engine, api, statements
    engine.dispose()


def test_a_message_sent_and_edited_writes_its_rows_in_one_statement_an_event_on_postgresql(desk) -> None:
    engine, api, statements = desk
    conversation = api(ADMIN).open_conversation({"customer_id": CUSTOMER, "channel": "whatsapp", "assignee_id": ANA})
    statements.clear()
    sent = api(ANA).send_message(conversation["id"], {"body": "Olá, tudo certo?", "direction": "outgoing"})["message"]
    send_statements = list(statements)
    statements.clear()
    api(ANA).edit_message(sent["id"], "Olá, tudo certo com o pedido?")
    edit_statements = list(statements)

    with engine.connect() as conn:
        message = conn.execute(sa.text("SELECT * FROM messages WHERE id = :id"), {"id": sent["id"]}).mappings().one()
        versions = conn.execute(sa.text("SELECT version, editor_id, body_sealed FROM message_versions "
                                        "WHERE message_id = :id ORDER BY version"), {"id": sent["id"]}).all()
        activity = conn.execute(sa.text("SELECT last_message_at, last_activity_at FROM conversations WHERE id = :id"),
                                {"id": conversation["id"]}).one()
        position = conn.execute(sa.text("SELECT position FROM events WHERE stream_id = :s AND version = 1"),
                                {"s": f"message-{sent['id']}"}).scalar_one()
    assert (message["container_kind"], message["container_id"], message["author_id"], message["version"],
            message["position"], message["deleted"]) == ("conversation", conversation["id"], ANA, 2, position, False)
    assert message["attachment_ids"] in ([], "[]")
    assert [(v.version, v.editor_id) for v in versions] == [(1, ANA), (2, ANA)]
    assert message["body_sealed"] == versions[1].body_sealed != versions[0].body_sealed
    assert activity.last_message_at is not None and activity.last_message_at == activity.last_activity_at
    assert api(ANA).messages(conversation["id"])["items"][0]["body"] == "Olá, tudo certo com o pedido?"

    def writing(found: list[str], table: str) -> list[str]:
        return [s for s in found if f"INSERT INTO {table} " in s or f"UPDATE {table} " in s]

    sent_rows = writing(send_statements, "messages") + writing(send_statements, "message_versions") + writing(
        send_statements, "conversations")
    edited_rows = writing(edit_statements, "messages") + writing(edit_statements, "message_versions")
    if engine.dialect.name == "postgresql":
        assert len(set(sent_rows)) == 1 and sent_rows[0].startswith("WITH ")
        assert len(set(edited_rows)) == 1 and edited_rows[0].startswith("WITH ")
    else:
        assert len(sent_rows) == 3 and len(edited_rows) == 2


def test_pages_either_way_a_message_and_the_teams_a_queued_conversation_needs(desk) -> None:
    engine, api, statements = desk
    team = api(ADMIN).create_team("Suporte", [ANA])["id"]
    own, queued = (api(ADMIN).open_conversation({"customer_id": CUSTOMER, "channel": "whatsapp", "team_id": team,
                                                 "assignee_id": assignee})["id"] for assignee in (ANA, None))
    ids = [api(ANA).send_message(own, {"body": f"mensagem {i}", "direction": "outgoing"})["message"]["id"]
           for i in range(5)]
    elsewhere = api(ANA).send_message(queued, {"body": "na fila", "direction": "outgoing"})["message"]["id"]

    def page(**kwargs) -> list[str]:
        return [m["id"] for m in api(ANA).messages(own, **kwargs)["items"]]

    assert page(limit=2) == ids[3:]
    statements.clear()
    assert page(before=ids[3], limit=2) == ids[1:3]
    assert sum("FROM messages" in s for s in statements) == 1  # the anchor is the page's subquery
    assert page(before=ids[1], limit=5) == ids[:1]
    assert page(after=ids[0], limit=2) == ids[1:3]
    assert page(after=ids[4]) == []
    assert api(ANA).messages(own, before=ids[1], limit=1)["has_more_before"] is False
    assert page(before=ids[0]) == [] and page(after=ids[4]) == []  # nothing there: no error
    for anchor in (elsewhere, str(uuid.uuid4())):  # a message of another conversation, or none: 422
        for way in ("before", "after"):
            with pytest.raises(ServiceError) as refused:
                api(ANA).messages(own, **{way: anchor})
            assert (refused.value.status, refused.value.extensions["errors"][0]["field"]) == (422, way)
    assert api(ANA).message(ids[2])["body"] == "mensagem 2"
    statements.clear()
    assert [m["body"] for m in api(ANA).messages(queued)["items"]] == ["na fila"]  # through her team's queue
    assert sum("team_members" in s for s in statements) == 1
    with pytest.raises(ServiceError) as refused:  # not hers, nor her team's
        api(BIA).messages(own)
    assert refused.value.status == 404


def test_only_inserts_and_updates_of_distinct_tables_matched_by_values_are_one_statement() -> None:
    row = {"id": "m-1"}
    assert _shape([Insert("messages", row), Update("conversations", {"id": "c-1"}, {"status": "open"})])
    assert _shape([Insert("messages", row)]) is None  # one change: nothing to combine
    assert _shape([Insert("team_members", row), Insert("team_members", row)]) is None  # one table twice
    assert _shape([Delete("chat_members", row), Update("chats", {"id": "c-1"}, {"title": "x"})]) is None
    assert _shape([Insert("messages", row), Update("conversations", {"id": None}, {"status": "open"})]) is None


def test_the_teams_of_several_users_are_one_query(desk) -> None:
    engine, api, statements = desk
    first = api(ADMIN).create_team("Suporte", [ANA, BIA])["id"]
    second = api(ADMIN).create_team("Vendas", [ANA])["id"]
    unit = with_sql_repositories(UnitOfWork(engine, "messaging", RequestContext(request_id="r", actor_id=ADMIN)))
    with unit as uow:
        statements.clear()
        found = uow.teams.ids_of_members([ANA, BIA, ADMIN])
        assert len(statements) == 1
        assert uow.teams.ids_of_members([]) == {} and len(statements) == 1
    assert found == {ANA: frozenset({first, second}), BIA: frozenset({first}), ADMIN: frozenset()}


def test_a_search_of_messages_of_several_customers_opens_their_bodies_in_one_statement_each(desk) -> None:
    """The hits' bodies of every data subject: one audit insert (a record each) and one statement for the keys,
    whatever the number of customers (each one's were a statement of their own)."""
    engine, api, statements = desk
    customers = [str(uuid.uuid4()) for _ in range(4)]
    PEOPLE.update({c: Person(c, "customer", None, True) for c in customers})
    sent = []
    for n, customer in enumerate(customers):
        conversation = api(ADMIN).open_conversation({"customer_id": customer, "channel": "whatsapp",
                                                     "assignee_id": ANA})["id"]
        sent += [api(ANA).send_message(conversation, {"body": f"pedido atrasado {n}.{i}", "direction": "outgoing"})
                 ["message"]["id"] for i in range(2)]
    statements.clear()
    found = api(ANA).search("pedido atrasado")["items"]
    assert [m["id"] for m in found] == sent[::-1]
    assert [m["body"] for m in found] == [f"pedido atrasado {n}.{i}" for n in range(3, -1, -1) for i in (1, 0)]
    assert sum("INSERT INTO outbox" in s for s in statements) == 1
    assert sum("subject_keys" in s for s in statements) == 1
    with engine.connect() as conn:
        (audit,) = conn.execute(sa.text("SELECT body FROM outbox WHERE routing_key = 'audit.messaging.read' "
                                        "ORDER BY id DESC LIMIT 1")).scalars()
    records = (audit if isinstance(audit, dict) else json.loads(audit))["records"]
    assert [(r["resource_id"], r["fields"], r["purpose"]) for r in records] == [(m, ["body"], "search")
                                                                                for m in sent[::-1]]
    assert {r["subject_id"] for r in records} == set(customers) and len({r["audit_id"] for r in records}) == 8


def test_a_messages_attachment_ids_read_back_as_the_list_stored(desk) -> None:
    """``attachment_ids`` (a JSON list) is read as its text and decoded by the repository: ``[]`` and a list."""
    from upgestao_messaging.adapters.tables import messages

    engine, api, _ = desk
    conversation = api(ADMIN).open_conversation({"customer_id": CUSTOMER, "channel": "whatsapp", "assignee_id": ANA})
    ids = [api(ANA).send_message(conversation["id"], {"body": f"m {i}", "direction": "outgoing"})["message"]["id"]
           for i in range(2)]
    attached = [str(uuid.uuid4()), str(uuid.uuid4())]
    with engine.begin() as conn:
        conn.execute(messages.update().where(messages.c.id == ids[1]).values(attachment_ids=attached))
    context = RequestContext(request_id=str(uuid.uuid4()), actor_id=ANA, actor_role="attendant")
    with with_sql_repositories(UnitOfWork(engine, "messaging", context)) as uow:
        assert uow.messages.get(ids[0]).attachment_ids == [] and uow.messages.get(ids[1]).attachment_ids == attached
        many = uow.messages.get_many(ids)
        assert (many[ids[0]].attachment_ids, many[ids[1]].attachment_ids) == ([], attached)
        page = uow.messages.before("conversation", conversation["id"], None, 10)
        assert [r.attachment_ids for r in page] == [attached, []]
        assert page[1].attachment_ids is not many[ids[0]].attachment_ids  # each record its own list
