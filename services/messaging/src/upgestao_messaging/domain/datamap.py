"""The data map (R1.1): every personal field messaging keeps, declared once, in the item shape of identity's
data map (``resource``, ``field``, ``category``, ``description``, ``encrypted_at_rest``,
``shareable_with_integrations``) plus what LGPD art. 37 asks of each record of processing: its ``purpose``, its
``legal_basis`` and its ``retention``. Served by the ``data_map`` RPC (public, as identity's: it holds no
personal value); privacy's ``GET /v1/privacy/data-map`` gathers it with the other services'.

Everything sealed here is sealed under one data subject's key (a conversation's customer; a chat message's
author, a chat title's creator, an attachment's conversation customer or chat uploader): erasing that person
shreds it in the read models and in the event log alike. Ids (customer, author, assignee, reader) are kept in
clear: they point to identity's records, which the person's erasure empties.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CATEGORIES = ("communication", "file", "usage")
SERVICE_DELIVERY = "customer service and staff collaboration (the help desk)"
CONTRACT = "performance of a contract (LGPD art. 7, V)"
LEGITIMATE = "legitimate interest (LGPD art. 7, IX)"
UNTIL_ERASED = "while the relationship lasts; crypto-shredded when the person's erasure is requested"


@dataclass(frozen=True)
class PersonalField:
    resource: str
    field: str
    category: str
    description: str
    purpose: str
    legal_basis: str
    retention: str
    encrypted_at_rest: bool = True
    shareable_with_integrations: bool = False

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown data category {self.category!r}")


FIELDS: tuple[PersonalField, ...] = (
    PersonalField("conversation", "subject", "communication",
                  "A conversation's subject, sealed under the customer's key", SERVICE_DELIVERY, CONTRACT,
                  UNTIL_ERASED),
    PersonalField("message", "body", "communication",
                  "A message's body and every earlier version of it (incoming, outgoing, private notes; staff "
                  "chat): sealed under the conversation's customer, or a chat message's author. Private notes "
                  "never leave for integrations", SERVICE_DELIVERY, CONTRACT, UNTIL_ERASED,
                  shareable_with_integrations=True),
    PersonalField("chat", "title", "communication", "A group chat's title, sealed under its creator",
                  SERVICE_DELIVERY, LEGITIMATE, UNTIL_ERASED),
    PersonalField("attachment", "attachment", "file",
                  "A file's bytes, sealed under the conversation's customer (in a chat, the uploader)",
                  SERVICE_DELIVERY, CONTRACT, UNTIL_ERASED),
    PersonalField("attachment", "attachment_name", "file", "A file's name (often names a person), sealed",
                  SERVICE_DELIVERY, CONTRACT, UNTIL_ERASED),
    PersonalField("attachment", "attachment_sha256", "file",
                  "A file's SHA-256, sealed (in clear it would confirm that a known file was sent)",
                  SERVICE_DELIVERY, CONTRACT, UNTIL_ERASED),
    PersonalField("search_entry", "terms", "communication",
                  "The search index: keyed hashes (HMAC) of a message's words, never the words; purged with the "
                  "message's data subject", SERVICE_DELIVERY, CONTRACT, UNTIL_ERASED),
    PersonalField("read_cursor", "read_at", "usage",
                  "How far, and when, a staff user read a conversation or chat (unread counts, read receipts); "
                  "removed when that user is erased", SERVICE_DELIVERY, LEGITIMATE, UNTIL_ERASED,
                  encrypted_at_rest=False),
)


def data_map_document() -> list[dict]:
    """The map as served: one entry per (resource, field)."""
    return [asdict(f) for f in FIELDS]
