"""Fuzzing the profile photo sanitiser (``sanitize_photo``).

Random bytes, small valid JPEG/PNG/WebP images (made here with Pillow) cut short or with bytes
flipped, and headers declaring huge dimensions (decompression bombs): every input ends in a
:class:`SanitizedPhoto` or :class:`PhotoRejected`, within a time and memory budget (the peak
resident set, which counts Pillow's own buffers); a bomb is refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from fuzzing import MiB, bounded, fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image
from upgestao_identity.domain.photos import DEFAULT_MAX_BYTES, PhotoRejected, SanitizedPhoto, sanitize_photo

# the fuzzed inputs may declare at most this many pixels: a real image of the limit costs a few
# bytes a pixel in each of the sanitiser's copies, and the budget below allows for that
MAX_PIXELS = 250_000
PIXEL_BUDGET = 64 * MiB
MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"]
FORMATS = {"JPEG": ("RGB", "L", "CMYK"), "PNG": ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"),
           "WEBP": ("RGB", "RGBA")}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@st.composite
def images(draw) -> tuple[str, bytes]:
    """A small valid image: format, mode, size and pixels drawn, some with EXIF, ICC or text."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.binary(min_size=1, max_size=64))
    raw = (seed * (width * height * 8 // len(seed) + 1))
    image = Image.frombytes("L", (width, height), raw[: width * height]).convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        image = image.convert("I;16")
    params: dict = {}
    if draw(st.booleans()) and fmt != "PNG":
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))  # orientation, including invalid values
        exif[0x010F] = draw(st.text(max_size=20))
        params["exif"] = exif.tobytes()
    if fmt == "JPEG":
        params["quality"] = draw(st.integers(1, 95))
        params["progressive"] = draw(st.booleans())
    if draw(st.booleans()):
        params["icc_profile"] = draw(st.binary(max_size=200))  # garbage profiles are ignored
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return fmt, out.getvalue()


@st.composite
def damaged_images(draw) -> bytes:
    """A valid image cut short, with bytes flipped, inserted or removed, or two spliced together."""
    _, data = draw(images())
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["cut", "flip", "insert", "delete", "splice"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "cut":
            del data[max(1, at):]
        elif kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:] = draw(images())[1][at:]
    return bytes(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int, colour_type: int = 2, depth: int = 8) -> bytes:
    """A PNG declaring ``width`` x ``height`` (valid CRCs) with a few bytes of compressed zeros."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bomb(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF) is rewritten to declare ``width`` x ``height``."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_bomb(width: int, height: int) -> bytes:
    """A small real WebP whose VP8X canvas (or VP8L header) declares ``width`` x ``height``."""
    out = io.BytesIO()
    Image.new("RGBA", (16, 16), (1, 2, 3, 4)).save(out, format="WEBP", lossless=True, exif=b"Exif\x00\x00MM")
    data = bytearray(out.getvalue())
    vp8x = data.find(b"VP8X")
    if vp8x != -1:
        data[vp8x + 12 : vp8x + 18] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


def sanitize(data: bytes, *, memory: int = PIXEL_BUDGET, **limits) -> SanitizedPhoto | None:
    """The sanitiser's answer to one input (None: refused), held to the per-input budget."""
    limits.setdefault("max_pixels", MAX_PIXELS)
    with bounded("sanitize_photo", seconds=1.5, memory=memory):
        try:
            photo = sanitize_photo(data, **limits)
        except PhotoRejected as refused:
            assert refused.message and isinstance(refused.message, str)
            assert not isinstance(refused.__cause__, MemoryError), (
                "refused only because the test's address-space limit stopped an allocation"
            )
            return None
    assert isinstance(photo, SanitizedPhoto)
    assert 0 < photo.width * photo.height <= limits["max_pixels"]
    with Image.open(io.BytesIO(photo.content)) as decoded:  # the output is a clean image of its type
        assert CONTENT_TYPES[decoded.format] == photo.content_type
        assert decoded.size == (photo.width, photo.height)
        decoded.load()
    return photo


@fuzz
@given(st.sampled_from(MAGIC + [b""]), st.binary(max_size=2048))
def test_random_bytes_are_refused_or_a_photo(magic, tail):
    sanitize(magic + tail)


@fuzz
@given(images())
def test_valid_images_are_accepted(image):
    fmt, data = image
    photo = sanitize(data)
    assert photo is not None, f"a valid {fmt} was refused"
    assert photo.content_type == CONTENT_TYPES[fmt]


@fuzz
@given(damaged_images())
# (Pillow warns about the damaged EXIF blocks it skips; the sanitiser drops EXIF anyway)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning", "ignore:Truncated File Read:UserWarning")
def test_damaged_images_are_refused_or_a_photo(data):
    sanitize(data)


BOMB_SIDES = st.integers(1, 2**31 - 1)


@fuzz
@given(st.sampled_from(["png", "jpeg", "webp"]), BOMB_SIDES, BOMB_SIDES, st.sampled_from([MAX_PIXELS, 40_000_000]))
@example("png", 2**31 - 1, 2**31 - 1, 40_000_000)
@example("png", 100_000, 100_000, 40_000_000)
@example("png", 40_000_000, 1, 40_000_000)
@example("jpeg", 65_535, 65_535, 40_000_000)
@example("webp", 16_384, 16_384, 40_000_000)
def test_decompression_bombs_are_refused_without_decoding(kind, width, height, max_pixels):
    """Declared sizes past the limit are refused from the header: no pixel buffer, almost no time."""
    if kind == "png":
        data = png_bomb(width, height)
    elif kind == "jpeg":
        width, height = min(width, 65_535), min(height, 65_535)
        data = jpeg_bomb(width, height)
    else:
        width, height = min(width, 2**24), min(height, 2**24)
        data = webp_bomb(width, height)
    if width * height <= max_pixels:
        if max_pixels == MAX_PIXELS:
            sanitize(data)
        return
    with bounded(f"{kind} bomb of {width} x {height}", seconds=0.25, memory=8 * MiB):
        try:
            sanitize_photo(data, max_pixels=max_pixels)
        except PhotoRejected as refused:
            assert "too many pixels" in refused.message or "damaged" in refused.message
        else:
            raise AssertionError(f"a {kind} declaring {width} x {height} pixels was accepted")


@fuzz
@given(st.integers(1, 3000), st.integers(1, 3000), st.sampled_from([0, 2, 4, 6]), st.sampled_from([8, 16]))
def test_declared_pixels_bound_the_memory(width, height, colour_type, depth):
    """A PNG within the pixel limit but whose data stops early: refused, within memory for its pixels."""
    data = png_bomb(width, height, colour_type, depth)
    photo = sanitize(data)
    assert photo is None or photo.width * photo.height == width * height


def test_the_largest_upload_of_random_bytes_is_refused_in_budget():
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (DEFAULT_MAX_BYTES // 256 - 1)
    assert sanitize(data) is None
