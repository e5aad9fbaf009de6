"""Downloading a result image without trusting the URL it came with.

Space file URLs expire, so the bot attaches the bytes instead of linking. The URL comes from
a backend's answer, so it is treated as untrusted: http(s) only, only from the origin (scheme,
host and port) of the endpoint that produced it (redirects elsewhere refused), a size cap, a
time limit, and bytes that really are a PNG, JPEG, WebP or GIF image. Inline ``data:`` images
(an API's ``b64_json``) are decoded locally under the same size and type checks.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import tempfile
from typing import IO
from urllib.parse import unquote

import aiohttp
from yarl import URL

from .errors import FetchError

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 256 * 1024


SPOOL_BYTES = 512 * 1024
"""Images up to this size stay in memory; larger ones are spooled to a temporary file, so a
burst of 3 MB results does not make the process hold them all."""


class FetchedImage:
    """A downloaded image: its bytes (in a spooled file), MIME type and file name."""

    __slots__ = ("_file", "filename", "mime", "size")

    def __init__(self, file: IO[bytes], size: int, mime: str, filename: str) -> None:
        self._file = file
        self.size = size
        self.mime = mime
        self.filename = filename

    @classmethod
    def from_bytes(cls, data: bytes, mime: str, filename: str) -> FetchedImage:
        file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (it is the result)
        file.write(data)
        return cls(file, len(data), mime, filename)

    @property
    def data(self) -> bytes:
        """All the bytes (for small consumers: tests, the CLI, re-encoding)."""
        self._file.seek(0)
        return self._file.read()

    def open(self) -> IO[bytes]:
        """The file, rewound, for streaming it out (an upload reads it in chunks)."""
        self._file.seek(0)
        return self._file

    def head(self, size: int = 64) -> bytes:
        self._file.seek(0)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"FetchedImage({self.filename!r}, {self.mime}, {self.size} bytes)"


def sniff_image(data: bytes) -> tuple[str, str] | None:
    """``(mime, extension)`` when the bytes start like an image we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", "gif"
    return None


Origin = tuple[str, str, int | None]


def _origin(url: URL) -> Origin:
    """``(scheme, host, port)``, the port made explicit (``https://h`` is ``https://h:443``)."""
    return url.scheme.lower(), (url.host or "").lower(), url.port


def _checked(url: URL, allowed: Origin) -> URL:
    """``url`` when it lives on the ``allowed`` origin; ``FetchError`` otherwise.

    The whole origin counts, not the host alone: another port of the same host may be another
    service, and a switch from https to http would let the bytes be read or changed on the way.
    """
    if url.scheme not in ("http", "https"):
        raise FetchError(
            f"Refused to download the image: {url.scheme or 'no'} scheme, not http(s)."
        )
    scheme, host, port = _origin(url)
    if host != allowed[1]:
        raise FetchError(
            f"Refused to download the image from {host or 'an unknown host'}: "
            f"only {allowed[1]}, the backend that made it, is trusted."
        )
    if (scheme, port) != (allowed[0], allowed[2]):
        raise FetchError(
            f"Refused to download the image from {host}: it is served on another port or "
            "scheme than the backend that made it."
        )
    return url


def _stem(url: URL) -> str:
    name = posixpath.basename(unquote(url.path)) or "image"
    stem = name.rsplit(".", 1)[0] or "image"
    return "".join(c for c in stem if c.isalnum() or c in "-_")[:64] or "image"


async def fetch_image(
    session: aiohttp.ClientSession,
    url: str,
    *,
    origin: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    time_limit: float = 60.0,
    max_redirects: int = 3,
    filename: str | None = None,
    proxy: str | None = None,
) -> FetchedImage:
    """Download ``url``, which must live on the origin (scheme, host and port) of ``origin``,
    as must every redirect; see the module notes.

    ``filename`` is a stem for the returned file name (the extension follows the bytes).
    """
    if url.startswith("data:"):
        return _from_data_url(url, max_bytes=max_bytes, filename=filename)
    try:
        allowed = _origin(URL(origin))
    except (ValueError, TypeError):
        allowed = ("", "", None)
    if not allowed[1]:
        raise FetchError("Refused to download the image: the backend's address has no host.")
    try:
        current = URL(url)
    except (ValueError, TypeError):
        raise FetchError("Refused to download the image: its address is not a URL.") from None
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    try:
        for _ in range(max_redirects + 1):
            _checked(current, allowed)
            async with session.get(
                current, allow_redirects=False, timeout=client_timeout, proxy=proxy
            ) as response:
                if response.status in REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError("The image server redirected nowhere.")
                    current = current.join(URL(location))
                    continue
                if not response.ok:
                    raise FetchError(
                        f"Downloading the image failed: HTTP {response.status}.",
                        status=response.status,
                    )
                length = response.content_length
                if length is not None and length > max_bytes:
                    raise FetchError(_too_large(max_bytes))
                spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
                size = 0
                try:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchError(_too_large(max_bytes))
                        spool.write(chunk)
                except BaseException:
                    spool.close()
                    raise
            break
        else:
            raise FetchError("Downloading the image failed: too many redirects.")
    except TimeoutError:
        raise FetchError(f"Downloading the image took longer than {time_limit:g}s.") from None
    except aiohttp.ClientError as exc:
        raise FetchError(f"Could not download the image ({type(exc).__name__}).") from None
    spool.seek(0)
    kind = sniff_image(spool.read(16))
    if kind is None:
        spool.close()
        raise FetchError("The backend's file is not an image (PNG, JPEG, WebP or GIF expected).")
    mime, extension = kind
    return FetchedImage(spool, size, mime, f"{filename or _stem(current)}.{extension}")


def _from_data_url(url: str, *, max_bytes: int, filename: str | None) -> FetchedImage:
    """An inline ``data:`` image (OpenAI's ``b64_json``): no network, the same checks."""
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise FetchError("Refused an inline image that is not base64.")
    if len(payload) * 3 // 4 > max_bytes:
        raise FetchError(_too_large(max_bytes))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FetchError("The backend's inline image is not valid base64.") from None
    kind = sniff_image(data[:16])
    if kind is None:
        raise FetchError("The backend's file is not an image (PNG, JPEG, WebP or GIF expected).")
    mime, extension = kind
    return FetchedImage.from_bytes(data, mime, f"{filename or 'image'}.{extension}")


def _too_large(max_bytes: int) -> str:
    return f"The image is larger than the {max_bytes / 1024 / 1024:g} MiB download limit."
