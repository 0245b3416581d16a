"""What an attachment may be: its type read from its bytes, its size, its digest, a file name safe to show.

The type is never taken from the name or from what the client says: it is read from the bytes (magic
numbers) against an allow-list, and anything else is refused (422 naming ``content``), so a renamed
executable, an HTML page sent as ``.png`` or a macro-carrying Office file does not get in. The list:

* images: PNG, JPEG, GIF, WebP;
* PDF;
* Office Open XML documents: Word (.docx), Excel (.xlsx), PowerPoint (.pptx), told apart by the main part
  their ``[Content_Types].xml`` declares; a macro-enabled one (a ``vbaProject.bin``, or a macro main
  part) is refused. Only the zip's directory and that one small part are read: a zip bomb is never
  inflated;
* audio: MP3 (ID3 tag or an MPEG audio frame), Ogg (Opus/Vorbis: WhatsApp's voice notes), MP4 audio
  (M4A/M4B brands);
* plain text: strict UTF-8 (a BOM allowed) with no control character but tab, line feed, carriage return
  and form feed. HTML or SVG sent as text is text: served as ``text/plain`` with ``nosniff`` and as a
  download, a browser never renders it.

Sizes: empty is refused, and so is anything above :data:`MAX_SIZE` (10 MiB). Names: the last path
component only, control and format characters removed (a right-to-left override would show
``invoice‮fdp.exe`` as ``invoiceexe.pdf``), NFC, at most :data:`MAX_NAME` characters (the extension
kept), never empty nor dots only.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from .errors import InvalidValue

MAX_SIZE = 10 * 1024 * 1024
MAX_NAME = 200
MAX_CONTENT_TYPES_XML = 256 * 1024  # [Content_Types].xml of a real document is a few KiB

PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
WEBP = "image/webp"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
MP3 = "audio/mpeg"
OGG = "audio/ogg"
MP4_AUDIO = "audio/mp4"
TEXT = "text/plain; charset=utf-8"
ALLOWED_TYPES = (PNG, JPEG, GIF, WEBP, PDF, DOCX, XLSX, PPTX, MP3, OGG, MP4_AUDIO, TEXT)

_OFFICE_MAIN_PARTS = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": XLSX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": PPTX,
}
_MACRO = re.compile(rb"macroEnabled", re.IGNORECASE)
_MP4_AUDIO_BRANDS = (b"M4A ", b"M4B ")
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")  # C0 but tab, LF, FF, CR; DEL; C1
_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class CheckedContent:
    """Bytes that passed: their sniffed type, size and SHA-256 (hex)."""

    content_type: str
    size: int
    sha256: str


def check_content(content: bytes) -> CheckedContent:
    """The content's type from its bytes, its size and digest; :class:`InvalidValue` naming ``content``."""
    if not isinstance(content, bytes | bytearray | memoryview):
        raise InvalidValue("content", "must be bytes")
    content = bytes(content)
    if not content:
        raise InvalidValue("content", "is empty")
    if len(content) > MAX_SIZE:
        raise InvalidValue("content", f"is larger than {MAX_SIZE // (1024 * 1024)} MiB")
    content_type = sniff(content)
    if content_type is None:
        raise InvalidValue("content", "is not a type accepted here (images PNG, JPEG, GIF, WebP; PDF; Word, "
                                      "Excel and PowerPoint documents without macros; MP3, Ogg and M4A audio; "
                                      "UTF-8 text)")
    return CheckedContent(content_type=content_type, size=len(content), sha256=hashlib.sha256(content).hexdigest())


def sniff(content: bytes) -> str | None:
    """The allowed type these bytes are, or None."""
    head = content[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return _office(content)
    if head.startswith(b"OggS"):
        return OGG
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_AUDIO_BRANDS:
        return MP4_AUDIO
    if head.startswith(b"ID3") or _mpeg_audio_frame(head):
        return MP3
    if _utf8_text(content):
        return TEXT
    return None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a valid version, layer III, a valid bitrate and rate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0x3
    return version != 0b01 and layer == 0b01 and bitrate not in (0b0000, 0b1111) and rate != 0b11


def _office(content: bytes) -> str | None:
    """DOCX, XLSX or PPTX without macros, from the zip's directory and its ``[Content_Types].xml``."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = {info.filename: info for info in archive.infolist()}
            types = names.get("[Content_Types].xml")
            if types is None or types.file_size > MAX_CONTENT_TYPES_XML:
                return None
            if any(name.lower().endswith("vbaproject.bin") for name in names):
                return None
            with archive.open(types) as part:
                declared = part.read(MAX_CONTENT_TYPES_XML + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, RuntimeError, ValueError,
            EOFError):
        return None  # damaged, encrypted, or compressed in a way the standard library does not read
    if len(declared) > MAX_CONTENT_TYPES_XML or _MACRO.search(declared):
        return None
    found = {kind for part, kind in _OFFICE_MAIN_PARTS.items() if part.encode() in declared}
    return found.pop() if len(found) == 1 else None


def _utf8_text(content: bytes) -> bool:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


def safe_name(name: object) -> str:
    """A file name to keep and show (see the module doc); :class:`InvalidValue` naming ``name``."""
    if not isinstance(name, str):
        raise InvalidValue("name", "must be a string")
    last = _SEPARATORS.split(name)[-1]
    cleaned = "".join(ch for ch in unicodedata.normalize("NFC", last)
                      if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))
    cleaned = " ".join(cleaned.split()).lstrip(".").strip()
    if not cleaned:
        raise InvalidValue("name", "is empty (a file name is needed)")
    if len(cleaned) > MAX_NAME:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 16 and stem:
            cleaned = stem[:MAX_NAME - len(extension) - 1].rstrip() + "." + extension
        else:
            cleaned = cleaned[:MAX_NAME].rstrip()
    return cleaned
