"""Profile photo sanitiser: type from bytes, limits, and no metadata in the output."""

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin
from upgestao_identity.domain.photos import PhotoRejected, SanitizedPhoto, detect_image_type, sanitize_photo

SECRET = b"SecretCam-GPS-Trace"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="' + SECRET + b'"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_gps(orientation=None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = SECRET.decode()  # Make
    exif[0x010E] = "a description"  # ImageDescription
    if orientation:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1] = "S"  # GPSLatitudeRef
    gps[2] = (23.0, 33.0, 1.5)  # GPSLatitude (São Paulo)
    gps[3] = "W"
    gps[4] = (46.0, 38.0, 2.0)
    return exif


def photo(mode="RGB", size=(40, 20), colour=(200, 30, 30)) -> Image.Image:
    image = Image.new(mode, size, colour)
    # a distinct top-left corner, to check the orientation is applied
    for x in range(5):
        for y in range(5):
            image.putpixel((x, y), (0, 0, 255) if mode == "RGB" else (0, 0, 255, 255))
    return image


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append(kind)
        pos += 12 + length
    return chunks


def riff_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    chunks, pos = [], 12
    while pos < len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        chunks.append(kind)
        pos += 8 + length + (length & 1)
    return chunks


def assert_no_metadata(result: SanitizedPhoto) -> Image.Image:
    content = result.content
    assert b"Exif" not in content
    assert SECRET not in content
    assert b"xmpmeta" not in content and b"http://ns.adobe.com/xap" not in content
    out = Image.open(io.BytesIO(content))
    assert len(out.getexif()) == 0
    assert out.getexif().get_ifd(0x8825) == {}
    assert "icc_profile" not in out.info
    assert "exif" not in out.info and "xmp" not in out.info and "comment" not in out.info
    assert (out.width, out.height) == (result.width, result.height)
    return out


# --------------------------------------------------------------------------- type detection


def test_detect_image_type():
    assert detect_image_type(encode(photo(), "JPEG")) == "image/jpeg"
    assert detect_image_type(encode(photo(), "PNG")) == "image/png"
    assert detect_image_type(encode(photo(), "WEBP")) == "image/webp"
    assert detect_image_type(encode(photo(), "GIF")) is None
    assert detect_image_type(encode(photo(), "BMP")) is None
    assert detect_image_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert detect_image_type(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert detect_image_type(b"") is None


# --------------------------------------------------------------------------- metadata stripping


def test_jpeg_exif_gps_xmp_comment_stripped_and_orientation_applied():
    exif = exif_with_gps(orientation=6)  # stored sideways: rotate 90° clockwise to display
    data = encode(photo(), "JPEG", exif=exif, comment=SECRET, icc_profile=SRGB_ICC, xmp=XMP, quality=95)
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825)  # the test image really has GPS
    assert SECRET in data and b"Exif" in data

    result = sanitize_photo(data)
    assert result.content_type == "image/jpeg"
    assert (result.width, result.height) == (20, 40)  # orientation applied
    out = assert_no_metadata(result)
    assert out.format == "JPEG" and out.mode == "RGB"
    # the blue corner moved from top-left to top-right
    r, g, b = out.getpixel((result.width - 2, 1))
    assert b > 200 and r < 60
    assert out.getpixel((1, result.height - 2))[0] > 150  # red elsewhere


def test_png_text_exif_icc_chunks_stripped():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET.decode())
    info.add_text("Author", SECRET.decode(), zip=True)  # zTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode(), lang="", tkey="")  # iTXt
    data = encode(photo(), "PNG", pnginfo=info, exif=exif_with_gps(orientation=3), icc_profile=SRGB_ICC)
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"} <= set(png_chunks(data))

    result = sanitize_photo(data)
    assert result.content_type == "image/png"
    assert (result.width, result.height) == (40, 20)
    out = assert_no_metadata(result)
    assert set(png_chunks(result.content)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert out.getpixel((39, 19))[2] == 255  # rotated 180°: the blue corner is now bottom-right
    assert not out.text


def test_webp_exif_xmp_stripped():
    data = encode(photo(), "WEBP", exif=exif_with_gps(orientation=8), xmp=XMP, icc_profile=SRGB_ICC, quality=95)
    assert {b"EXIF", b"XMP ", b"ICCP"} <= set(riff_chunks(data))

    result = sanitize_photo(data)
    assert result.content_type == "image/webp"
    assert (result.width, result.height) == (20, 40)
    assert_no_metadata(result)
    assert set(riff_chunks(result.content)) & {b"EXIF", b"XMP ", b"ICCP"} == set()


def test_png_alpha_and_palette_transparency_kept():
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    out = Image.open(io.BytesIO(sanitize_photo(encode(rgba, "PNG")).content))
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 0

    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.info["transparency"] = 0
    out = Image.open(io.BytesIO(sanitize_photo(encode(palette, "PNG", transparency=0)).content))
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 0


def test_greyscale_and_16_bit_png():
    grey = Image.new("L", (8, 8), 128)
    out = Image.open(io.BytesIO(sanitize_photo(encode(grey, "JPEG")).content))
    assert out.mode == "L"
    sixteen = Image.new("I;16", (8, 8), 65535)
    out = Image.open(io.BytesIO(sanitize_photo(encode(sixteen, "PNG")).content))
    assert out.mode == "L" and out.getpixel((0, 0)) == 255


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    out = Image.open(io.BytesIO(sanitize_photo(encode(cmyk, "JPEG")).content))
    assert out.mode == "RGB"


def test_multi_picture_jpeg_reduced_to_primary_picture():
    first, second = photo(size=(30, 10)), photo(size=(12, 12))
    data = encode(first, "MPO", save_all=True, append_images=[second], exif=exif_with_gps())
    assert Image.open(io.BytesIO(data)).format == "MPO"
    result = sanitize_photo(data)
    assert (result.width, result.height) == (30, 10)
    assert Image.open(io.BytesIO(result.content)).format == "JPEG"
    assert_no_metadata(result)


# --------------------------------------------------------------------------- refusals


def test_empty_and_too_large():
    with pytest.raises(PhotoRejected, match="empty"):
        sanitize_photo(b"")
    data = encode(photo(), "PNG")
    sanitize_photo(data, max_bytes=len(data))
    with pytest.raises(PhotoRejected, match="too large"):
        sanitize_photo(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO"])
def test_other_image_formats_refused(fmt):
    with pytest.raises(PhotoRejected, match="JPEG, PNG or WebP"):
        sanitize_photo(encode(photo(), fmt))


def test_non_images_refused():
    for data in (b"hello world", b"<svg/>", b"%PDF-1.7\n", b"RIFF\x10\x00\x00\x00WAVEfmt "):
        with pytest.raises(PhotoRejected, match="JPEG, PNG or WebP"):
            sanitize_photo(data)
    with pytest.raises(PhotoRejected):
        sanitize_photo("not bytes")


def test_magic_bytes_and_content_must_agree():
    # a JPEG signature glued to a PNG
    with pytest.raises(PhotoRejected, match="damaged"):
        sanitize_photo(b"\xff\xd8\xff" + encode(photo(), "PNG"))


def test_png_signature_with_garbage_refused():
    with pytest.raises(PhotoRejected, match="damaged"):
        sanitize_photo(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_refused(fmt):
    big = Image.effect_noise((64, 64), 60).convert("RGB")
    data = encode(big, fmt)
    with pytest.raises(PhotoRejected, match="damaged"):
        sanitize_photo(data[: len(data) // 2])


def test_too_many_pixels_refused():
    data = encode(photo(size=(100, 50)), "PNG")
    sanitize_photo(data, max_pixels=5000)
    with pytest.raises(PhotoRejected, match="too many pixels"):
        sanitize_photo(data, max_pixels=4999)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(50_000, 50_000), (10_000, 5_000), (8_000, 6_000)])
def test_decompression_bomb_refused_before_decoding(size):
    # 2.5 G pixels: above twice Pillow's limit (it raises); 50 M and 48 M: above ours
    with pytest.raises(PhotoRejected, match="too many pixels"):
        sanitize_photo(_png_header_only(*size))


def test_pillow_bomb_warning_is_a_refusal_too():
    # our own limit raised above Pillow's: Pillow's warning (100 M > 89 M pixels) refuses it
    with pytest.raises(PhotoRejected, match="too many pixels"):
        sanitize_photo(_png_header_only(10_000, 10_000), max_pixels=200_000_000)


def test_animated_png_refused():
    frames = [photo(colour=(255, 0, 0)), photo(colour=(0, 255, 0))]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    with pytest.raises(PhotoRejected, match="animated"):
        sanitize_photo(data)


def test_animated_webp_refused():
    frames = [photo(colour=(255, 0, 0)), photo(colour=(0, 255, 0))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    with pytest.raises(PhotoRejected, match="animated"):
        sanitize_photo(data)


def test_rejection_is_a_value_error_with_message():
    with pytest.raises(ValueError) as excinfo:
        sanitize_photo(b"")
    assert excinfo.value.message == str(excinfo.value)


def test_icc_profile_converted_to_srgb_then_dropped():
    from upgestao_identity.domain import photos

    image = photo()
    assert photos._to_srgb(image, SRGB_ICC, has_alpha=False) is not None  # the conversion path really runs
    result = sanitize_photo(encode(image, "PNG", icc_profile=SRGB_ICC))
    out = assert_no_metadata(result)
    r, g, b = out.getpixel((20, 10))[:3]
    assert abs(r - 200) <= 2 and abs(g - 30) <= 2 and abs(b - 30) <= 2  # sRGB -> sRGB keeps the colours
    rgba = Image.new("RGBA", (8, 8), (200, 30, 30, 128))
    out = Image.open(io.BytesIO(sanitize_photo(encode(rgba, "PNG", icc_profile=SRGB_ICC)).content))
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 128


def test_malformed_icc_profile_ignored():
    data = encode(photo(), "JPEG", icc_profile=b"not an ICC profile at all" * 10)
    result = sanitize_photo(data)
    assert_no_metadata(result)


def test_the_pixel_cap_is_the_kernels_and_is_read_from_the_header():
    """Finding 5: 12 MP (``upgestao_kernel.limits.PHOTO_MAX_PIXELS``), checked before a pixel is decoded;
    Pillow's own guard is set to the same cap."""
    from upgestao_kernel.limits import PHOTO_MAX_PIXELS

    assert PHOTO_MAX_PIXELS == 12_000_000 and Image.MAX_IMAGE_PIXELS == PHOTO_MAX_PIXELS
    with pytest.raises(PhotoRejected, match="too many pixels"):
        sanitize_photo(_png_header_only(4_000, 3_001))  # 12 004 000: its IDAT would not even decode
    with pytest.raises(PhotoRejected, match="too many pixels"):
        sanitize_photo(_png_header_only(6_300, 6_300))  # the 40 MP bomb the landed code decoded
