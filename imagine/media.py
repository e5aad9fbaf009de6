"""Images given to the engine as input (image-to-image, describe), checked before any I/O.

They arrive as gpt4free takes them, ``[(bytes, filename), ...]``. Whatever their source, they
are only sent on when they really are a PNG, JPEG, WebP or GIF (by their bytes, not their name),
not empty and not over the size cap; the file name is reduced to a harmless one, since it
travels to a third party's server (multipart ``filename``, Gradio's ``orig_name``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import BadInput, size_text
from .fetch import sniff_image

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class InputImage:
    """One checked input image: its bytes, a safe file name and the type its bytes show."""

    data: bytes
    name: str
    mime: str

    def __repr__(self) -> str:  # never dump the bytes into a log line
        return f"InputImage({self.name!r}, {self.mime}, {len(self.data)} bytes)"


def safe_name(name: Any, extension: str) -> str:
    """``name`` without folders or odd characters, with the extension its bytes call for."""
    base = posixpath.basename(str(name or "").replace("\\", "/"))
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _UNSAFE.sub("-", stem).strip(".-")[: MAX_NAME - len(extension) - 1]
    return f"{stem or 'image'}.{extension}"


def check_image(item: Any, *, max_bytes: int) -> InputImage:
    """One ``(bytes, filename)`` pair (or bare bytes), checked; ``BadInput`` says what is wrong."""
    if isinstance(item, InputImage):
        item = (item.data, item.name)  # checked already; the cap may differ here
    if isinstance(item, bytes | bytearray | memoryview):
        data, name = bytes(item), "image"
    elif isinstance(item, tuple | list) and len(item) == 2:
        raw, name = item
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise BadInput("An input image must be given as its bytes and a file name.")
        data = bytes(raw)
    else:
        raise BadInput("An input image must be given as its bytes and a file name.")
    if not data:
        raise BadInput("The input image is empty.")
    if len(data) > max_bytes:
        raise BadInput(
            f"The input image is {size_text(len(data))}; the limit is {size_text(max_bytes)}."
        )
    kind = sniff_image(data[:16])
    if kind is None:
        raise BadInput("The input file is not an image (PNG, JPEG, WebP or GIF expected).")
    mime, extension = kind
    return InputImage(data, safe_name(name, extension), mime)


def check_media(media: Iterable[Any] | None, *, max_bytes: int) -> tuple[InputImage, ...]:
    """Every input image, checked (none is fine: most jobs have none)."""
    if media is None:
        return ()
    if isinstance(media, bytes | bytearray | memoryview) or (
        isinstance(media, tuple) and len(media) == 2 and isinstance(media[1], str)
    ):
        media = [media]  # one image given bare: forgiven, as gpt4free forgives it
    return tuple(check_image(item, max_bytes=max_bytes) for item in media)
