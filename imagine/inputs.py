"""An input image from someone else (a Discord attachment), made safe to send anywhere.

The bytes are untrusted. Before a backend sees anything:

- the type comes from the magic bytes (PNG, JPEG, WebP or GIF), never from the name;
- the size in pixels comes from the header, read by ``header_size`` without Pillow, and is
  capped before any decoder sees the file (Pillow's WebP reader sets up its decoder, canvas
  included, on open; and Pillow's bomb error does not say the size, which the refusal
  should); Pillow's own guard (``images.MAX_PIXELS``) stays on behind it;
- the image is decoded once (a big JPEG at 1/2, 1/4 or 1/8 scale via ``draft``), turned
  upright by its EXIF orientation, shrunk to ``MAX_OUTPUT_SIDE``, and re-encoded from the
  pixels alone, so no metadata block survives: EXIF (GPS, camera serial, time), XMP, IPTC,
  comments and PNG text chunks all go;
- colours are converted to sRGB when the file carries an ICC profile, then the profile goes
  too: backends read pixels as sRGB and ignore profiles, so an untouched Display P3 photo
  (every recent iPhone's) would come out dull, and a profile's text can name the device;
- the output is PNG when some pixel is transparent (JPEG has no alpha; edits keep it), else
  JPEG at quality 95 without chroma subsampling: a model cannot tell it from the original,
  and a 2048x2048 photo stays near 1-2 MB instead of 6-10 MB as PNG, which matters for
  upload limits (OpenAI's edits endpoint) and for the time an upload to a Space takes;
  ``lossless`` keeps PNG for an image whose very pixels matter (what Upscale sharpens, what
  Fill keeps outside its mask).

Decoding is CPU work: callers on an event loop run ``prepare_input_image`` in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import struct
import warnings
from dataclasses import dataclass, field
from typing import IO, cast

from PIL import Image, ImageCms, ImageOps

from .errors import BadInput, size_text
from .fetch import sniff_image
from .i18n import _
from .images import MAX_PIXELS  # importing images also sets Pillow's global bomb guard

MAX_BYTES = 10 * 2**20
MAX_SIDE = 4096
MAX_INPUT_PIXELS = 16 * 2**20
MAX_OUTPUT_SIDE = 2048
"""No backend here takes more (FLUX and SD 3.5 top out at 2048)."""
JPEG_QUALITY = 95

NOT_AN_IMAGE = _("That file is not an image (PNG, JPEG, WebP or GIF).")
UNREADABLE = _("That image could not be read: the file is damaged or incomplete.")

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
_EXIF_ERRORS = (*_DECODE_ERRORS, KeyError, IndexError, TypeError)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True, slots=True)
class InputImage:
    """An input image, re-encoded: nothing in ``data`` but pixels."""

    data: bytes = field(repr=False)
    filename: str
    """The original's stem (letters, digits, ``-`` and ``_`` only) and the new extension."""
    mime: str
    width: int
    height: int
    sha256: str
    """Of the bytes as received: what the job log records to say which image a job used."""
    encoded_sha256: str
    """Of ``data``: what was sent to a backend."""

    @property
    def size(self) -> int:
        return len(self.data)

    def as_media(self) -> tuple[bytes, str]:
        """As the engine takes input images (gpt4free's ``media`` item)."""
        return self.data, self.filename


def prepare_input_image(
    data: bytes | IO[bytes],
    *,
    filename: str,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_INPUT_PIXELS,
    lossless: bool = False,
) -> InputImage:
    """``data`` (bytes, or a file read from where it stands) checked, decoded and re-encoded
    as the module notes say (as PNG whatever it holds with ``lossless``); ``BadInput`` in
    words for the person who sent it otherwise."""
    raw = _read(data, max_bytes)
    picture = load_input_image(raw, max_bytes=max_bytes, max_side=max_side, max_pixels=max_pixels)
    encoded, out_mime, extension = _encode(picture, lossless=lossless)
    return InputImage(
        data=encoded,
        filename=f"{_stem(filename)}.{extension}",
        mime=out_mime,
        width=picture.width,
        height=picture.height,
        sha256=hashlib.sha256(raw).hexdigest(),
        encoded_sha256=hashlib.sha256(encoded).hexdigest(),
    )


def check_input_image(
    raw: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> tuple[str, tuple[int, int]]:
    """The checks that need no decoding (size in bytes, type by the magic bytes, size in
    pixels from the header): ``(mime, (width, height))``, or ``BadInput``. Cheap enough to run
    on an event loop, before a job is accepted."""
    check_file_size(len(raw), max_bytes=max_bytes)
    kind = sniff_image(raw[:16])
    if kind is None:
        raise BadInput(NOT_AN_IMAGE)
    mime = kind[0]
    size = header_size(raw, mime)
    if size is None:
        raise BadInput(UNREADABLE)
    check_dimensions(*size, max_side=max_side, max_pixels=min(max_pixels, MAX_PIXELS))
    return mime, size


def load_input_image(
    raw: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> Image.Image:
    """``raw`` checked (``check_input_image``) and decoded as the module notes say: upright,
    sRGB, RGB or RGBA, at most ``MAX_OUTPUT_SIDE`` a side, nothing but pixels. For callers
    that build new images from it (the Fill canvases); CPU work, like ``prepare_input_image``."""
    mime, _size = check_input_image(
        raw, max_bytes=max_bytes, max_side=max_side, max_pixels=max_pixels
    )
    return _decode(raw, mime, max_side=max_side, max_pixels=min(max_pixels, MAX_PIXELS))


def png_bytes(image: Image.Image) -> bytes:
    """``image`` as PNG: lossless, so what is sent is exactly these pixels (no metadata)."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def check_file_size(size: int, *, max_bytes: int = MAX_BYTES) -> None:
    """``BadInput`` when a file of ``size`` bytes is over the limit (also for a size that
    Discord declares, before any download)."""
    if size > max_bytes:
        shown, limit = size_text(size), size_text(max_bytes)
        if shown == limit:  # 10 MiB and a few bytes
            raise BadInput(_("That image is over the {limit} limit.", limit=limit))
        raise BadInput(_("That image is {size}; the limit is {limit}.", size=shown, limit=limit))


def check_dimensions(
    width: int, height: int, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_INPUT_PIXELS
) -> None:
    """``BadInput`` when an image of ``width`` x ``height`` is over the caps."""
    if width < 1 or height < 1:
        raise BadInput(UNREADABLE)
    if max(width, height) > max_side or width * height > max_pixels:
        megapixels = f"{max_pixels / 2**20:.1f}".removesuffix(".0")
        raise BadInput(
            _(
                "That image is {width}×{height} pixels; the limit is {side} pixels a side "
                "and {megapixels} megapixels in all.",
                width=width,
                height=height,
                side=max_side,
                megapixels=megapixels,
            )
        )


def header_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """``(width, height)`` as the file's header declares it, read without decoding or
    allocating anything; ``None`` when the header is cut short or makes no sense."""
    try:
        if mime == "image/png":
            return _png_size(data)
        if mime == "image/gif":
            return struct.unpack("<HH", data[6:10]) if len(data) >= 10 else None
        if mime == "image/webp":
            return _webp_size(data)
        if mime == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: the canvas, 24 bits minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":  # lossy
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in the first SOF marker, walking the segments (EXIF, ICC, XMP...) before it."""
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
        elif marker in _STANDALONE:
            index += 2
        elif marker in _SOF:
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        elif marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        else:
            index += 2 + struct.unpack(">H", data[index + 2 : index + 4])[0]
    return None


def _read(data: bytes | IO[bytes], max_bytes: int) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        check_file_size(len(raw), max_bytes=max_bytes)
        return raw
    raw = data.read(max_bytes + 1)
    if len(raw) > max_bytes:
        try:
            total = data.seek(0, io.SEEK_END)
        except (OSError, ValueError):  # a stream: too large, by how much is unknown
            total = max_bytes + 1
        check_file_size(max(total, max_bytes + 1), max_bytes=max_bytes)
    return raw


def _decode(raw: bytes, mime: str, *, max_side: int, max_pixels: int) -> Image.Image:
    """The first frame, upright, in RGB or RGBA (RGBA only if some pixel is transparent),
    at most ``MAX_OUTPUT_SIDE`` a side, in sRGB, with no metadata attached."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(raw), formats=[_FORMATS[mime]])
            # Pillow's reading of the header must agree with ours (a GIF frame may enlarge it).
            check_dimensions(*opened.size, max_side=max_side, max_pixels=max_pixels)
            if opened.format == "JPEG":
                opened.draft("RGB", _fitted(opened.size))
            opened.load()
    except BadInput:
        raise
    except _DECODE_ERRORS:
        raise BadInput(UNREADABLE) from None
    image: Image.Image = opened
    # An unreadable orientation leaves the pixels as stored (the EXIF goes anyway).
    with contextlib.suppress(*_EXIF_ERRORS):
        ImageOps.exif_transpose(image, in_place=True)
    profile = image.info.get("icc_profile")
    image = _plain_mode(image)
    if max(image.size) > MAX_OUTPUT_SIDE:
        image = image.resize(_fitted(image.size), Image.Resampling.LANCZOS)
    if profile:
        image = _to_srgb(image, profile)
    image = _opaque_or_alpha(image)
    image.info = {}  # the encoders fall back to it for ICC, transparency and comments
    return image


def _fitted(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled down (never up) so the longest side is at most ``MAX_OUTPUT_SIDE``."""
    width, height = size
    scale = min(1.0, MAX_OUTPUT_SIDE / max(width, height))
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def _plain_mode(image: Image.Image) -> Image.Image:
    """RGB, RGBA, L or CMYK: modes that resize well and that a colour transform takes.

    A palette is expanded (resizing a palette image would fall back to nearest neighbour)
    and 16-bit grey is scaled to 8 bits (``convert`` would clip it to white).
    """
    mode = image.mode
    if mode in ("LA", "La", "PA", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA")
    if mode in ("RGB", "RGBA", "L", "CMYK"):
        return image
    if mode.startswith("I"):
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def _to_srgb(image: Image.Image, profile: bytes) -> Image.Image:
    """The pixels converted from the file's ICC profile to sRGB; as they are when the
    profile is broken or does not fit the mode (they are then read as sRGB, as a backend
    would have read them)."""
    if image.mode not in ("RGB", "RGBA", "L", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(
            image, source, _SRGB, outputMode="RGBA" if image.mode == "RGBA" else "RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return image if converted is None else converted


def _opaque_or_alpha(image: Image.Image) -> Image.Image:
    """RGBA when some pixel is transparent, else RGB (a screenshot saved with an all-opaque
    alpha channel is sent as the photo it is)."""
    if image.mode == "RGBA":
        low, _ = cast(tuple[int, int], image.getchannel("A").getextrema())
        if low < 255:
            return image
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, *, lossless: bool = False) -> tuple[bytes, str, str]:
    """``(bytes, mime, extension)``: PNG with alpha or ``lossless``, else JPEG (see the
    module notes)."""
    buffer = io.BytesIO()
    if image.mode == "RGBA" or lossless:
        image.save(buffer, "PNG", compress_level=6)
        return buffer.getvalue(), "image/png", "png"
    try:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    except OSError:
        # Pillow's optimizing encoder writes into one buffer of about two bytes a pixel; a
        # grainy enough image (noise, static) needs more and fails ("broken data stream").
        # Without optimizing, the encoder streams in blocks: a few per cent larger, any size.
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue(), "image/jpeg", "jpg"


def _stem(filename: str) -> str:
    """A safe stem of the name the sender gave: no path, no extension, nothing odd."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    safe = "".join(c for c in stem if (c.isascii() and c.isalnum()) or c in "-_")[:64]
    return safe or "image"
