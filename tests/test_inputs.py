"""Input images: only real images, never too large, and nothing but pixels leaves the bot."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import tempfile
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms, JpegImagePlugin

from imagine import inputs
from imagine.errors import BadInput
from imagine.inputs import InputImage, check_dimensions, header_size, prepare_input_image

GPS = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 1.0), 29: "2024:05:01"}
XMP = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF>secret-xmp</rdf:RDF></x:xmpmeta>"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gps_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Model] = "Model-X123"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    return exif


def halves(size=(200, 100), left="red", right="blue") -> Image.Image:
    """Left half one colour, right half another: shows which way an image was turned."""
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def jpeg_segments(data: bytes) -> list[int]:
    """The markers of a JPEG's segments up to the scan (APP1 = 0xE1 holds EXIF and XMP)."""
    assert data[:2] == b"\xff\xd8"
    markers, index = [], 2
    while index < len(data):
        marker = data[index + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        index += 2 + struct.unpack(">H", data[index + 2 : index + 4])[0]
    raise AssertionError("no scan")


def png_chunks(data: bytes) -> list[bytes]:
    chunks, index = [], 8
    while index < len(data):
        length = struct.unpack(">I", data[index : index + 4])[0]
        chunks.append(data[index + 4 : index + 8])
        index += 12 + length
    return chunks


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose pixels are a few bytes:
    a decompression bomb, or a file cut short, depending on who reads it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail if Pillow is asked to open the file at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("the image was handed to Pillow")

    monkeypatch.setattr(inputs.Image, "open", refuse)


# -- metadata ---------------------------------------------------------------------------------


def test_a_jpeg_with_gps_exif_comes_out_with_no_metadata_at_all():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = encode(
        halves(), "JPEG", exif=gps_exif(), xmp=XMP, comment=b"secret-comment", icc_profile=icc
    )
    # The fixture really carries what we mean to strip.
    source = Image.open(io.BytesIO(original))
    assert source.getexif().get_ifd(ExifTags.IFD.GPSInfo)[2] == (52.0, 31.0, 12.5)
    assert {"exif", "xmp", "comment", "icc_profile"} <= source.info.keys()

    result = prepare_input_image(original, filename="holiday.jpg")

    assert result.mime == "image/jpeg" and result.filename == "holiday.jpg"
    output = Image.open(io.BytesIO(result.data))
    assert output.format == "JPEG"
    assert len(output.getexif()) == 0
    assert not {"exif", "xmp", "comment", "icc_profile"} & output.info.keys()
    # No APPn segment but JFIF's APP0, no comment segment: nothing to hide anything in.
    segments = jpeg_segments(result.data)
    assert [m for m in segments if 0xE1 <= m <= 0xEF or m == 0xFE] == []
    for secret in (b"Exif", b"SecretCam", b"Model-X123", b"secret-xmp", b"secret-comment"):
        assert secret not in result.data
    assert struct.pack(">II", 52, 1) not in result.data  # the GPS latitude's rational
    assert (output.width, output.height) == (200, 100)


def test_hashes_are_of_the_bytes_received_and_of_the_bytes_sent():
    original = encode(halves(), "JPEG", exif=gps_exif())
    result = prepare_input_image(original, filename="a.jpg")
    assert result.sha256 == hashlib.sha256(original).hexdigest()
    assert result.encoded_sha256 == hashlib.sha256(result.data).hexdigest()
    assert result.sha256 != result.encoded_sha256
    assert result.size == len(result.data)
    assert "data" not in repr(result) and "a.jpg" in repr(result)


def test_png_text_chunks_and_exif_are_dropped():
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "secret-text")
    text.add_itxt("XML:com.adobe.xmp", "secret-xmp")
    image = Image.new("RGBA", (64, 64), (0, 128, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    original = encode(image, "PNG", pnginfo=text, exif=gps_exif())
    assert b"secret-text" in original and b"eXIf" in original

    result = prepare_input_image(original, filename="x.png")

    assert result.mime == "image/png"
    assert png_chunks(result.data) == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_a_comment_is_dropped_even_when_nothing_else_changes(fmt):
    # No profile, no turn, no resize: the decoded image is the one Pillow opened, whose
    # ``info`` the encoders would copy the comment from.
    original = encode(Image.new("RGB", (40, 30), "red"), fmt, comment=b"secret-comment")
    assert b"secret-comment" in original
    result = prepare_input_image(original, filename="c")
    assert b"secret-comment" not in result.data
    assert "comment" not in Image.open(io.BytesIO(result.data)).info


def test_the_exif_orientation_is_applied_before_it_is_dropped():
    # Orientation 6: shown turned 90° clockwise, so the stored left half ends up on top.
    original = encode(halves((200, 100)), "JPEG", exif=gps_exif(orientation=6), quality=95)
    result = prepare_input_image(original, filename="phone.jpg")
    output = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert (result.width, result.height) == output.size == (100, 200)
    assert near(output.getpixel((50, 40)), (255, 0, 0))
    assert near(output.getpixel((50, 160)), (0, 0, 255))
    assert len(output.getexif()) == 0


def swapped_profile() -> bytes:
    """A tiny ICC v2 RGB profile whose red primary is sRGB's blue and the other way round,
    so a pixel stored as pure red means blue: easy to see whether the profile was used."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233) + b"\0\0"  # gamma 2.2
    tags = [
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = body = b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "RGB"), ("PNG", "RGB"), ("PNG", "RGBA")])
def test_colours_are_converted_to_srgb_and_the_profile_dropped(fmt, mode):
    image = Image.new(mode, (32, 32), "red")
    if mode == "RGBA":
        image.putpixel((0, 0), (0, 0, 0, 0))
    original = encode(image, fmt, icc_profile=swapped_profile())
    result = prepare_input_image(original, filename="wide-gamut")
    output = Image.open(io.BytesIO(result.data))
    assert "icc_profile" not in output.info
    assert output.mode == mode
    assert near(output.getpixel((16, 16))[:3], (0, 0, 255), tolerance=12)


def test_a_broken_icc_profile_leaves_the_pixels_as_they_are():
    original = encode(halves(), "PNG", icc_profile=b"not a profile at all" * 10)
    result = prepare_input_image(original, filename="a.png")
    output = Image.open(io.BytesIO(result.data))
    assert "icc_profile" not in output.info
    assert near(output.getpixel((10, 50)), (255, 0, 0), tolerance=8)


def test_a_cmyk_jpeg_comes_out_rgb():
    plain = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # no profile: plain arithmetic
    result = prepare_input_image(encode(plain, "JPEG"), filename="print.jpg")
    output = Image.open(io.BytesIO(result.data))
    assert output.mode == "RGB"
    assert near(output.getpixel((16, 16)), (255, 0, 0), tolerance=20)


# -- alpha and formats ------------------------------------------------------------------------


def test_a_png_with_transparency_keeps_it():
    image = Image.new("RGBA", (80, 60), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (0, 0, 40, 60))
    result = prepare_input_image(encode(image, "PNG"), filename="sticker.png")
    output = Image.open(io.BytesIO(result.data))
    assert (result.mime, result.filename, output.format) == ("image/png", "sticker.png", "PNG")
    assert output.mode == "RGBA"
    assert output.getpixel((10, 10))[3] == 0
    assert output.getpixel((70, 10)) == (255, 0, 0, 255)


def test_a_palette_gif_with_a_transparent_colour_keeps_it():
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(0, (0, 0, 20, 40))
    result = prepare_input_image(encode(image, "GIF", transparency=0), filename="a.gif")
    output = Image.open(io.BytesIO(result.data))
    assert result.mime == "image/png" and output.mode == "RGBA"
    assert output.getpixel((5, 5))[3] == 0 and output.getpixel((30, 5)) == (255, 0, 0, 255)


def test_an_opaque_alpha_channel_is_sent_as_a_photo():
    image = Image.new("RGBA", (64, 64), (10, 200, 10, 255))
    result = prepare_input_image(encode(image, "PNG"), filename="screenshot.png")
    assert (result.mime, result.filename) == ("image/jpeg", "screenshot.jpg")
    assert Image.open(io.BytesIO(result.data)).mode == "RGB"


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (48, 32), colour) for colour in ("red", "lime", "blue")]
    original = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(original)).n_frames == 3
    result = prepare_input_image(original, filename="dance.gif")
    output = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert (result.mime, result.filename, output.size) == ("image/jpeg", "dance.jpg", (48, 32))
    assert near(output.getpixel((24, 16)), (255, 0, 0))


def test_an_animated_webp_gives_its_first_frame():
    frames = [Image.new("RGB", (48, 32), colour) for colour in ("blue", "red")]
    original = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    result = prepare_input_image(original, filename="clip.webp")
    output = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert near(output.getpixel((24, 16)), (0, 0, 255))


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white():
    image = Image.new("I;16", (16, 16), 32768)  # mid grey in 16 bits
    result = prepare_input_image(encode(image, "PNG"), filename="scan.png")
    output = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert near(output.getpixel((8, 8)), (128, 128, 128), tolerance=4)


def test_a_big_image_is_shrunk_to_2048_and_a_big_jpeg_decoded_in_draft(monkeypatch):
    drafts = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    original = encode(halves((4096, 3072)), "JPEG", quality=80)
    result = prepare_input_image(original, filename="big.jpg")
    assert (result.width, result.height) == (2048, 1536)
    assert Image.open(io.BytesIO(result.data)).size == (2048, 1536)
    assert drafts == [(2048, 1536)]


def test_an_image_of_pure_noise_is_still_re_encoded():
    """JPEG's optimizing encoder runs out of buffer on static ("broken data stream")."""
    noise = Image.frombytes("RGB", (600, 400), random.Random(7).randbytes(600 * 400 * 3))
    image = prepare_input_image(encode(noise, "PNG", compress_level=1), filename="static.png")
    assert (image.mime, image.width, image.height) == ("image/jpeg", 600, 400)
    assert Image.open(io.BytesIO(image.data)).size == (600, 400)


def test_a_tall_png_keeps_its_shape_when_shrunk():
    result = prepare_input_image(encode(halves((1000, 3000)), "PNG"), filename="tall.png")
    assert (result.width, result.height) == (683, 2048)


# -- refusals ---------------------------------------------------------------------------------


def test_a_text_file_named_png_is_not_an_image(no_decoding):
    with pytest.raises(BadInput, match=r"^That file is not an image \(PNG, JPEG, WebP or GIF\)\.$"):
        prepare_input_image(b"hello, I am text\n" * 20, filename="cat.png")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"BM" + b"\0" * 100,  # BMP: an image, but not one we take
        b"\0\0\0\x18ftypheic" + b"\0" * 100,  # HEIC
    ],
)
def test_other_files_are_not_images(data):
    with pytest.raises(BadInput, match="not an image"):
        prepare_input_image(data, filename="x.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a_truncated_file_is_refused(fmt):
    noise = Image.frombytes("RGB", (128, 128), random.Random(fmt).randbytes(128 * 128 * 3))
    data = encode(noise, fmt)
    with pytest.raises(BadInput, match=r"could not be read: the file is damaged or incomplete"):
        prepare_input_image(data[: len(data) // 2], filename="cut")


def test_a_header_cut_short_is_refused(no_decoding):
    data = encode(halves(), "PNG")
    with pytest.raises(BadInput, match="damaged or incomplete"):
        prepare_input_image(data[:20], filename="cut.png")


def test_a_decompression_bomb_header_is_refused_without_decoding(no_decoding):
    with pytest.raises(
        BadInput,
        match=r"^That image is 20000×20000 pixels; the limit is 4096 pixels a side "
        r"and 16 megapixels in all\.$",
    ):
        prepare_input_image(png_header_only(20000, 20000), filename="bomb.png")


def test_a_webp_bomb_is_refused_before_pillow_allocates_its_canvas(no_decoding):
    # Pillow's WebP reader sets up its decoder, canvas included, when it opens the file: a
    # VP8X header claiming 11000x11000 is under Pillow's own bomb limit.
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    small = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert small[12:16] == b"VP8X"
    bomb = small[:24] + (10999).to_bytes(3, "little") * 2 + small[30:]
    assert header_size(bomb, "image/webp") == (11000, 11000)
    with pytest.raises(BadInput, match="That image is 11000×11000 pixels"):
        prepare_input_image(bomb, filename="bomb.webp")


def test_each_cap_is_checked_on_its_own():
    check_dimensions(4096, 4096)  # exactly the limits
    with pytest.raises(BadInput, match="4097×10 pixels"):
        check_dimensions(4097, 10)
    with pytest.raises(BadInput, match="3000×3000 pixels; the limit is 4096 pixels a side and 8"):
        check_dimensions(3000, 3000, max_pixels=8 * 2**20)
    with pytest.raises(BadInput, match="damaged"):
        check_dimensions(0, 10)


def test_the_pixel_cap_applies_to_real_files():
    original = encode(halves((300, 300)), "PNG")
    with pytest.raises(BadInput, match="300×300 pixels"):
        prepare_input_image(original, filename="a.png", max_pixels=300 * 299)
    assert prepare_input_image(original, filename="a.png", max_pixels=300 * 300).width == 300


def test_a_file_over_the_byte_limit_is_refused_with_its_size(no_decoding):
    too_big = b"\xff\xd8\xff" + b"\0" * (30 * 2**20 - 3)
    with pytest.raises(BadInput, match=r"^That image is 30 MiB; the limit is 10 MiB\.$"):
        prepare_input_image(too_big, filename="huge.jpg")
    with pytest.raises(BadInput, match=r"^That image is 30 MiB; the limit is 10 MiB\.$"):
        prepare_input_image(io.BytesIO(too_big), filename="huge.jpg")


def test_a_stream_over_the_limit_is_refused_without_reading_it_all():
    class Endless(io.RawIOBase):
        read_total = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            Endless.read_total += len(buffer)
            buffer[:] = b"\xff" * len(buffer)
            return len(buffer)

        def seekable(self):
            return False

    with pytest.raises(BadInput, match=r"^That image is over the 10 MiB limit\.$"):
        prepare_input_image(io.BufferedReader(Endless()), filename="x.jpg")
    assert Endless.read_total <= 10 * 2**20 + 2 * 2**16


def test_a_spooled_file_is_read_like_bytes():
    original = encode(halves(), "WEBP", quality=90)
    with tempfile.SpooledTemporaryFile() as spool:
        spool.write(original)
        spool.seek(0)
        result = prepare_input_image(spool, filename="a.webp")
    assert isinstance(result, InputImage)
    assert result.sha256 == hashlib.sha256(original).hexdigest()
    assert (result.width, result.height, result.mime) == (200, 100, "image/jpeg")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("holiday.jpg", "holiday"),
        ("../../etc/passwd.png", "passwd"),
        ("C:\\Users\\me\\cat.JPG", "cat"),
        ("my photo (1).jpeg", "myphoto1"),
        ("archive.tar.gz", "archivetar"),
        ("猫.png", "image"),
        ("", "image"),
        (".png", "image"),
        ("a" * 300 + ".png", "a" * 64),
    ],
)
def test_the_file_name_keeps_a_safe_stem_and_gets_the_new_extension(name, stem):
    result = prepare_input_image(encode(halves(), "PNG"), filename=name)
    assert result.filename == f"{stem}.jpg"


# -- reading sizes from headers ---------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (300, 200), (17, 4001), (4099, 3)])
@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {"exif": gps_exif(), "icc_profile": b"\0" * 70000}),  # SOF after big blocks
        ("JPEG", {"progressive": True}),
        ("GIF", {}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"quality": 50}),
        ("WEBP", {"exif": gps_exif()}),  # extended (VP8X)
    ],
)
def test_header_size_agrees_with_pillow(fmt, options, size):
    data = encode(Image.new("RGB", size, "white"), fmt, **options)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}.get(fmt, "image/webp")
    assert header_size(data, mime) == Image.open(io.BytesIO(data)).size == size
    # A file cut anywhere gives the right size or none, never a wrong one.
    later = range(64, len(data))
    for cut in [*range(64), *random.Random(fmt).sample(later, min(40, len(later)))]:
        assert header_size(data[:cut], mime) in (None, size)
