"""Image bytes: reading their size, and making them fit an upload limit.

Two decompression-bomb guards: Pillow's global one stays on as a backstop (``MAX_PIXELS``), and
each call takes a ``max_pixels`` cap near what the job asked for (``pixel_cap``), so an image
far larger than requested is refused from its header, before anything is decoded.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import IO

from PIL import Image

from .errors import FetchError
from .fetch import FetchedImage

MAX_PIXELS = 64 * 1024 * 1024
"""The global backstop: far above any model's output (2048x2048 = 4 Mpx), far below a bomb."""
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

MIN_CAP_SIDE = 2 * 1024
"""``pixel_cap`` never goes below this side squared, so a small request (32x32, or Janus's
fixed 384x384) still accepts a backend's usual 1024x1024 output."""

HEADER_BYTES = 64 * 1024
"""Enough for the header of nearly every PNG, JPEG, WebP or GIF; more is read only when not."""

_BOMB = "The image is far too large to be real (a decompression bomb?)."
_UNREADABLE = "The backend's image could not be read."


class _Unreadable(FetchError):
    """Pillow could not parse the header (perhaps only because it was cut short)."""


def pixel_cap(width: int, height: int) -> int:
    """The most pixels a result for a ``width`` x ``height`` job may have before it is treated
    as a decompression bomb: twice the longest asked side, squared (at least
    ``MIN_CAP_SIDE`` squared, at most ``MAX_PIXELS``). Up to four jobs decode at once, so
    the cap follows the request rather than the largest image any job could ask for.
    """
    side = max(2 * max(width, height), MIN_CAP_SIDE)
    return min(side * side, MAX_PIXELS)


def _asked_side(max_pixels: int) -> int:
    """The side a ``pixel_cap`` was made from (the inverse of ``pixel_cap``)."""
    return max(1, math.isqrt(max_pixels) // 2)


def _open(source: IO[bytes], max_pixels: int) -> Image.Image:
    """Parse the header only; refuse images over ``max_pixels`` (and the global backstop)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            width, height = image.size  # header parsed; pixels not decoded yet
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FetchError(_BOMB) from None
    except (OSError, ValueError, SyntaxError):
        raise _Unreadable(_UNREADABLE) from None
    if width * height > max_pixels:
        raise FetchError(
            f"The image is {width}x{height}, far larger than asked for (a decompression bomb?)."
        )
    return image


def image_size(data: bytes | FetchedImage, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Width and height from the header alone (cheap: nothing is decoded).

    ``FetchError`` when the image cannot be read or has more than ``max_pixels`` pixels.
    """
    if not isinstance(data, FetchedImage):
        with _open(io.BytesIO(data), max_pixels) as image:
            return image.size
    try:
        with _open(io.BytesIO(data.head(HEADER_BYTES)), max_pixels) as image:
            return image.size
    except _Unreadable:
        if data.size <= HEADER_BYTES:
            raise
    # A JPEG's size marker (SOF) may follow large ICC/EXIF/XMP blocks: let Pillow read on
    # through the file, which it does only as far as that marker.
    with _open(data.open(), max_pixels) as image:
        return image.size


def _draft(source: Image.Image, max_pixels: int) -> None:
    """Decode a JPEG at 1/2, 1/4 or 1/8 scale when it is at least twice the asked side both
    ways: it is being re-encoded anyway, and the full-size pixels would only cost memory.
    Never below the asked side."""
    side = _asked_side(max_pixels)
    if source.format == "JPEG" and source.width >= 2 * side and source.height >= 2 * side:
        source.draft("RGB", (side, side))


def fit_image(
    image: FetchedImage, limit: int, *, max_pixels: int = MAX_PIXELS
) -> tuple[FetchedImage, bool]:
    """The image, re-encoded (WebP, then JPEG, lower quality, then smaller) if it is over
    ``limit`` bytes; ``(image, reencoded)``. ``FetchError`` when nothing fits, or when the
    image has more than ``max_pixels`` pixels (``pixel_cap`` of the job's size).
    """
    if image.size <= limit:
        return image, False
    with _open(image.open(), max_pixels) as source:
        _draft(source, max_pixels)
        try:
            source.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            raise FetchError(_UNREADABLE) from None
        mode = "RGBA" if "A" in source.getbands() else "RGB"
        # convert() to the same mode copies: skip it, one decoded copy is enough.
        picture = source if source.mode == mode else source.convert(mode)
    stem = image.filename.rsplit(".", 1)[0]
    scale = 1.0
    while scale >= 0.25:
        frame = picture
        if scale < 1.0:
            size = (max(1, int(picture.width * scale)), max(1, int(picture.height * scale)))
            frame = picture.resize(size, Image.Resampling.LANCZOS)
        for quality in (90, 80, 65, 50):
            for fmt, mime, ext in (("WEBP", "image/webp", "webp"), ("JPEG", "image/jpeg", "jpg")):
                buffer = io.BytesIO()
                out = frame if fmt == "WEBP" or frame.mode == "RGB" else frame.convert("RGB")
                out.save(buffer, fmt, quality=quality)
                if buffer.tell() <= limit:
                    fitted = FetchedImage.from_bytes(buffer.getvalue(), mime, f"{stem}.{ext}")
                    return fitted, True
        scale /= 2
    raise FetchError(f"The image could not be made smaller than {limit / 1024 / 1024:g} MiB.")


PREVIEW_SIDE = 384
"""Previews are small: they show that the image is coming, in a few KB per edit."""


def preview_jpeg(
    image: FetchedImage, *, max_pixels: int = MAX_PIXELS, side: int = PREVIEW_SIDE
) -> bytes:
    """A backend's preview as a small JPEG (``side`` pixels at most), for a status edit."""
    with _open(image.open(), max_pixels) as source:
        source.draft("RGB", (side, side))  # a JPEG decodes at a fraction of its size
        try:
            source.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            raise FetchError(_UNREADABLE) from None
        picture = source.convert("RGB")
    picture.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()
