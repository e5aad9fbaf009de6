"""Discord's CDN: attachments as Discord describes them, and their bytes at their ``url``.

Every file the fake stores (a bot's upload, a user's message attachment, an attachment
option of a slash command, a file in a modal) becomes an attachment object here: ``id``,
``filename``, ``size``, ``content_type``, ``url``/``proxy_url`` (signed-looking, on this
server), ``width``/``height`` and a ``placeholder`` for images (read with Pillow), plus the
bytes under ``data`` (never sent to the client).

A test may describe an attachment that differs from its bytes with :class:`FakeAttachment`
(or ``(filename, bytes, {"size": ...})``): Discord's JSON then claims the declared size (a
"30 MiB upload" without 30 MiB in memory) while the CDN serves the bytes given. ``GET`` and
``HEAD`` are answered, with one ``Range: bytes=...`` honoured (206/416), and every ``GET``
that served bytes is counted in :attr:`Cdn.downloads`, so a test can tell that a bot
refused a file without downloading it.

URLs are signed as Discord signs them: ``?ex=<expiry>&is=<issued>&hm=<signature>&`` (epoch
seconds in hex, an HMAC of path, ``ex`` and ``is``), valid for about a day. Past ``ex``, or
with a signature that does not match, the CDN answers 404 "This content is no longer
available." (counted in :attr:`Cdn.expired`), as Discord's does. :meth:`Cdn.age` moves the
CDN's clock ahead: the URLs a client already holds then expire, and whatever the fake sends
from then on (a message fetched again, an event, an interaction) carries fresh ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import mimetypes
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from aiohttp import web

from .routing import Route

__all__ = ["Cdn", "FakeAttachment", "Upload", "as_attachment", "image_size"]

ATTACHMENT_ROUTE = "/attachments/{channel_id}/{attachment_id}/{filename}"
URL_LIFETIME = 24 * 3600
"""Seconds a signed URL works (Discord: about a day)."""
GONE = "This content is no longer available."
"""What Discord's CDN answers (404) for an expired or badly signed attachment URL."""
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class FakeAttachment:
    """A file as a user attaches it; what Discord will say about it may be overridden.

    ``size``: the size Discord reports (default ``len(data)``); ``content_type`` (default:
    guessed from the filename); ``width``/``height`` (default: read from image bytes).
    """

    filename: str
    data: bytes
    size: int | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    description: str | None = None


#: What drivers accept as a file: bytes (named ``upload.bin``), ``(filename, bytes)``,
#: ``(filename, bytes, {"size": ..., "content_type": ..., ...})`` or a FakeAttachment.
Upload = bytes | tuple[Any, ...] | FakeAttachment


def as_attachment(value: Upload) -> FakeAttachment:
    """Any accepted file form, as a :class:`FakeAttachment`."""
    if isinstance(value, FakeAttachment):
        return value
    if isinstance(value, bytes | bytearray):
        return FakeAttachment("upload.bin", bytes(value))
    if isinstance(value, tuple) and len(value) in (2, 3):
        extra = value[2] if len(value) == 3 else {}
        return FakeAttachment(str(value[0]), bytes(value[1]), **extra)
    raise TypeError(f"not a file: {value!r} (bytes, (name, bytes[, overrides]), FakeAttachment)")


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width/height for images, as Discord reports them (Pillow if available)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a project dependency
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


class Cdn:
    """The attachments the fake holds, by id, and the route that serves them."""

    def __init__(self, snowflake: Callable[[], int], base_url: Callable[[], str]) -> None:
        self._snowflake = snowflake
        self._base_url = base_url
        self.attachments: dict[int, dict[str, Any]] = {}
        #: attachment id -> how many GETs its url answered with bytes (HEADs are not downloads).
        self.downloads: Counter[int] = Counter()
        #: attachment id -> how many requests came with an expired (or badly signed) URL.
        self.expired: Counter[int] = Counter()
        #: Seconds the CDN's clock is ahead of the real one (see :meth:`age`).
        self.clock_offset = 0.0
        self._key = secrets.token_bytes(32)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def age(self, seconds: float) -> None:
        """Move the CDN's clock ``seconds`` ahead (past ``URL_LIFETIME``: every URL handed out
        so far has expired). Expired attachments are signed again, so what the fake sends
        from now on (a message fetched again, an event) carries a URL that works."""
        self.clock_offset += seconds
        for att in self.attachments.values():
            if _expiry(att["url"]) <= self.now():
                att["url"] = att["proxy_url"] = self._signed(urlsplit(att["url"]).path)

    def _signature(self, path: str, ex: str, issued: str) -> str:
        message = f"{unquote(path)}?ex={ex}&is={issued}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _signed(self, path: str) -> str:
        """``path`` on this server, signed now for ``URL_LIFETIME`` seconds."""
        now = int(self.now())
        ex, issued = f"{now + URL_LIFETIME:x}", f"{now:x}"
        hm = self._signature(path, ex, issued)
        return f"{self._base_url()}{path}?ex={ex}&is={issued}&hm={hm}&"

    def valid(self, path: str, query: str) -> bool:
        """Whether a request for ``path`` with ``query`` is signed and not expired."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        ex, issued, hm = params.get("ex", ""), params.get("is", ""), params.get("hm", "")
        try:
            expiry = int(ex, 16)
        except ValueError:
            return False
        if not hmac.compare_digest(hm, self._signature(path, ex, issued)):
            return False
        return self.now() < expiry

    def store(
        self, channel_id: int, upload: FakeAttachment, *, ephemeral: bool = False
    ) -> dict[str, Any]:
        """A new attachment object for ``upload`` (with its bytes under ``data``)."""
        attachment_id = self._snowflake()
        filename, data = upload.filename, upload.data
        content_type = (
            upload.content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        url = self._signed(f"/attachments/{channel_id}/{attachment_id}/{quote(filename)}")
        att: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data) if upload.size is None else upload.size,
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
            "flags": 0,
            "data": data,
        }
        if upload.description is not None:
            att["description"] = upload.description
        if ephemeral:
            att["ephemeral"] = True
        size = image_size(data) if content_type.startswith("image/") else None
        if upload.width is not None and upload.height is not None:
            size = (upload.width, upload.height)
        if size is not None:
            att["width"], att["height"] = size
            att["placeholder_version"] = 1
            att["placeholder"] = base64.b64encode(hashlib.md5(data).digest()[:16]).decode()
        self.attachments[attachment_id] = att
        return att

    def routes(self) -> list[Route]:
        return [
            Route(method, ATTACHMENT_ROUTE, self._serve, auth=False, prefix="")
            for method in ("GET", "HEAD")
        ]

    async def _serve(self, request: web.Request) -> web.Response:
        try:
            attachment_id = int(request.match_info["attachment_id"])
            att = self.attachments[attachment_id]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        if not self.valid(request.path, request.query_string):
            self.expired[attachment_id] += 1
            return web.Response(status=404, text=GONE)
        data: bytes = att["data"]
        headers = {"Accept-Ranges": "bytes"}
        span = _byte_range(request.headers.get("Range"), len(data))
        if span is None:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return web.Response(status=416, headers=headers)
        start, end, partial = span
        if request.method == "GET":
            self.downloads[attachment_id] += 1
        if partial:
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return web.Response(
            status=206 if partial else 200,
            body=data[start : end + 1],
            content_type=att["content_type"],
            headers=headers,
        )


def _expiry(url: str) -> float:
    """The ``ex`` of a signed URL (0 when it has none)."""
    values = parse_qs(urlsplit(url).query).get("ex") or ["0"]
    try:
        return int(values[0], 16)
    except ValueError:
        return 0


def _byte_range(header: str | None, total: int) -> tuple[int, int, bool] | None:
    """``(start, end, partial)`` of what a ``Range`` header asks (end inclusive).

    None when unsatisfiable (416). No header, several ranges or a malformed one: the whole
    body, not partial (a server may ignore what it does not serve).
    """
    match = _RANGE_RE.fullmatch((header or "").strip())
    if match is None or match.group(1) == match.group(2) == "":
        return 0, total - 1, False
    first, last = match.groups()
    if first == "":  # the last N bytes
        count = int(last)
        return (max(0, total - count), total - 1, True) if count > 0 and total > 0 else None
    start = int(first)
    end = min(int(last), total - 1) if last else total - 1
    if start >= total or end < start:
        return None
    return start, end, True
