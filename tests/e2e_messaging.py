"""End-to-end helpers for messaging (issue 13): a help desk's cast made fresh for each test (staff of
each role, a team, customers), conversations and messages through the gateway, messaging called as
another service over its own broker user (privacy's erasure), a tap on the broker and the scans of
what the platform stores and logs.

Every helper asserts the status it needs and says what it got: a test reads as the story it tells.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

# as in a service: every publish carries the user_id RabbitMQ checks (what messaging reads its caller from)
import upgestao_kernel.nameko_ext  # noqa: F401
import upgestao_kernel.nameko_ext.rpc  # noqa: F401  (answers rebuilt as ServiceError, not RemoteError)
from e2e_api import Api, create_user, staff_payload
from e2e_identity import create_dpo
from kombu import Connection, Exchange, Queue
from upgestao_kernel.leaks import table_texts

MESSAGING_TAGS = frozenset({"teams", "conversations", "messages", "chats", "attachments"})
# Messaging's operations whose service applies rules a JSON schema cannot state, so that data the document
# allows may get a 422 naming the field (tests/test_api_fuzz_e2e.py): ids that must name an active customer,
# staff user, team, attachment or a message of that conversation; rules between members (a snooze and its
# time, a private note's direction, a direct chat's one member, one container of an upload or a search); a
# cursor the API never gave; an upload's type sniffed from its bytes against an allow-list.
MEANING_CHECKED = frozenset({
    "POST /v1/teams", "PATCH /v1/teams/{team_id}", "POST /v1/conversations", "GET /v1/conversations",
    "PATCH /v1/conversations/{conversation_id}", "POST /v1/conversations/{conversation_id}/messages",
    "GET /v1/conversations/{conversation_id}/messages", "POST /v1/conversations/{conversation_id}/read",
    "GET /v1/messages/search", "POST /v1/chats", "POST /v1/chats/{chat_id}/messages",
    "GET /v1/chats/{chat_id}/messages", "POST /v1/chats/{chat_id}/members", "POST /v1/chats/{chat_id}/read",
    "POST /v1/attachments",
})


def png() -> bytes:
    """A small real PNG (messaging sniffs the type from the bytes)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (3, 3), (20, 160, 90)).save(out, "PNG")
    return out.getvalue()


@dataclass
class Person:
    """A staff user of the test: id, role and a valid access token."""

    id: str
    role: str
    token: str
    email: str = ""


@dataclass
class Desk:
    """One test's help desk, made fresh: the first admin, and what the test adds."""

    api: Api
    platform: Any
    admin: Person
    people: dict[str, Person] = field(default_factory=dict)

    # -- people ------------------------------------------------------------------------------------

    def staff(self, name: str, role: str = "attendant") -> Person:
        """A new staff user of ``role``, logged in (a dpo is made so by the system: no admin may)."""
        if role == "dpo":
            user, tokens = create_dpo(self.platform, self.api, self.admin.token)
        else:
            payload = staff_payload(role)
            created = self.api.post("/v1/users", self.admin.token, json=payload)
            assert created.status_code == 201, created.text
            user, tokens = created.json(), self.api.tokens(payload["email"], payload["password"])
        person = Person(user["id"], role, tokens["access_token"], user["email"])
        self.people[name] = person
        return person

    def customer(self, name: str = "Cliente") -> str:
        tag = uuid.uuid4().hex[:8]
        created = self.api.post("/v1/customers", self.admin.token,
                                json={"full_name": f"{name} {tag}", "email": f"cliente.{tag}@example.com.br"})
        assert created.status_code == 201, created.text
        return created.json()["id"]

    def team(self, *members: Person, name: str | None = None) -> str:
        created = self.api.post("/v1/teams", self.admin.token, json={
            "name": name or f"Equipe {uuid.uuid4().hex[:6]}", "member_ids": [m.id for m in members]})
        assert created.status_code == 201, created.text
        return created.json()["id"]

    # -- conversations and messages ---------------------------------------------------------------------

    def conversation(self, by: Person, customer_id: str, **over: Any) -> dict:
        body = {"customer_id": customer_id, "channel": "whatsapp", **over}
        created = self.api.post("/v1/conversations", by.token, json=body)
        assert created.status_code == 201, f"POST /v1/conversations {body}: {created.status_code} {created.text}"
        return created.json()

    def send(self, by: Person, conversation_id: str, body: str, direction: str = "outgoing",
             expect: int = 201, **over: Any) -> dict:
        sent = self.api.post(f"/v1/conversations/{conversation_id}/messages", by.token,
                             json={"body": body, "direction": direction, **over})
        assert sent.status_code == expect, f"send as {by.role}: {sent.status_code} {sent.text}"
        return sent.json()

    def chat(self, by: Person, *members: Person, kind: str = "group", title: str | None = None,
             expect: int = 201) -> dict:
        body = {"kind": kind, "member_ids": [m.id for m in members], **({"title": title} if title else {})}
        created = self.api.post("/v1/chats", by.token, json=body)
        assert created.status_code == expect, created.text
        return created.json()

    def post(self, by: Person, chat_id: str, body: str, expect: int = 201, **over: Any) -> dict:
        sent = self.api.post(f"/v1/chats/{chat_id}/messages", by.token, json={"body": body, **over})
        assert sent.status_code == expect, f"post as {by.role}: {sent.status_code} {sent.text}"
        return sent.json()

    def patch(self, by: Person, conversation_id: str, **changes: Any) -> dict:
        changed = self.api.patch(f"/v1/conversations/{conversation_id}", by.token, json=changes)
        assert changed.status_code == 200, f"PATCH {changes}: {changed.status_code} {changed.text}"
        return changed.json()

    def get(self, by: Person, path: str, **params: Any) -> dict:
        got = self.api.get(path, by.token, params=params or None)
        assert got.status_code == 200, f"GET {path} as {by.role}: {got.status_code} {got.text}"
        return got.json()

    def upload(self, by: Person, content: bytes, name: str, **container: str) -> Any:
        return self.api.post("/v1/attachments", by.token, data=content, params={"name": name, **container},
                             headers={"Content-Type": "application/octet-stream"})

    def search(self, by: Person, q: str, **params: Any) -> list[dict]:
        return self.get(by, "/v1/messages/search", q=q, limit=100, **params)["items"]

    def unread(self, by: Person) -> dict[str, int]:
        """container id -> unread count, and "total"."""
        answer = self.get(by, "/v1/conversations/unread")
        counts = {item.get("conversation_id") or item.get("chat_id"): item["unread"] for item in answer["items"]}
        return {**counts, "total": answer["total"]}


def new_desk(api: Api, platform, admin_token: str) -> Desk:
    me = api.get("/v1/me", admin_token)
    assert me.status_code == 200, me.text
    return Desk(api=api, platform=platform, admin=Person(me.json()["id"], "admin", admin_token, me.json()["email"]))


def words(tag: str | None = None) -> str:
    """A word no other message holds (letters only, so it survives normalisation as it is)."""
    alphabet = "bcdfghjklmnpqrstvwxz"
    raw = uuid.uuid4().int
    out = []
    for _ in range(10):
        raw, i = divmod(raw, len(alphabet))
        out.append(alphabet[i])
    return (tag or "") + "".join(out)


# -- messaging as another service (its own broker user) -------------------------------------------------


@contextmanager
def messaging_as(platform, service: str, timeout: float = 20) -> Iterator[Any]:
    """A proxy of messaging's RPC whose calls come from ``service``'s broker user (e.g. privacy's erasure)."""
    from nameko.standalone.rpc import ServiceRpcProxy

    with ServiceRpcProxy("messaging", {"AMQP_URI": platform.broker_uris[service], "serializer": "json"},
                         timeout=timeout) as proxy:
        yield proxy


# -- the broker, the databases, the logs -------------------------------------------------------------


@contextmanager
def broker_tap(platform, exchanges: tuple[str, ...] = ("messaging.events", "audit")) -> Iterator[Callable]:
    """A queue of our own bound to ``exchanges`` (every routing key): ``drain()`` -> every message so far,
    as {"body": text, "headers": dict, "routing_key": str}."""
    name = f"e2e-msg-tap-{uuid.uuid4().hex[:8]}"
    with Connection(platform.amqp_uri) as conn:
        channel = conn.channel()
        queue = Queue(name, exchange=Exchange(exchanges[0], type="topic", passive=True), routing_key="#",
                      durable=False, auto_delete=False, channel=channel)
        queue.declare()
        for exchange in exchanges[1:]:
            queue.bind_to(exchange=exchange, routing_key="#")
        messages: list[dict] = []

        def drain() -> list[dict]:
            while (message := queue.get(no_ack=True)) is not None:
                body = message.body.decode() if isinstance(message.body, bytes) else (
                    message.body if isinstance(message.body, str) else json.dumps(message.body))
                messages.append({"body": body, "headers": message.headers,
                                 "routing_key": message.delivery_info.get("routing_key")})
            return messages

        try:
            yield drain
        finally:
            queue.delete()


def events_of(messages: list[dict], event_type: str) -> list[dict]:
    """The published events of ``event_type`` among tapped messages (their parsed envelopes)."""
    out = []
    for message in messages:
        if message["routing_key"] == event_type:
            out.append(json.loads(message["body"]))
    return out


def database_texts(url: str, tables: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """``(db.table#n, row as text)`` of ``tables`` (default: every table) of one service's database."""
    engine = sa.create_engine(url)
    try:
        present = sa.inspect(engine).get_table_names()
        chosen = [t for t in present if tables is None or t in tables]
        label = url.rsplit("/", 1)[-1]
        return [(f"{label}.{where}", text) for table in chosen for where, text in table_texts(engine, table)]
    finally:
        engine.dispose()


def messaging_routes(document: dict) -> set[tuple[str, str]]:
    """Every (METHOD, path) of the OpenAPI document tagged as messaging's."""
    return {(method.upper(), path) for path, item in document["paths"].items() for method, operation in item.items()
            if method in ("get", "post", "put", "patch", "delete") and set(operation.get("tags", ())) & MESSAGING_TAGS}


# -- the audit-completeness scenarios (tests/test_audit_completeness_e2e.py) --------------------------------------
#
# One successful call of each personal-data route of messaging, with the one record it must leave (exactly
# one matching the request: a page or a search of one message, a person with one titled chat). Each scenario
# makes what it reads first, under other request ids. ``w`` is that test's World: the api, the admin, an
# attendant (``w.user``, ``w.token``), a customer, and ``w.extra`` for what scenarios share.


def _state(w) -> dict:
    """The attendant's team, and a helper desk acting as the admin (made once per World)."""
    if "messaging" not in w.extra:
        desk = Desk(api=w.api, platform=w.platform, admin=Person(w.admin_id, "admin", w.admin))
        me = Person(w.user["id"], "attendant", w.token, w.user["email"])
        w.extra["messaging"] = {"desk": desk, "me": me, "team": desk.team(me)}
    return w.extra["messaging"]


def _conversation(w, subject: str | None = None) -> str:
    st = _state(w)
    return st["desk"].conversation(st["me"], w.customer["id"], team_id=st["team"], assignee_id=w.user["id"],
                                   **({"subject": subject} if subject else {}))["id"]


def _message(w, body: str = "Uma mensagem") -> tuple[str, str]:
    """(a new conversation of the customer holding exactly one message, that message)."""
    cid = _conversation(w)
    return cid, _state(w)["desk"].send(_state(w)["me"], cid, body, direction="incoming")["id"]


def _chatter(w) -> tuple[Person, dict]:
    """A staff user (logged in) with exactly one titled group chat, holding one message of theirs."""
    st = _state(w)
    if "chatter" not in st:
        person = st["desk"].staff("chatter")
        chat = st["desk"].chat(person, st["me"], title="Sala da auditoria")
        st["desk"].post(person, chat["id"], "Mensagem da sala")
        st["chatter"] = (person, chat)
    return st["chatter"]


def _expect(w, action: str, resource_type: str, subject_id: str, fields: list[str], actor_id: str | None = None):
    return {"service": "messaging", "action": action, "resource_type": resource_type, "subject_id": subject_id,
            "actor_id": actor_id or w.user["id"], "fields": fields}


def open_conversation(w, rid: str) -> dict:
    _state(w)
    w.call("POST", "/v1/conversations", w.token, rid, 201, json={
        "customer_id": w.customer["id"], "channel": "web", "team_id": _state(w)["team"], "subject": "Auditável"})
    return _expect(w, "create", "conversation", w.customer["id"], ["subject"])


def read_conversation(w, rid: str) -> dict:
    cid = _conversation(w, subject="Assunto lido")
    w.call("GET", f"/v1/conversations/{cid}", w.token, rid, 200)
    return _expect(w, "read", "conversation", w.customer["id"], ["subject"])


def send_message(w, rid: str) -> dict:
    cid = _conversation(w)
    w.call("POST", f"/v1/conversations/{cid}/messages", w.token, rid, 201,
           json={"body": "Mensagem enviada", "direction": "outgoing"})
    return _expect(w, "create", "message", w.customer["id"], ["body"])


def page_messages(w, rid: str) -> dict:
    cid, _ = _message(w)
    w.call("GET", f"/v1/conversations/{cid}/messages", w.token, rid, 200)
    return _expect(w, "read", "message", w.customer["id"], ["body"])


def search_messages(w, rid: str) -> dict:
    word = words("aud")
    _message(w, f"Palavra {word}")
    w.call("GET", "/v1/messages/search", w.token, rid, 200, params={"q": word})
    return _expect(w, "read", "message", w.customer["id"], ["body"])


def read_message(w, rid: str) -> dict:
    _, mid = _message(w)
    w.call("GET", f"/v1/messages/{mid}", w.token, rid, 200)
    return _expect(w, "read", "message", w.customer["id"], ["body"])


def edit_message(w, rid: str) -> dict:
    cid = _conversation(w)
    mid = _state(w)["desk"].send(_state(w)["me"], cid, "Antes")["id"]  # one's own, within the edit window
    w.call("PATCH", f"/v1/messages/{mid}", w.token, rid, 200, json={"body": "Depois"})
    return _expect(w, "update", "message", w.customer["id"], ["body"])


def delete_message(w, rid: str) -> dict:
    cid = _conversation(w)
    mid = _state(w)["desk"].send(_state(w)["me"], cid, "A apagar")["id"]
    w.call("DELETE", f"/v1/messages/{mid}", w.token, rid, 200)
    return _expect(w, "delete", "message", w.customer["id"], ["body"])


def message_history(w, rid: str) -> dict:
    _, mid = _message(w)
    w.call("GET", f"/v1/messages/{mid}/history", w.token, rid, 200)
    return _expect(w, "read", "message", w.customer["id"], ["body"])


def create_chat(w, rid: str) -> dict:
    w.call("POST", "/v1/chats", w.token, rid, 201, json={"kind": "group", "member_ids": [create_user_id(w)],
                                                         "title": "Sala criada"})
    return _expect(w, "create", "chat", w.user["id"], ["title"])


def create_user_id(w) -> str:
    """A staff user who never logs in (bcrypt is slow): a member to add."""
    return create_user(w.api, w.admin)["id"]


def list_chats(w, rid: str) -> dict:
    person, _ = _chatter(w)
    w.call("GET", "/v1/chats", person.token, rid, 200)
    return _expect(w, "read", "chat", person.id, ["title"], actor_id=person.id)


def read_chat(w, rid: str) -> dict:
    person, chat = _chatter(w)
    w.call("GET", f"/v1/chats/{chat['id']}", person.token, rid, 200)
    return _expect(w, "read", "chat", person.id, ["title"], actor_id=person.id)


def post_in_chat(w, rid: str) -> dict:
    person, chat = _chatter(w)
    w.call("POST", f"/v1/chats/{chat['id']}/messages", w.token, rid, 201, json={"body": "Resposta na sala"})
    return _expect(w, "create", "message", w.user["id"], ["body"])


def page_chat(w, rid: str) -> dict:
    st = _state(w)
    person = st["desk"].staff("chat-pager")
    chat = st["desk"].chat(person, st["me"], kind="direct")
    st["desk"].post(person, chat["id"], "Única mensagem")
    w.call("GET", f"/v1/chats/{chat['id']}/messages", w.token, rid, 200)
    return _expect(w, "read", "message", person.id, ["body"])


def add_chat_member(w, rid: str) -> dict:
    person, chat = _chatter(w)
    w.call("POST", f"/v1/chats/{chat['id']}/members", person.token, rid, 200, json={"user_id": create_user_id(w)})
    return _expect(w, "read", "chat", person.id, ["title"], actor_id=person.id)


def remove_chat_member(w, rid: str) -> dict:
    person, chat = _chatter(w)
    member = create_user_id(w)
    assert w.api.post(f"/v1/chats/{chat['id']}/members", person.token, json={"user_id": member}).status_code == 200
    w.call("DELETE", f"/v1/chats/{chat['id']}/members/{member}", person.token, rid, 200)
    return _expect(w, "read", "chat", person.id, ["title"], actor_id=person.id)


def upload_attachment(w, rid: str) -> dict:
    cid = _conversation(w)
    w.call("POST", "/v1/attachments", w.token, rid, 201, data=png(), params={"name": "auditado.png",
                                                                             "conversation_id": cid},
           headers={"Content-Type": "application/octet-stream"})
    return _expect(w, "create", "attachment", w.customer["id"], ["attachment", "attachment_name", "attachment_sha256"])


def download_attachment(w, rid: str) -> dict:
    cid = _conversation(w)
    # a text file: an image answer would be taken for a profile photo by the completeness check
    uploaded = _state(w)["desk"].upload(_state(w)["me"], "Recibo nº 123\n".encode(), "recibo.txt", conversation_id=cid)
    assert uploaded.status_code == 201, uploaded.text
    w.call("GET", f"/v1/attachments/{uploaded.json()['id']}", w.token, rid, 200)
    return _expect(w, "read", "attachment", w.customer["id"], ["attachment", "attachment_name", "attachment_sha256"])


MESSAGING_SCENARIOS = {
    ("POST", "/v1/conversations"): open_conversation,
    ("GET", "/v1/conversations/{conversation_id}"): read_conversation,
    ("POST", "/v1/conversations/{conversation_id}/messages"): send_message,
    ("GET", "/v1/conversations/{conversation_id}/messages"): page_messages,
    ("GET", "/v1/messages/search"): search_messages,
    ("GET", "/v1/messages/{message_id}"): read_message,
    ("PATCH", "/v1/messages/{message_id}"): edit_message,
    ("DELETE", "/v1/messages/{message_id}"): delete_message,
    ("GET", "/v1/messages/{message_id}/history"): message_history,
    ("POST", "/v1/chats"): create_chat,
    ("GET", "/v1/chats"): list_chats,
    ("GET", "/v1/chats/{chat_id}"): read_chat,
    ("POST", "/v1/chats/{chat_id}/messages"): post_in_chat,
    ("GET", "/v1/chats/{chat_id}/messages"): page_chat,
    ("POST", "/v1/chats/{chat_id}/members"): add_chat_member,
    ("DELETE", "/v1/chats/{chat_id}/members/{user_id}"): remove_chat_member,
    ("POST", "/v1/attachments"): upload_attachment,
    ("GET", "/v1/attachments/{attachment_id}"): download_attachment,
}
