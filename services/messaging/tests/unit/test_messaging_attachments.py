"""Attachments on fakes: the type read from the bytes (each accepted type, a renamed executable, a macro
document, 10 MiB + 1 refused), safe names, and the use cases — upload sealed and audited, linking only one's
own unsent uploads of the same container, descriptions and downloads audited, the unsent kept to their
uploader, an invisible container answered 404, erasure, the pending cap and the sweep of abandoned uploads."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from upgestao_kernel.context import RequestContext
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryStore
from upgestao_messaging.adapters.attachment_store import MemoryAttachmentStore
from upgestao_messaging.domain import attachments as types
from upgestao_messaging.domain.attachments import MAX_NAME, MAX_SIZE, check_content, safe_name, sniff
from upgestao_messaging.domain.errors import InvalidValue
from upgestao_messaging.domain.visibility import Viewer
from upgestao_messaging.service_layer import attachments as uc

CT = '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' \
     '<Override PartName="/{part}" ContentType="{ctype}"/></Types>'
WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
SHEET_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
SLIDES_MAIN = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
MACRO_MAIN = "application/vnd.ms-word.document.macroEnabled.main+xml"


def office(ctype: str, part: str = "word/document.xml", extra: dict[str, bytes] | None = None,
           content_types: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if content_types:
            archive.writestr("[Content_Types].xml", CT.format(part=part, ctype=ctype))
        archive.writestr(part, "<document/>")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


@pytest.mark.parametrize(("content", "expected"), [
    (PNG, types.PNG),
    (JPEG, types.JPEG),
    (b"GIF89a\x01\x00\x01\x00" + b"\x00" * 10, types.GIF),
    (b"GIF87a\x01\x00\x01\x00" + b"\x00" * 10, types.GIF),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 16, types.WEBP),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", types.PDF),
    (office(WORD_MAIN), types.DOCX),
    (office(SHEET_MAIN, "xl/workbook.xml"), types.XLSX),
    (office(SLIDES_MAIN, "ppt/presentation.xml"), types.PPTX),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 20, types.MP3),
    (b"\xff\xfb\x90\x64" + b"\x00" * 40, types.MP3),  # MPEG-1 layer III frame, 128 kbit/s, 44.1 kHz
    (b"OggS\x00\x02" + b"\x00" * 30, types.OGG),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + b"\x00" * 16, types.MP4_AUDIO),
    ("Olá, segue o comprovante.\r\n\tAtenciosamente".encode(), types.TEXT),
    (b"\xef\xbb\xbfwith a BOM", types.TEXT),
    (b"<html><script>alert(1)</script></html>", types.TEXT),  # text, served as text/plain + nosniff
])
def test_sniffed_types(content: bytes, expected: str) -> None:
    assert sniff(content) == expected
    checked = check_content(content)
    assert (checked.content_type, checked.size, checked.sha256) == (expected, len(content),
                                                                     hashlib.sha256(content).hexdigest())


@pytest.mark.parametrize("content", [
    EXE,  # a Windows executable, whatever its name
    b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 20,
    office(MACRO_MAIN),  # a .docm
    office(WORD_MAIN, extra={"word/vbaProject.bin": b"\x00" * 10}),  # macros in a .docx's clothes
    office(WORD_MAIN, content_types=False),  # a zip, not an Office document
    b"PK\x03\x04" + b"\x00" * 40,  # a damaged zip
    b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00" + b"\x00" * 16,  # MP4 video
    b"text with a NUL\x00 inside",
    b"text with an escape \x1b[31m",
    "latin-1 não".encode("latin-1"),
    b"\xff\xfa\x00\x00",  # a frame sync without a valid bitrate
    b"RIFF\x24\x00\x00\x00WAVEfmt ",  # WAV: not on the list
])
def test_refused_types(content: bytes) -> None:
    assert sniff(content) is None
    with pytest.raises(InvalidValue) as refused:
        check_content(content)
    assert refused.value.field == "content"


def test_sizes() -> None:
    assert check_content(b"a" * MAX_SIZE).size == MAX_SIZE
    with pytest.raises(InvalidValue) as too_big:
        check_content(b"a" * (MAX_SIZE + 1))
    assert too_big.value.field == "content" and "10 MiB" in too_big.value.message
    with pytest.raises(InvalidValue) as empty:
        check_content(b"")
    assert empty.value.field == "content"


@pytest.mark.parametrize(("given", "kept"), [
    ("comprovante.pdf", "comprovante.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\ana\\Desktop\\foto 1.png", "foto 1.png"),
    ("fatura\u202efdp.exe", "faturafdp.exe"),  # the right-to-left override is gone: what is shown is what it is
    ("nome\x00com\x07controle\n.txt", "nomecomcontrole.txt"),
    ("...hidden", "hidden"),
    ("  muitos    espaços  .pdf ", "muitos espaços .pdf"),
    ("Relato\u0301rio.docx", "Relatório.docx"),  # NFC
])
def test_safe_names(given: str, kept: str) -> None:
    assert safe_name(given) == kept


def test_long_names_keep_their_extension_and_empty_ones_are_refused() -> None:
    long = safe_name("a" * 500 + ".pdf")
    assert len(long) == MAX_NAME and long.endswith(".pdf")
    assert len(safe_name("b" * 500)) == MAX_NAME
    for bad in ("", "   ", "..", "dir/", "\u202e", 42, None):
        with pytest.raises(InvalidValue) as refused:
            safe_name(bad)
        assert refused.value.field == "name"


# -- the use cases on fakes ------------------------------------------------------------------------

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ANA, BIA, CUSTOMER = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
CONV, OTHER_CONV, CHAT = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
PDF_BYTES = b"%PDF-1.4\n" + b"Exame de Maria Souza, CPF 123.456.789-00" + b"\n%%EOF"


class World:
    def __init__(self) -> None:
        self.store = MemoryStore(service="messaging")
        self.vault = FakeVault()

    def uow(self, actor: str = ANA) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, RequestContext(request_id=str(uuid.uuid4()), actor_id=actor,
                                                         actor_role="attendant"),
                              vault=self.vault, repositories=lambda u: SimpleNamespace(
                                  attachments=MemoryAttachmentStore(u)))

    def upload(self, actor: str = ANA, *, content: bytes = PDF_BYTES, name: str = "exame_maria.pdf",
               container: tuple[str, str] = ("conversation", CONV), subject: str = CUSTOMER,
               now: datetime = NOW) -> dict:
        with self.uow(actor) as u:
            return uc.upload(u, viewer(actor), name=name, content=content, container_kind=container[0],
                             container_id=container[1], subject_id=subject, now=now)

    def link(self, ids, actor: str = ANA, container: tuple[str, str] = ("conversation", CONV),
             message_id: str | None = None) -> list[str]:
        with self.uow(actor) as u:
            return uc.link(u, ids, message_id=message_id or str(uuid.uuid4()), container_kind=container[0],
                           container_id=container[1], uploader_id=actor, now=NOW)

    def download(self, attachment_id, actor: str = ANA, may_see=lambda kind, cid: True) -> dict:
        with self.uow(actor) as u:
            return uc.download(u, viewer(actor), attachment_id, may_see=may_see)


def viewer(user_id: str) -> Viewer:
    return Viewer(user_id=user_id, permissions=frozenset({"conversations.read", "conversations.write",
                                                          "chats.use"}), team_ids=frozenset())


@pytest.fixture
def world() -> World:
    return World()


def _status(exc: pytest.ExceptionInfo) -> tuple[int, str | None]:
    error = exc.value
    fields = [e["field"] for e in getattr(error, "extensions", {}).get("errors", [])] if hasattr(
        error, "extensions") else []
    return error.status, fields[0] if fields else None


def test_upload_seals_bytes_name_and_digest_and_audits(world) -> None:
    sent = world.upload()
    digest = hashlib.sha256(PDF_BYTES).hexdigest()
    assert sent == {"id": sent["id"], "name": "exame_maria.pdf", "content_type": "application/pdf",
                    "size": len(PDF_BYTES), "sha256": digest}
    [row] = world.store.rows("attachments")
    assert row["message_id"] is None and row["uploader_id"] == ANA and row["subject_id"] == CUSTOMER
    stored = repr(row)
    for clear in ("exame_maria", digest, base64.b64encode(PDF_BYTES).decode(), "Maria"):
        assert clear not in stored
    [audit] = world.store.audit_records(resource_type="attachment")
    assert audit["action"] == "create" and audit["subject_id"] == CUSTOMER and audit["resource_id"] == sent["id"]
    assert sorted(audit["fields"]) == ["attachment", "attachment_name", "attachment_sha256"]
    assert "Maria" not in repr(audit) and "exame" not in repr(audit)


def test_a_renamed_executable_is_refused_and_nothing_kept(world) -> None:
    with pytest.raises(InvalidValue) as refused:
        world.upload(content=EXE, name="foto.png")
    assert refused.value.field == "content"
    with pytest.raises(InvalidValue):
        world.upload(content=b"a" * (MAX_SIZE + 1), name="grande.txt")
    assert world.store.rows("attachments") == [] and world.store.audit_records(resource_type="attachment") == []


def test_unsent_attachments_are_their_uploaders_alone(world) -> None:
    sent = world.upload()
    assert world.download(sent["id"], ANA, may_see=lambda kind, cid: False)["content_b64"] == base64.b64encode(
        PDF_BYTES).decode()
    with pytest.raises(ServiceError) as hidden:
        world.download(sent["id"], BIA)  # sees the conversation, but the attachment is not sent yet
    assert hidden.value.status == 404
    with pytest.raises(ServiceError) as foreign:
        world.link([sent["id"]], BIA)  # Bia cannot send Ana's upload
    assert _status(foreign) == (422, "attachment_ids")
    with pytest.raises(ServiceError) as elsewhere:
        world.link([sent["id"]], ANA, container=("conversation", OTHER_CONV))
    assert _status(elsewhere) == (422, "attachment_ids")
    with pytest.raises(ServiceError):
        world.link([sent["id"]], ANA, container=("chat", CONV))  # the same id, named as a chat
    assert world.store.rows("attachments")[0]["message_id"] is None


def test_link_describe_download_and_the_visibility_predicate(world) -> None:
    first, second = world.upload(), world.upload(name="b.txt", content=b"nota")
    message_id = str(uuid.uuid4())
    assert world.link([first["id"], second["id"], first["id"]], message_id=message_id) == [first["id"],
                                                                                          second["id"]]
    with pytest.raises(ServiceError) as again:
        world.link([first["id"]])  # already sent with another message
    assert _status(again) == (422, "attachment_ids")
    before = len(world.store.outbox)
    with world.uow(BIA) as u:
        described = uc.describe(u, [first["id"], second["id"], str(uuid.uuid4())])
    assert described == {first["id"]: first, second["id"]: second}
    [batch] = world.store.outbox[before:]  # both reads' records in one message (one statement), each its own
    assert [r["resource_id"] for r in batch["body"]["records"]] == [first["id"], second["id"]]
    with world.uow(BIA) as u:
        assert uc.describe(u, []) == {}
    got = world.download(first["id"], BIA, may_see=lambda kind, cid: (kind, cid) == ("conversation", CONV))
    assert base64.b64decode(got["content_b64"]) == PDF_BYTES and got["message_id"] == message_id
    assert {k: got[k] for k in first} == first
    with pytest.raises(ServiceError) as invisible:
        world.download(first["id"], BIA, may_see=lambda kind, cid: False)
    assert invisible.value.status == 404
    denied = world.store.audit_records(resource_type="attachment", outcome="denied")
    assert [d["resource_id"] for d in denied] == [first["id"]]
    reads = world.store.audit_records(resource_type="attachment", action="read", outcome="success")
    assert [(r["purpose"], sorted(r["fields"])) for r in reads] == [
        ("message read", ["attachment_name", "attachment_sha256"]),
        ("message read", ["attachment_name", "attachment_sha256"]),
        ("attachment download", ["attachment", "attachment_name", "attachment_sha256"])]
    assert all(r["subject_id"] == CUSTOMER for r in reads)


@pytest.mark.parametrize("bad", ["not-a-uuid", 42, None, ["x"]])
def test_absent_and_malformed_ids_are_404_or_422(world, bad) -> None:
    with pytest.raises(ServiceError) as absent:
        world.download(bad)
    assert absent.value.status == 404
    with pytest.raises(ServiceError) as malformed:
        world.link(bad if isinstance(bad, list) else [bad])
    assert _status(malformed) == (422, "attachment_ids")


def test_link_limits(world) -> None:
    with pytest.raises(ServiceError) as not_a_list:
        world.link("abc")
    assert _status(not_a_list) == (422, "attachment_ids")
    with pytest.raises(ServiceError) as too_many:
        world.link([str(uuid.uuid4()) for _ in range(uc.MAX_PER_MESSAGE + 1)])
    assert _status(too_many) == (422, "attachment_ids")
    assert world.link([]) == []


def test_erasure_leaves_nothing_readable(world) -> None:
    mine = world.upload()
    other = world.upload(subject=str(uuid.uuid4()), container=("conversation", OTHER_CONV))
    world.link([mine["id"]])
    world.link([other["id"]], container=("conversation", OTHER_CONV))
    with world.uow() as u:
        u.personal.shred(subject_id=CUSTOMER, resource_type="customer", purpose="erasure")
        assert uc.purge_subject(u, CUSTOMER) == 1
        assert uc.purge_subject(u, CUSTOMER) == 0  # idempotent
    with pytest.raises(ServiceError) as gone:
        world.download(mine["id"])
    assert gone.value.status == 404
    with world.uow() as u:
        assert uc.describe(u, [mine["id"], other["id"]]) == {other["id"]: other}
    row = next(r for r in world.store.rows("attachments") if r["id"] == mine["id"])
    assert row["erased"] and row["content_sealed"] is None and row["name_sealed"] is None
    assert world.download(other["id"])["name"] == "exame_maria.pdf"  # another customer's stays


def test_export_subject(world) -> None:
    sent = world.upload()
    with world.uow() as u:
        [item] = uc.export_subject(u, CUSTOMER)
    assert item["id"] == sent["id"] and item["name"] == sent["name"] and item["sha256"] == sent["sha256"]
    assert "content_b64" not in item
    assert world.store.audit_records(purpose="data subject access")[0]["fields"] == ["attachment_name",
                                                                                   "attachment_sha256"]


def test_pending_cap_and_the_sweep(world, monkeypatch) -> None:
    monkeypatch.setattr(uc, "PENDING_MAX", 2)
    old = world.upload(now=NOW - timedelta(hours=25))
    world.upload()
    with pytest.raises(ServiceError) as capped:
        world.upload()
    assert capped.value.status == 409
    world.upload(BIA)  # another uploader's count is their own
    with world.uow() as u:
        assert uc.purge_unlinked(u, now=NOW) == 1
    assert old["id"] not in {r["id"] for r in world.store.rows("attachments")}
    world.upload()  # room again
