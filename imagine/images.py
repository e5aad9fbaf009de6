"""Image bytes: reading their size, and making them fit an upload limit.

Pillow's decompression-bomb guard stays on: an image claiming more pixels than
``MAX_PIXELS`` is refused before it is decoded.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from .errors import FetchError
from .fetch import FetchedImage

MAX_PIXELS = 64 * 1024 * 1024
"""Far above any model's output (2048x2048 = 4 Mpx), far below a bomb."""
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.size  # noqa: B018  (header parsed; pixels not decoded yet)
            return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FetchError("The image is far too large to be real (a decompression bomb?).") from None
    except (OSError, ValueError, SyntaxError):
        raise FetchError("The backend's image could not be read.") from None


def image_size(data: bytes | FetchedImage) -> tuple[int, int]:
    """Width and height from the header alone (cheap: nothing is decoded)."""
    if isinstance(data, FetchedImage):
        data = data.head(64 * 1024)  # PNG/JPEG/WebP/GIF headers sit well within this
    return _open(data).size


def fit_image(image: FetchedImage, limit: int) -> tuple[FetchedImage, bool]:
    """The image, re-encoded (WebP, then JPEG, lower quality, then smaller) if it is over
    ``limit`` bytes; ``(image, reencoded)``. ``FetchError`` when nothing fits.
    """
    if image.size <= limit:
        return image, False
    source = _open(image.data)
    try:
        source.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        raise FetchError("The backend's image could not be read.") from None
    picture = source.convert("RGBA" if "A" in source.getbands() else "RGB")
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
