"""HTTP discipline shared by every backend: sessions, timeouts and error texts.

Error texts follow gpt4free's ``raise_for_status``: ``Response {status}: {message}`` with the
message taken from a JSON ``error``/``message`` (cut before `` <a ``), ``HTML content`` for an
HTML page, else the body text. ZeroGPU quota refusals become ``QuotaExceeded`` with the wait
parsed *before* the cut, since the link often follows the interesting part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from .errors import BackendError, QuotaExceeded, size_text

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_ERROR_TEXT = 300

MAX_JSON_BYTES = 8 * 1024 * 1024
"""A JSON answer (queue/join, /run/predict, an API description or config, a model list, a
token): real ones are a few KiB to a few hundred KiB."""
MAX_PAGE_BYTES = 8 * 1024 * 1024
"""A Space page, read for its ZeroGPU token (a few hundred KiB in practice)."""
MAX_ERROR_BYTES = 64 * 1024
"""How much of an error answer is read: its message is at the start, and little is shown."""
READ_CHUNK = 64 * 1024

_RETRY_IN = re.compile(r"(?:retry|try again)\s+in\s+(\d+):(\d{1,2}):(\d{1,2})", re.IGNORECASE)
_QUOTA = re.compile(r"exceeded your (?:free )?GPU quota|ZeroGPU quota", re.IGNORECASE)


def cut_link(message: str) -> str:
    """Drop the HTML link tail Spaces append to their messages."""
    return message.split(" <a ", 1)[0].strip()


def quota_retry_after(message: str) -> float | None:
    """Seconds until a ZeroGPU quota refusal says to retry, or None if it names no time."""
    match = _RETRY_IN.search(message)
    if not match:
        return None
    hours, minutes, seconds = (int(g) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def is_quota_refusal(message: str) -> bool:
    return bool(_QUOTA.search(message))


def _message_from_json(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get("msg", value[0])
            if value:
                return str(value)
    return None


def json_error_message(content_type: str, body: str) -> str | None:
    """The message of a JSON error body (``error``/``message``/``detail``), if it is one."""
    if content_type.startswith("application/json") or body.lstrip().startswith(("{", "[")):
        try:
            return _message_from_json(json.loads(body))
        except ValueError:
            return None
    return None


def error_message(status: int, content_type: str, body: str) -> str:
    """The human part of an error answer (no status prefix)."""
    stripped = body.lstrip()
    message = json_error_message(content_type, body)
    if message is not None:
        return message
    if content_type.startswith("text/html") or stripped[:15].lower().startswith(
        ("<!doctype html", "<html")
    ):
        return "HTML content"
    text = " ".join(body.split())
    return text[:MAX_ERROR_TEXT] if text else "empty answer"


def backend_error(
    status: int, message: str, *, backend: str | None = None, transient: bool | None = None
) -> BackendError:
    """Build the right error for a backend's complaint, quota refusals included."""
    if is_quota_refusal(message):
        return QuotaExceeded(
            f"Response {status}: {cut_link(message)}" if status else cut_link(message),
            retry_after=quota_retry_after(message),
            status=status or None,
            backend=backend,
        )
    text = cut_link(message) or "empty answer"
    return BackendError(
        f"Response {status}: {text}" if status else text,
        status=status or None,
        transient=status in TRANSIENT_STATUSES if transient is None else transient,
        backend=backend,
    )


async def read_capped(
    response: aiohttp.ClientResponse, limit: int, *, backend: str | None = None
) -> bytes:
    """The whole body, or a ``BackendError`` as soon as it passes ``limit`` bytes (counted
    after decompression), so a misbehaving server cannot make us buffer without bound."""
    declared = response.content_length
    if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
        raise _too_large(limit, backend)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, backend)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, backend: str | None) -> BackendError:
    return BackendError(
        f"{backend or 'The server'} answered with more than {size_text(limit)}", backend=backend
    )


async def read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most the first ``limit`` bytes of the body; the rest is left unread (the connection
    is then closed rather than reused, which is cheap next to reading it all)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(min(READ_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def decode_text(response: aiohttp.ClientResponse, body: bytes) -> str:
    """``body`` as text, in the answer's charset when it names a known one (else UTF-8)."""
    try:
        return body.decode(response.charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


async def raise_for_status(response: aiohttp.ClientResponse, *, backend: str | None = None) -> None:
    """Raise a ``BackendError`` with a readable text unless the answer is 2xx."""
    if response.ok:
        return
    try:
        body = decode_text(response, await read_prefix(response, MAX_ERROR_BYTES))
    except aiohttp.ClientError:
        body = ""
    content_type = response.content_type or ""
    message = error_message(response.status, content_type, body)
    # A Gradio app answers 500 {"error": ...} when its function raised: the Space is up and
    # said why (as a failed queue job does), so a retry would only repeat it.
    raised = response.status == 500 and json_error_message(content_type, body) is not None
    raise backend_error(
        response.status, message, backend=backend, transient=False if raised else None
    )


def new_session(*, limit: int = 0) -> aiohttp.ClientSession:
    """A session tuned for many concurrent streams: no per-host cap, DNS cached."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, raise_for_status=False)


_loop_sessions: dict[
    asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, asyncio.Task[None]]
] = {}
"""Each running loop's shared session and the task that closes it at the loop's shutdown."""


def loop_session() -> aiohttp.ClientSession:
    """The running event loop's shared session, for callers that bring none (the class API).

    Opened on first use, one per loop (as gpt4free shares one connector per loop), so that
    calls reuse its connection pool instead of opening and closing one each. It is closed
    when the loop shuts down: ``asyncio.run`` and ``asyncio.Runner`` cancel the tasks still
    pending at the end, and one of them, started here, then closes the session and forgets
    it. A program that runs a loop by hand and closes it without cancelling its tasks awaits
    ``close_loop_session()`` before.
    """
    loop = asyncio.get_running_loop()
    entry = _loop_sessions.get(loop)
    if entry is not None and not entry[0].closed:
        return entry[0]
    for other in [other for other in list(_loop_sessions) if other.is_closed()]:
        _loop_sessions.pop(other, None)  # closed without its tasks cancelled: let it go
    session = new_session()
    closer = loop.create_task(_close_at_shutdown(loop, session), name="imagine loop session")
    _loop_sessions[loop] = (session, closer)
    return session


async def _close_at_shutdown(
    loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
) -> None:
    try:
        await loop.create_future()  # never set: runs until cancelled
    finally:
        entry = _loop_sessions.get(loop)
        if entry is not None and entry[0] is session:
            del _loop_sessions[loop]
        await session.close()


async def close_loop_session() -> None:
    """Close the running loop's shared session now (a new one opens if it is used again)."""
    entry = _loop_sessions.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        session, closer = entry
        closer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closer
        await session.close()  # a closer cancelled before its first step never ran


@asynccontextmanager
async def session_scope(
    session: aiohttp.ClientSession | None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """Use the caller's session, or the running loop's shared one (``loop_session``)."""
    yield session if session is not None else loop_session()
