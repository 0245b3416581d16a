"""The erasure scenario's bulk writer: a customer's messages written as messaging's send path writes them (the
``message_created`` event with the body sealed by the kernel's vault under the customer's key, the projection's
own read-model rows at the event's position, the search entries of the words' keyed hashes with their
signature, the conversations' last activity), in batches, straight into messaging's database. No audit
records and no outbox rows: nothing happened to publish (the messaging scenario seeds the same way)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

BATCH = 2000


def seed_messages(m, text, customer: str, author: str, conversation_ids: list[str], total: int,
                  kind: str = "conversation") -> int:
    """``total`` messages over ``conversation_ids`` (conversations of ``customer``, or with ``kind="chat"`` chats
    where ``author`` wrote them, sealed under the author: pass the author as ``customer``)."""
    import sqlalchemy as sa
    from messaging import _envelope, _insert_terms, _key_caching_vault
    from upgestao_kernel.events import new_id
    from upgestao_kernel.schema import events
    from upgestao_messaging.adapters.projections import Insert, Update, changes
    from upgestao_messaging.adapters.search_index import search_terms, signature
    from upgestao_messaging.adapters.tables import TABLES, chats, conversations
    from upgestao_messaging.domain.messages import Message
    from upgestao_messaging.domain.search import normalise_words

    tables = {t.name: t for t in TABLES}
    r = random.Random(customer)
    start = datetime.now(UTC) - timedelta(days=30)
    written = 0
    vault = _key_caching_vault()(*m.keys)  # the kernel's vault, the customer's data key unwrapped once
    with m.engine.begin() as conn:
        vault.encrypt(conn, customer, "body", "-")
    for first in range(0, total, BATCH):
        batch = range(first, min(total, first + BATCH))
        event_rows, meta = [], {}
        for n in batch:
            conversation_id = conversation_ids[n * len(conversation_ids) // total]
            incoming = r.random() < 0.5 and kind == "conversation"
            direction = "incoming" if incoming else "outgoing" if kind == "conversation" else "internal"
            body = text.body("incoming" if incoming else "outgoing")
            message_id = str(uuid.uuid4())
            meta[message_id] = (conversation_id, [m.hasher.hash(w) for w in normalise_words(body)])
            sealed = vault.encrypt(None, customer, "body", body)
            in_chat = kind == "chat"
            message = Message.create(message_id, conversation_id=None if in_chat else conversation_id,
                                     chat_id=conversation_id if in_chat else None,
                                     customer_id=None if in_chat else customer, author_id=author,
                                     direction=direction, private=False, key_subject_id=customer,
                                     sealed_body=sealed, attachment_ids=[], client_message_id=None)
            (new,) = message.collect()
            event_rows.append({"event_id": new_id(), "stream_id": message.stream_id, "version": 1, "type": new.type,
                               "occurred_at": start + timedelta(seconds=n), "actor_id": author, "actor_role": "admin",
                               "correlation_id": None, "causation_id": None, "data": dict(new.data)})
        with m.engine.begin() as conn:
            positions = {row.event_id: row.position for row in conn.execute(
                events.insert().returning(events.c.position, events.c.event_id), event_rows)}
            rows: dict[str, list[dict]] = {"messages": [], "message_versions": []}
            last: dict[str, dict] = {}
            terms = []
            for row in event_rows:
                envelope = _envelope(row, positions[row["event_id"]])
                for change in changes(envelope):
                    if isinstance(change, Insert):
                        rows[change.table].append(dict(change.row))
                    elif isinstance(change, Update) and change.table in ("conversations", "chats"):
                        last[change.where["id"]] = dict(change.values)
                message_id = envelope.stream_id.split("-", 1)[1]
                conversation_id, hashes = meta[message_id]
                bits = signature(hashes)
                terms.extend((h, envelope.position, message_id, kind, conversation_id, customer, bits)
                             for h in dict.fromkeys(hashes))
            for name, table_rows in rows.items():
                conn.execute(tables[name].insert(), table_rows)
            terms.sort()
            _insert_terms(conn, search_terms, terms)
            table = chats if kind == "chat" else conversations
            for container_id, values in last.items():
                conn.execute(sa.update(table).where(table.c.id == container_id).values(**values))
        written += len(event_rows)
    return written

