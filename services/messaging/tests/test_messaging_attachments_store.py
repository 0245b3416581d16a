"""Attachments on SQLite and PostgreSQL through the kernel's real unit of work and vault: the round trip
(upload, link, describe, download) and erasure; no byte of the file, its name or its digest in clear in any
table of the database (the kernel's leak scanner, every table); linking is one conditional update."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.leaks import LeakScanner, table_texts
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_messaging.adapters.attachment_store import SqlAttachmentStore
from upgestao_messaging.domain.visibility import Viewer
from upgestao_messaging.service_layer import attachments as uc

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ANA, BIA, CUSTOMER, OTHER = (str(uuid.uuid4()) for _ in range(4))
CONV = str(uuid.uuid4())
NAME = "laudo_heloisa_brandao.txt"
CONTENT = "Laudo de Heloísa Brandão: pressão arterial 14 por 9, retorno em março.\n".encode()


@pytest.fixture
def engine(messaging_database):
    engine = create_engine(messaging_database)
    yield engine
    engine.dispose()


@pytest.fixture
def units(engine):
    vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)

    def make(actor: str = ANA) -> UnitOfWork:
        context = RequestContext(request_id=str(uuid.uuid4()), actor_id=actor, actor_role="attendant")
        return UnitOfWork(engine, "messaging", context, vault=vault,
                          repositories=lambda u: SimpleNamespace(attachments=SqlAttachmentStore(u.conn)))

    return make


def viewer(user_id: str) -> Viewer:
    return Viewer(user_id=user_id, permissions=frozenset({"conversations.read"}), team_ids=frozenset())


def every_table(engine) -> list[tuple[str, str]]:
    return [text for table in sa.inspect(engine).get_table_names() for text in table_texts(engine, table)]


def test_round_trip_sealed_nothing_in_clear(engine, units) -> None:
    with units() as u:
        sent = uc.upload(u, viewer(ANA), name=NAME, content=CONTENT, container_kind="conversation",
                         container_id=CONV, subject_id=CUSTOMER, now=NOW)
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert sent["sha256"] == digest and sent["content_type"] == "text/plain; charset=utf-8"
    message_id = str(uuid.uuid4())
    with units() as u:
        uc.link(u, [sent["id"]], message_id=message_id, container_kind="conversation", container_id=CONV,
                uploader_id=ANA, now=NOW)
    with units(BIA) as u:
        assert uc.describe(u, [sent["id"]]) == {sent["id"]: sent}
        got = uc.download(u, viewer(BIA), sent["id"], may_see=lambda kind, cid: cid == CONV)
    assert base64.b64decode(got["content_b64"]) == CONTENT and got["message_id"] == message_id
    with units() as u, pytest.raises(ServiceError) as again:
        uc.link(u, [sent["id"]], message_id=str(uuid.uuid4()), container_kind="conversation", container_id=CONV,
                uploader_id=ANA, now=NOW)
    assert again.value.status == 422

    scanner = LeakScanner([NAME, "laudo_heloisa", "Heloísa Brandão", "pressão arterial", digest,
                           base64.b64encode(CONTENT).decode()[:40]])
    texts = every_table(engine)
    assert scanner.assert_clean(texts) > 5  # rows of attachments, the vault's keys, the audit outbox...
    assert any(where.startswith("attachments#") for where, _ in texts)


def test_erasure_and_another_subject_intact(engine, units) -> None:
    with units() as u:
        mine = uc.upload(u, viewer(ANA), name=NAME, content=CONTENT, container_kind="conversation",
                         container_id=CONV, subject_id=CUSTOMER, now=NOW)
        theirs = uc.upload(u, viewer(ANA), name="outro.pdf", content=b"%PDF-1.4\n%%EOF", container_kind="chat",
                           container_id=str(uuid.uuid4()), subject_id=OTHER, now=NOW)
    with units() as u:
        u.personal.shred(subject_id=CUSTOMER, resource_type="customer", purpose="erasure")
        assert uc.purge_subject(u, CUSTOMER) == 1
    with units() as u:
        with pytest.raises(ServiceError) as gone:
            uc.download(u, viewer(ANA), mine["id"], may_see=lambda kind, cid: True)
        assert gone.value.status == 404
        assert uc.download(u, viewer(ANA), theirs["id"], may_see=lambda kind, cid: True)["name"] == "outro.pdf"
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM attachments WHERE id = :id"), {"id": mine["id"]}).mappings().one()
    assert row["erased"] and row["content_sealed"] is None and row["name_sealed"] is None
    assert row["sha256_sealed"] is None and row["size"] == len(CONTENT)
