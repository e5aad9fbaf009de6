"""Discord's JSON on the wire: the exact ``application/json`` bodies and the error shapes.

An error is raised anywhere in the fake as :class:`DiscordAPIError` and answered by the HTTP
middleware (``routing.py``) as ``{"message", "code"[, "errors"]}`` with its status, the way
discord.py expects to parse it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["DiscordAPIError", "dumps", "form_error", "json_response"]


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly, as Discord sends it.

    discord.py parses a body only if the header is exactly that string; aiohttp's own
    ``json_response`` appends ``; charset=utf-8`` and discord.py would then hand the
    bot a ``str``.
    """
    return web.Response(
        body=dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


class DiscordAPIError(Exception):
    """An error answered to the client with Discord's JSON error shape."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})
        self.body = body

    def to_response(self) -> web.Response:
        body = self.body
        if body is None:
            body = {"message": self.message, "code": self.code}
            if self.errors:
                body["errors"] = self.errors
        return json_response(body, status=self.status, headers=self.headers)


def form_error(path: str, code: str, message: str) -> DiscordAPIError:
    """400 Invalid Form Body with the nested ``errors`` object discord.py prints."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return DiscordAPIError(400, 50035, "Invalid Form Body", errors=errors)
