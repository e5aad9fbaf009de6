"""Discord's CDN: attachments as Discord describes them, and their bytes at their ``url``.

Every file the fake stores (a bot's upload, an attachment option of a slash command)
becomes an attachment object here: ``id``, ``filename``, ``size``, ``content_type``,
``url``/``proxy_url`` (signed-looking, on this server), ``width``/``height`` and a
``placeholder`` for images (read with Pillow), plus the bytes under ``data`` (never sent to
the client).
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .routing import Route

__all__ = ["Cdn", "image_size"]

ATTACHMENT_ROUTE = "/attachments/{channel_id}/{attachment_id}/{filename}"


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

    def store(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> dict[str, Any]:
        """A new attachment object for ``data`` (with its bytes under ``data``)."""
        attachment_id = self._snowflake()
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        now = int(time.time())
        query = f"?ex={now + 86400:x}&is={now:x}&hm={secrets.token_hex(32)}&"
        path = f"/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        url = f"{self._base_url()}{path}{query}"
        att: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
            "flags": 0,
            "data": data,
        }
        if description is not None:
            att["description"] = description
        if ephemeral:
            att["ephemeral"] = True
        size = image_size(data) if content_type.startswith("image/") else None
        if size is not None:
            att["width"], att["height"] = size
            att["placeholder_version"] = 1
            att["placeholder"] = base64.b64encode(hashlib.md5(data).digest()[:16]).decode()
        self.attachments[attachment_id] = att
        return att

    def routes(self) -> list[Route]:
        return [Route("GET", ATTACHMENT_ROUTE, self._serve, auth=False, prefix="")]

    async def _serve(self, request: web.Request) -> web.Response:
        try:
            att = self.attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        return web.Response(body=att["data"], content_type=att["content_type"])
