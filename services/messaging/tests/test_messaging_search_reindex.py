"""``reindex`` on SQLite and PostgreSQL: every live message's body opened through the vault (audited, purpose
"search index rebuild") and indexed under the current key; terms of an old key, deleted and erased messages
go; the command line prints what it did."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from upgestao_kernel.config import load_settings
from upgestao_kernel.context import system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.schema import outbox
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_messaging.adapters.search_index import SEARCH_KEY_VAR, SqlSearchIndex, search_terms, signature
from upgestao_messaging.adapters.tables import messages
from upgestao_messaging.commands_search import COMMANDS, PURPOSE, reindex
from upgestao_messaging.domain.search import TermHasher

KEYS = (MasterKeyring(b"\x11" * 32), b"\x22" * 32)
OLD, NEW = TermHasher(b"\x01" * 32), TermHasher(b"\x02" * 32)
CUSTOMER, GONE_CUSTOMER, AUTHOR = (str(uuid.uuid4()) for _ in range(3))
CONV, CHAT, GONE_CONV = (str(uuid.uuid4()) for _ in range(3))
# (position, kind, container, subject, body, deleted, erased)
ROWS = [
    (1, "conversation", CONV, CUSTOMER, "Não recebi a nota fiscal", False, False),
    (2, "chat", CHAT, AUTHOR, "alguém sabe da nota fiscal do pedido?", False, False),
    (3, "conversation", CONV, CUSTOMER, "mensagem apagada com nota", True, False),
    (4, "conversation", GONE_CONV, GONE_CUSTOMER, "nota de quem pediu o apagamento", False, True),
    (5, "conversation", CONV, CUSTOMER, "Ação: reenviar a NOTA", False, False),
]


@pytest.fixture
def database(messaging_database):
    engine = create_engine(messaging_database)
    yield messaging_database, engine
    engine.dispose()


def make_units(engine):
    vault = Vault(*KEYS)
    return lambda: UnitOfWork(engine, "messaging", system_context(), vault=vault)


def seed(engine) -> None:
    """Messages as the service keeps them (bodies sealed), indexed under the OLD key, plus a stale entry."""
    now = datetime.now(UTC)
    make = make_units(engine)
    with make() as uow:
        index = SqlSearchIndex(uow.conn)
        for position, kind, container, subject, body, deleted, erased in ROWS:
            message_id = str(uuid.UUID(int=position))
            sealed = uow.personal.seal(subject_id=subject, resource_type="message", resource_id=message_id,
                                       values={"body": body}, purpose="test")["body"]
            uow.conn.execute(messages.insert().values(
                id=message_id, position=position, container_kind=kind, container_id=container,
                conversation_id=container if kind == "conversation" else None,
                chat_id=container if kind == "chat" else None, customer_id=subject if kind == "conversation" else None,
                author_id=AUTHOR, direction="internal" if kind == "chat" else "incoming", private=False,
                key_subject_id=subject, body_sealed=None if deleted else sealed, attachment_ids=[], version=1,
                deleted=deleted, erased=erased, created_at=now, edited_at=None))
            index.add(message_id=message_id, position=position, container_kind=kind, container_id=container,
                      subject_id=subject, terms=OLD.hashes(body))
    with make() as uow:
        uow.personal.shred(subject_id=GONE_CUSTOMER, resource_type="customer", purpose="test")


def found(engine, hasher: TermHasher, q: str) -> list[int]:
    with engine.connect() as conn:
        return [p for p, _ in SqlSearchIndex(conn).find(hasher.hashes(q), visible=lambda k, i: sa.true(), limit=50)]


def rebuild_audits(engine) -> list[dict]:
    with engine.connect() as conn:
        bodies = [row.body for row in conn.execute(sa.select(outbox.c.body).where(outbox.c.exchange == "audit"))]
    return [b for b in bodies if b.get("purpose") == PURPOSE]


def test_reindex_under_the_new_key(database) -> None:
    _, engine = database
    seed(engine)
    assert found(engine, OLD, "nota") == [5, 4, 3, 2, 1] and found(engine, NEW, "nota") == []
    with engine.begin() as conn:  # as migration 0005 left the entries of before: no signature yet
        conn.execute(search_terms.update().values(signature=-1))
    # 3 live messages; the entries of the deleted (4 words) and the erased one (6 words) dropped
    assert reindex(make_units(engine), NEW, batch=2) == (3, 10)
    assert found(engine, NEW, "nota") == [5, 2, 1]
    assert found(engine, NEW, "nao recebi") == [1] and found(engine, NEW, "acao nota") == [5]
    assert found(engine, OLD, "nota") == []  # no term of the old key left
    with engine.connect() as conn:
        subjects = {r.subject_id for r in conn.execute(sa.select(search_terms.c.subject_id).distinct())}
    assert subjects == {CUSTOMER, AUTHOR}
    with engine.connect() as conn:  # each entry with its message's signature
        stored = set(conn.execute(sa.select(search_terms.c.position, search_terms.c.signature).distinct()).all())
    assert stored == {(p, signature(NEW.hashes(body))) for p, _, _, _, body, deleted, erased in ROWS
                      if not deleted and not erased}
    audits = rebuild_audits(engine)
    assert sorted(a["resource_id"] for a in audits) == [str(uuid.UUID(int=p)) for p in (1, 2, 5)]
    assert all(a["fields"] == ["body"] and a["actor_id"] == "system" for a in audits)
    assert reindex(make_units(engine), NEW) == (3, 0)  # again: the same index
    assert found(engine, NEW, "nota") == [5, 2, 1]


def test_reindex_command(database, tmp_path, monkeypatch, capsys) -> None:
    from upgestao_messaging.definition import DEFINITION

    url, engine = database
    seed(engine)
    env = {"UPGESTAO_DATA_DIR": str(tmp_path), "MESSAGING_DATABASE_URL": url,
           SEARCH_KEY_VAR: "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="}  # base64 of 32 bytes 0x02: NEW
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings("messaging", env)
    command = COMMANDS["reindex"]
    assert command.run(DEFINITION, settings, KEYS, argparse.Namespace(batch=0)) == 2
    assert command.run(DEFINITION, settings, KEYS, argparse.Namespace(batch=500)) == 0
    out = capsys.readouterr().out
    assert "reindexed 3 messages of messaging" in out and "10 entries" in out
    assert found(engine, NEW, "nota") == [5, 2, 1]
