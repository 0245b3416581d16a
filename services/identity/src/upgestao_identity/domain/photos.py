"""Profile photo sanitiser: accept only real JPEG, PNG or WebP images and re-encode them without metadata.

The type comes from the bytes themselves (magic bytes, then Pillow's own identification,
which must agree), never from a declared content type. The output is re-encoded from the
decoded pixels, so nothing of the original file but its pixels survives:

* EXIF (GPS included), XMP, IPTC, JPEG comments, PNG text chunks (tEXt, zTXt, iTXt), PNG
  eXIf chunks, WebP EXIF/XMP chunks are all dropped;
* the EXIF orientation is applied to the pixels first (``ImageOps.exif_transpose``), so the
  photo still shows the right way up without it;
* an embedded ICC colour profile is used to convert the pixels to sRGB and then dropped
  (the output carries no ICC profile; sRGB is what browsers assume without one); a profile
  that cannot be parsed is simply ignored;
* animated images (APNG, animated WebP) are refused; a multi-picture JPEG (MPO, written
  by many phone cameras) is reduced to its primary picture, which is what viewers show.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageFile, ImageOps
from upgestao_kernel.limits import PHOTO_MAX_BYTES, PHOTO_MAX_PIXELS

from .errors import IdentityError

DEFAULT_MAX_BYTES = PHOTO_MAX_BYTES
DEFAULT_MAX_PIXELS = PHOTO_MAX_PIXELS
# Pillow's own bomb guard at the same cap (it warns above it, refuses above twice it, when the header is
# read): a second line behind the explicit check of ``image.size`` below, for any other decoding path.
Image.MAX_IMAGE_PIXELS = PHOTO_MAX_PIXELS

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"

_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
_GREY_MODES = ("1", "L", *_WIDE_GREY_MODES)

# MIME type -> the Pillow format to open it with, the formats Pillow may identify, the format to write
# (Pillow's JPEG opener returns an MPO image for multi-picture files)
_FORMATS: dict[str, tuple[str, tuple[str, ...], str]] = {
    JPEG: ("JPEG", ("JPEG", "MPO"), "JPEG"),
    PNG: ("PNG", ("PNG",), "PNG"),
    WEBP: ("WEBP", ("WEBP",), "WEBP"),
}


class PhotoRejected(IdentityError, ValueError):
    """The upload is not an acceptable photo; ``message`` is the reason to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SanitizedPhoto:
    content: bytes
    content_type: str
    width: int
    height: int


def detect_image_type(data: bytes) -> str | None:
    """The MIME type of a JPEG, PNG or WebP image from its magic bytes, None for anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def sanitize_photo(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> SanitizedPhoto:
    """Validate ``data`` as a JPEG/PNG/WebP photo and return it re-encoded without any metadata.

    The pixel count comes from the header (``Image.open`` reads only that) and is refused above
    ``max_pixels`` before anything is decoded. Decoding takes CPU seconds and memory in proportion
    to the pixels: callers run this off the event loop, a bounded number at a time.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PhotoRejected("the photo must be sent as binary data")
    data = bytes(data)
    if not data:
        raise PhotoRejected("the photo is empty")
    if len(data) > max_bytes:
        raise PhotoRejected(f"the photo is too large: at most {max_bytes // 1024} KiB")
    content_type = detect_image_type(data)
    if content_type is None:
        raise PhotoRejected("the photo must be a JPEG, PNG or WebP image")
    opener, accepted_formats, output_format = _FORMATS[content_type]

    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit, raises) about decompression bombs
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[opener]) as image:
                if image.format not in accepted_formats:
                    raise PhotoRejected("the photo must be a JPEG, PNG or WebP image")
                width, height = image.size
                if width <= 0 or height <= 0:
                    raise PhotoRejected("the photo has no pixels")
                if width * height > max_pixels:
                    raise PhotoRejected(f"the photo has too many pixels: at most {max_pixels:,}")
                if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
                    raise PhotoRejected("animated images are not accepted as a photo")
                if image.format == "MPO":
                    image.seek(0)
                image.load()  # decodes everything; truncated or corrupt data fails here
                pixels = _clean_pixels(image, output_format)
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRejected(f"the photo has too many pixels: at most {max_pixels:,}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, Image.UnidentifiedImageError) as exc:
        raise PhotoRejected("the photo is damaged or could not be read") from exc

    content = _encode(pixels, output_format)
    return SanitizedPhoto(content=content, content_type=content_type, width=pixels.width, height=pixels.height)


def _clean_pixels(image: ImageFile.ImageFile, output_format: str) -> Image.Image:
    """The decoded, upright, sRGB pixels of ``image`` in a fresh image carrying no ``info`` at all."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    icc = image.info.get("icc_profile")
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block: keep the pixels as stored
        upright = image.copy()
    if upright is None:  # pragma: no cover - only with in_place=True
        upright = image.copy()

    converted = None
    if icc:
        converted = _to_srgb(upright, icc, has_alpha)
    if converted is None:
        converted = upright

    grey = converted.mode in _GREY_MODES
    if has_alpha and output_format != "JPEG":
        mode = "RGBA"
    elif grey and output_format != "WEBP":
        mode = "L"
    else:
        mode = "RGB"
    if converted.mode in _WIDE_GREY_MODES:
        # 16-bit / 32-bit / float greyscale: scale down to 8 bits instead of clipping
        converted = converted.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if converted.mode != mode:
        converted = converted.convert(mode)
    # a brand-new image from the raw pixels: no EXIF, XMP, ICC, comments, text chunks, dpi, ...
    return Image.frombytes(mode, converted.size, converted.tobytes())


def _to_srgb(image: Image.Image, icc: bytes, has_alpha: bool) -> Image.Image | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        if image.mode not in ("RGB", "RGBA", "L", "CMYK"):
            image = image.convert("RGBA" if has_alpha else "RGB")
        return ImageCms.profileToProfile(image, source, srgb, outputMode="RGBA" if has_alpha else "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _encode(image: Image.Image, output_format: str) -> bytes:
    out = io.BytesIO()
    if output_format == "JPEG":
        image.save(out, format="JPEG", quality=90, optimize=True)
    elif output_format == "PNG":
        image.save(out, format="PNG", optimize=True)
    else:
        image.save(out, format="WEBP", quality=90, method=4)
    return out.getvalue()
