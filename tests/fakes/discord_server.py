"""A protocol-level fake of Discord (REST + gateway) for tests.

The real, unmodified discord.py client talks to this fake: point
``discord.http.Route.BASE`` at :attr:`FakeDiscord.rest_base` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` at :attr:`FakeDiscord.gateway_url`.
Everything the bot can observe follows Discord's wire protocol (zlib-stream gateway,
sequence numbers and RESUME, interaction deadlines, rate-limit headers, multipart
uploads), so a bug that would bite on Discord should bite here too.

The fake binds 127.0.0.1 on a random port; it never touches the network.

Things worth knowing when using it:

* ``DEFAULT_GATEWAY`` must be a ``yarl.URL`` (discord.py calls ``.with_query`` on it).
* Pass ``guild_ready_timeout=`` small to ``discord.Client``: discord.py waits that long
  (2 s by default) after the last GUILD_CREATE before ``on_ready``.
* Close the client before the fake, or the client keeps trying to reconnect.
* ``wait_until``/``wait_for_message`` re-check their predicate whenever the fake's state
  changes; a predicate over the *client's* state is only re-checked at the timeout.
* ``message_content_intent`` is the app's privileged-intent switch in the developer portal.
  The bot must still ask for the intent (``Intents.message_content``) in IDENTIFY to get
  content in gateway events; asking for it while the switch is off closes with 4014.
* Interactions dispatched while no gateway connection is up are buffered in the session and
  replayed on RESUME; before the very first IDENTIFY they are queued for the first session.
  Discord's 3 s deadline runs from the moment the fake created the interaction.

Driving it from another process (benchmarks): ``python -m tests.fakes.discord_server --port 0``
prints one JSON line ``{"rest_base", "gateway_url", "control", ...}`` once it listens and
serves until SIGTERM/SIGINT. ``control`` is the base URL of a small JSON API on the same
server (outside ``/api/v10``, so the bot never sees it; no auth, no rate limits):

* ``GET  /_control/info``: urls, ids, whether a gateway session is ready, registered commands.
* ``POST /_control/guilds`` ``{"names": [...]}`` -> ``{"guilds": [{"id", "name", "channel_id"}]}``.
* ``POST /_control/users`` ``{"users": [{"name", "guild_ids"?: [...], "permissions"?}]}``
  -> ``{"users": [user objects]}``; each user becomes a member of the listed guilds.
* ``POST /_control/members`` ``{"guild_id", "user_ids": [...], "permissions"?}``.
* ``POST /_control/slash`` ``{"name", "options"?, "user_id", "guild_id"?, "channel_id"?,
  "subcommand"?, "permissions"?}`` -> ``{"id", "created_at"}``; a JSON list of those sends them
  all in one go (same event-loop turn) and answers a list. Options are typed from the
  registered command, as :meth:`FakeDiscord.send_slash` does.
* ``GET  /_control/interactions?ids=1,2`` (all when absent; or POST the keys as JSON)
  -> ``{"now", "count_429", "timed_out", "interactions": [...]}``: per interaction
  ``created_at``, ``callback_at``, ``ack_latency``, ``callback_type``, ``edits`` (every later
  version of its original response: ``at``, ``has_attachments``, ``embeds``, ``content``),
  ``errors`` ([status, code] pairs) and ``count_429``. With ``wait=S&until=callback|final``
  it first waits up to S seconds until every one was answered (``callback``) or shows a final
  response (``final``: an attachment or embed, an immediate message, or a too-late answer).
* ``GET  /_control/stats``: requests per route and status, 429s, internal errors.
* ``POST /_control/drop_gateway`` ``{"code": null}`` (abort the TCP connections) or
  ``{"code": 4000}`` (close with that code): :meth:`FakeDiscord.drop_gateway`; answers
  ``{"dropped", "resumes", "identifies", "gateway_connects"}`` as they were before the drop.
* ``POST /_control/replies`` ``{"ids": [...]}`` -> ``{"replies": [...]}``: per interaction the
  message its callback made (or the pressed message) as it is now: ``content``, ``flags``,
  ``deleted``, ``attachments`` (count), ``embeds`` (``title``, ``description``), ``buttons``
  (``label``, ``custom_id``, ``disabled``), and the same for each followup.

Every timestamp is ``time.monotonic()`` of the fake's process. On Linux that is
CLOCK_MONOTONIC, one clock for the whole machine, so it compares with the same clock read in
another process (the fake Space's completion times, for one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import itertools
import json
import logging
import math
import mimetypes
import re
import secrets
import signal
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

from aiohttp import WSMsgType, web

__all__ = [
    "DEFAULT_PERMISSIONS",
    "DiscordAPIError",
    "FakeDiscord",
    "FakeInteraction",
    "GatewaySession",
    "Guild",
    "MessageRecord",
    "Pings",
    "RequestRecord",
    "Snapshot",
    "compute_pings",
    "snowflake_time",
]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
CONTROL_PREFIX = "/_control"
DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
#: What a fresh guild gives @everyone (view, send, embed, attach, history, mention
#: everyone, reactions, voice...) plus slash commands.
DEFAULT_PERMISSIONS = 104324673 | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
#: What the bot's managed role gets on top of @everyone.
BOT_ROLE_PERMISSIONS = DEFAULT_PERMISSIONS | MANAGE_MESSAGES

# Gateway intents.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15
SETTABLE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2

# Interaction types and callback types.
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
CB_PONG, CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE = 1, 4, 5, 6, 7
CB_AUTOCOMPLETE, CB_MODAL = 8, 9
_CALLBACKS_FOR: dict[int, set[int]] = {
    PING: {CB_PONG},
    APPLICATION_COMMAND: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_MODAL},
    MESSAGE_COMPONENT: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE, CB_MODAL},
    AUTOCOMPLETE: {CB_AUTOCOMPLETE},
    MODAL_SUBMIT: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE},
}

# Application command option types.
OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP, OPT_STRING, OPT_INTEGER, OPT_BOOLEAN = 1, 2, 3, 4, 5
OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE, OPT_NUMBER, OPT_ATTACHMENT = 6, 7, 8, 9, 10, 11

DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024
_EVERYONE_RE = re.compile(r"@(everyone|here)")
_USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")
_COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")


def _dumps(data: Any) -> str:
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
        body=_dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def snowflake_time(snowflake: int) -> datetime:
    """The creation time encoded in a snowflake (Discord's timestamps derive from ids)."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


class _SnowflakeFactory:
    """Time-based, strictly increasing snowflakes, so ordering by id is ordering by time."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._last = 0

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (next(self._counter) & 0xFFF)
        self._last = max(value, self._last + 1)
        return self._last


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


def _form_error(path: str, code: str, message: str) -> DiscordAPIError:
    """400 Invalid Form Body with the nested ``errors`` object discord.py prints."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return DiscordAPIError(400, 50035, "Invalid Form Body", errors=errors)


# --------------------------------------------------------------------------- records


class Snapshot(NamedTuple):
    """One version of a message: when it was stored and the JSON Discord sent back."""

    at: float
    data: dict[str, Any]


@dataclass
class RequestRecord:
    """One HTTP request the fake answered (``path`` is the route template, ids as names)."""

    method: str
    path: str
    status: int
    at: float
    url: str = ""


class Pings(NamedTuple):
    """Who a message notifies."""

    everyone: bool
    users: frozenset[int]
    roles: frozenset[int]

    @property
    def anyone(self) -> bool:
        return self.everyone or bool(self.users) or bool(self.roles)


def compute_pings(
    content: str, allowed_mentions: dict[str, Any] | None, replied_user_id: int | None = None
) -> Pings:
    """Who gets pinged, as Discord decides from the content and ``allowed_mentions``.

    Absent ``allowed_mentions`` parses everything (and pings the replied-to author);
    ``{"parse": []}`` pings nobody; explicit ``users``/``roles`` lists whitelist ids.
    """
    users_in_text = {int(m) for m in _USER_MENTION_RE.findall(content or "")}
    roles_in_text = {int(m) for m in _ROLE_MENTION_RE.findall(content or "")}
    everyone_in_text = bool(_EVERYONE_RE.search(content or ""))
    if allowed_mentions is None:
        users = set(users_in_text)
        if replied_user_id is not None:
            users.add(replied_user_id)
        return Pings(everyone_in_text, frozenset(users), frozenset(roles_in_text))
    parse = set(allowed_mentions.get("parse") or [])
    allowed_users = {int(u) for u in allowed_mentions.get("users") or []}
    allowed_roles = {int(r) for r in allowed_mentions.get("roles") or []}
    users = users_in_text if "users" in parse else users_in_text & allowed_users
    roles = roles_in_text if "roles" in parse else roles_in_text & allowed_roles
    users = set(users)
    if replied_user_id is not None and allowed_mentions.get("replied_user", False):
        users.add(replied_user_id)
    return Pings(everyone_in_text and "everyone" in parse, frozenset(users), frozenset(roles))


@dataclass(eq=False)
class MessageRecord:
    """A stored message, with every version the client could have seen."""

    id: int
    channel_id: int
    author: dict[str, Any]
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    #: ``{id, filename, content_type, size, url, proxy_url, data: bytes, ...}``
    attachments: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    #: The dict the client sent, or None if it sent none (Discord then parses everything).
    allowed_mentions: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    interaction_id: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    edited_at: datetime | None = None
    deleted: bool = False
    history: list[Snapshot] = field(default_factory=list)
    guild_id: int | None = None
    type: int = 0
    tts: bool = False
    pinned: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    interaction: dict[str, Any] | None = None
    member: dict[str, Any] | None = None
    replied_user_id: int | None = None
    referenced: MessageRecord | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    mention_roles: list[str] = field(default_factory=list)

    @property
    def pings(self) -> Pings:
        return compute_pings(self.content, self.allowed_mentions, self.replied_user_id)

    @property
    def pinged_everyone(self) -> bool:
        """True if Discord would notify the whole channel (@everyone / @here)."""
        return self.pings.everyone

    @property
    def would_ping(self) -> bool:
        """True if Discord would notify anyone at all."""
        return self.pings.anyone

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """The deferred "Bot is thinking..." state (flag 128)."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def edit_count(self) -> int:
        return max(0, len(self.history) - 1)

    @property
    def versions(self) -> list[dict[str, Any]]:
        return [snap.data for snap in self.history]

    def attachment_bytes(self, index: int = 0) -> bytes:
        return self.attachments[index]["data"]

    def to_json(self) -> dict[str, Any]:
        """The message object as Discord's REST API returns it."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "channel_id": str(self.channel_id),
            "author": dict(self.author),
            "content": self.content,
            "timestamp": _iso(self.created_at),
            "edited_timestamp": _iso(self.edited_at) if self.edited_at else None,
            "tts": self.tts,
            "mention_everyone": self.pinged_everyone,
            "mentions": [dict(u) for u in self.mentions],
            "mention_roles": list(self.mention_roles),
            "attachments": [_public_attachment(a) for a in self.attachments],
            "embeds": [dict(e) for e in self.embeds],
            "components": list(self.components),
            "pinned": self.pinned,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = dict(self.interaction_metadata)
        if self.interaction is not None:
            data["interaction"] = dict(self.interaction)
        if self.message_reference is not None:
            data["message_reference"] = dict(self.message_reference)
            ref = self.referenced
            data["referenced_message"] = None if ref is None or ref.deleted else ref.to_json()
        return data


def _public_attachment(att: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in att.items() if k != "data"}


@dataclass(eq=False)
class Member:
    user: dict[str, Any]
    joined_at: str
    roles: list[int] = field(default_factory=list)
    permissions: int | None = None
    nick: str | None = None

    @property
    def id(self) -> int:
        return int(self.user["id"])

    def to_json(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in self.roles],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
            "unusual_dm_activity_until": None,
        }
        if with_user:
            data["user"] = dict(self.user)
        return data


@dataclass(eq=False)
class Channel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    recipients: list[dict[str, Any]] = field(default_factory=list)
    last_message_id: int | None = None

    def to_json(self, overwrites: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if self.type == 1:
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": _opt_str(self.last_message_id),
                "flags": 0,
                "recipients": [dict(u) for u in self.recipients],
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": list(overwrites or []),
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": _opt_str(self.last_message_id),
            "last_pin_timestamp": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }


def _opt_str(value: int | None) -> str | None:
    return None if value is None else str(value)


@dataclass(eq=False)
class Guild:
    """A guild the bot is in. ``channel_id`` is its default text channel."""

    id: int
    name: str
    owner_id: int
    channel_id: int
    bot_role_id: int
    joined_at: str
    everyone_permissions: int = DEFAULT_PERMISSIONS
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)


@dataclass(eq=False)
class FakeInteraction:
    """An interaction the fake dispatched, and everything the bot did with it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    #: time.monotonic() when the fake created it (Discord's 3 s clock starts here).
    created_at: float
    channel_id: int
    guild_id: int | None
    user: dict[str, Any]
    fake: FakeDiscord = field(repr=False)
    #: When a gateway connection actually carried it (later if it waited for a RESUME).
    delivered_at: float | None = None
    #: ``{"type": ..., "data": ...}`` as the bot sent it, None until it answered.
    callback: dict[str, Any] | None = None
    callback_at: float | None = None
    #: The message created by callback 4/5, or the pressed message for 6/7.
    original: MessageRecord | None = None
    followups: list[MessageRecord] = field(default_factory=list)
    #: (HTTP status, Discord error code) of every error answered for this interaction.
    errors: list[tuple[int, int]] = field(default_factory=list)
    #: For component interactions: the message whose component was used.
    source_message: MessageRecord | None = None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the bot's callback, None if it never answered."""
        if self.callback_at is None:
            return None
        return self.callback_at - self.created_at

    @property
    def error_codes(self) -> list[int]:
        return [code for _, code in self.errors]

    async def wait_callback(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait until the bot answered this interaction; returns the callback body."""
        await self.fake.wait_until(lambda: self.callback is not None, timeout=timeout)
        assert self.callback is not None
        return self.callback

    async def wait_for(
        self,
        predicate: Callable[[FakeInteraction], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> FakeInteraction:
        """Wait until ``predicate(self)`` holds (re-checked on every store change)."""
        await self.fake.wait_until(lambda: predicate(self), timeout=timeout)
        return self


@dataclass(eq=False)
class _Bucket:
    started: float
    window: float
    count: int = 0


@dataclass(eq=False)
class GatewaySession:
    """A gateway session: survives its connection, so a client can RESUME into it."""

    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    #: Every dispatch (seq, payload), kept for replay on RESUME.
    buffer: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    conn: _Connection | None = field(default=None, repr=False)
    ready: bool = False

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed

    def dispatch(self, event: str, data: dict[str, Any]) -> int:
        self.seq += 1
        payload = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.buffer.append((self.seq, payload))
        if self.conn is not None:
            self.conn.send(payload)
        return self.seq


class _Connection:
    """One gateway websocket; all writes go through one queue so zlib order holds."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: bool) -> None:
        self.ws = ws
        self.request = request
        self.transport = request.transport
        self.compressor = zlib.compressobj() if compress else None
        self.queue: asyncio.Queue[tuple[dict[str, Any] | None, Callable[[], None] | None]] = (
            asyncio.Queue()
        )
        self.session: GatewaySession | None = None
        self.closed = False
        self.writer = asyncio.create_task(self._write_loop(), name="fake-discord-gateway-writer")

    def send(self, payload: dict[str, Any], on_sent: Callable[[], None] | None = None) -> None:
        if not self.closed:
            self.queue.put_nowait((payload, on_sent))

    def call_when_flushed(self, callback: Callable[[], None]) -> None:
        if not self.closed:
            self.queue.put_nowait((None, callback))

    def encode(self, payload: dict[str, Any]) -> bytes | str:
        text = _dumps(payload)
        if self.compressor is None:
            return text
        return self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    async def _write_loop(self) -> None:
        while True:
            payload, on_sent = await self.queue.get()
            if payload is not None:
                frame = self.encode(payload)
                try:
                    if isinstance(frame, bytes):
                        await self.ws.send_bytes(frame)
                    else:
                        await self.ws.send_str(frame)
                except (ConnectionError, RuntimeError):
                    self.closed = True
                    return
            if on_sent is not None:
                on_sent()

    async def close(self, code: int, message: str = "") -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=message.encode()), 3.0)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def stop_writer(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


@dataclass
class _RouteMeta:
    template: str
    auth: bool = True  # "Authorization: Bot <token>" required
    global_limited: bool = True
    bucket: str | None = None  # "webhook" or "channel"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """Discord's REST API and gateway, faithful enough for the real discord.py client.

    Use as ``async with FakeDiscord() as fake:``. See the module docstring.
    """

    def __init__(
        self,
        *,
        token: str = "test-token",
        application_id: int | None = None,
        bot_user_id: int | None = None,
        bot_name: str = "Imagine",
        heartbeat_interval: int = 41250,
        ack_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        webhook_limit: int = 5,
        webhook_window: float = 5.0,
        channel_limit: int = 5,
        channel_window: float = 5.0,
        global_limit: int = 50,
        message_content_intent: bool = True,
        port: int = 0,
    ) -> None:
        self._snowflake = _SnowflakeFactory()
        self.token = token
        self.application_id = application_id or self._snowflake()
        self.bot_user_id = bot_user_id or self.application_id
        self.bot_name = bot_name
        self.heartbeat_interval = heartbeat_interval
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.webhook_limit = webhook_limit
        self.webhook_window = webhook_window
        self.channel_limit = channel_limit
        self.channel_window = channel_window
        self.global_limit = global_limit
        self.message_content_intent = message_content_intent

        self.bot_user: dict[str, Any] = {
            "id": str(self.bot_user_id),
            "username": bot_name,
            "discriminator": "0001",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
            "collectibles": None,
        }
        # State
        self.users: dict[int, dict[str, Any]] = {self.bot_user_id: self.bot_user}
        self.owner_user = self.add_user("owner")
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, MessageRecord] = {}
        self._channel_messages: dict[int, list[MessageRecord]] = {}
        self._dm_by_user: dict[int, int] = {}
        self._attachments: dict[int, dict[str, Any]] = {}
        self._forbidden: set[int] = set()
        #: Global commands, as the bot registered them (with ids).
        self.commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}

        # Gateway
        self._sessions: dict[str, GatewaySession] = {}
        self._connections: set[_Connection] = set()
        self._offline_interactions: list[dict[str, Any]] = []
        self.identifies = 0
        self.resumes = 0
        self.gateway_connects = 0
        self.gateway_closes: list[int | None] = []
        #: The query string of every gateway connection (v, encoding, compress).
        self.gateway_queries: list[dict[str, str]] = []

        # Stats
        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[RequestRecord] = []
        #: Exceptions raised inside the fake's handlers (answered as 400, see middleware).
        self.internal_errors: list[BaseException] = []
        self.count_429 = 0
        self._buckets: dict[tuple[str, str], _Bucket] = {}

        self._waiters: set[asyncio.Future[None]] = set()
        self._runner: web.AppRunner | None = None
        self._route_meta: dict[Any, _RouteMeta] = {}
        self._control_routes: set[Any] = set()
        #: The port to bind (0: a free one); the bound port once started.
        self.port = port

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind 127.0.0.1 on a random port and serve."""
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close every gateway connection and the server; nothing is left running."""
        for conn in list(self._connections):
            conn.abort()
            await conn.stop_writer()
        self._connections.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return f"{self.http_base}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be set to (also /gateway/bot's url)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def control_url(self) -> str:
        """The base of the control API, for another process (see the module docstring)."""
        return f"{self.http_base}{CONTROL_PREFIX}"

    # ------------------------------------------------------------------ waiting

    def _changed(self) -> None:
        """Wake every waiter: something in the store changed."""
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
        """Wait until ``predicate()`` is truthy; re-checked on every change, no polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                continue
            finally:
                self._waiters.discard(fut)

    async def wait_for_message(
        self,
        predicate: Callable[[MessageRecord], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> MessageRecord:
        """The first stored message (in creation order) for which ``predicate`` holds."""

        def find() -> MessageRecord | None:
            return next((m for m in self.messages.values() if predicate(m)), None)

        return await self.wait_until(find, timeout=timeout)

    async def wait_ready(self, timeout: float = 10.0) -> GatewaySession:  # noqa: ASYNC109
        """Wait until a session IDENTIFIED and was sent READY and all its GUILD_CREATEs."""
        return await self.wait_until(
            lambda: next((s for s in self._sessions.values() if s.ready), None), timeout=timeout
        )

    # ------------------------------------------------------------------ state helpers

    def add_user(self, name: str, *, bot: bool = False) -> dict[str, Any]:
        """A Discord user object (ids are snowflakes, as strings)."""
        user = {
            "id": str(self._snowflake()),
            "username": name.lower(),
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "bot": bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
            "collectibles": None,
        }
        self.users[int(user["id"])] = user
        return user

    def add_guild(self, name: str = "Test Server", *, owner_id: int | None = None) -> Guild:
        """A guild with one text channel; announced by GUILD_CREATE if a session is live."""
        guild_id = self._snowflake()
        owner_id = owner_id or int(self.owner_user["id"])
        now = _iso(datetime.now(UTC))
        guild = Guild(
            id=guild_id,
            name=name,
            owner_id=owner_id,
            channel_id=0,
            bot_role_id=self._snowflake(),
            joined_at=now,
        )
        self.guilds[guild_id] = guild
        guild.members[self.bot_user_id] = Member(
            user=self.bot_user, joined_at=now, roles=[guild.bot_role_id]
        )
        owner = self.users.get(owner_id)
        if owner is not None:
            guild.members[owner_id] = Member(user=owner, joined_at=now)
        guild.channel_id = self._create_guild_channel(guild, "general")
        self._dispatch_guild_event("GUILD_CREATE", self._guild_json(guild, in_ready=False), guild)
        self._changed()
        return guild

    def add_channel(self, guild_id: int, name: str) -> int:
        guild = self._guild(guild_id)
        channel_id = self._create_guild_channel(guild, name)
        self._dispatch_guild_event("CHANNEL_CREATE", self._channel_json(channel_id), guild)
        return channel_id

    def _create_guild_channel(self, guild: Guild, name: str) -> int:
        channel = Channel(
            id=self._snowflake(),
            type=0,
            name=name,
            guild_id=guild.id,
            position=len(guild.channel_ids),
        )
        self.channels[channel.id] = channel
        self._channel_messages[channel.id] = []
        guild.channel_ids.append(channel.id)
        return channel.id

    def add_member(
        self, guild_id: int, user: dict[str, Any], *, permissions: int | None = None
    ) -> Member:
        """Make ``user`` a member; ``permissions`` overrides what interactions report."""
        guild = self._guild(guild_id)
        uid = int(user["id"])
        self.users.setdefault(uid, user)
        member = guild.members.get(uid)
        if member is None:
            member = Member(user=user, joined_at=_iso(datetime.now(UTC)))
            guild.members[uid] = member
        if permissions is not None:
            member.permissions = permissions
        return member

    def dm_channel_for(self, user: dict[str, Any]) -> int:
        """The DM channel between the bot and ``user`` (created on first use, as Discord)."""
        uid = int(user["id"])
        self.users.setdefault(uid, user)
        if uid not in self._dm_by_user:
            channel = Channel(id=self._snowflake(), type=1, name=None, recipients=[user])
            self.channels[channel.id] = channel
            self._channel_messages[channel.id] = []
            self._dm_by_user[uid] = channel.id
        return self._dm_by_user[uid]

    def forbid_channel(self, channel_id: int) -> None:
        """The bot loses Send Messages there: POST messages answers 403 / 50013."""
        self._forbidden.add(channel_id)
        self._announce_channel_update(channel_id)

    def allow_channel(self, channel_id: int) -> None:
        self._forbidden.discard(channel_id)
        self._announce_channel_update(channel_id)

    def expire_tokens_after(self, seconds: float) -> None:
        """Change how long interaction tokens work for webhook routes (Discord: 15 min)."""
        self.token_lifetime = seconds

    def channel_history(self, channel_id: int) -> list[MessageRecord]:
        """Visible messages of a channel, oldest first (no deleted, no ephemeral)."""
        return [
            m
            for m in self._channel_messages.get(channel_id, [])
            if not m.deleted and not m.ephemeral
        ]

    def attachment(self, attachment_id: int) -> dict[str, Any]:
        return self._attachments[attachment_id]

    def post_user_message(
        self,
        channel_id: int,
        author: dict[str, Any],
        content: str,
        *,
        mentions_bot: bool = False,
        reply_to: MessageRecord | None = None,
    ) -> MessageRecord:
        """A user writes in a channel: stored, then dispatched as MESSAGE_CREATE."""
        channel = self._channel(channel_id)
        self.users.setdefault(int(author["id"]), author)
        if mentions_bot and f"<@{self.bot_user_id}>" not in content:
            content = f"<@{self.bot_user_id}> {content}"
        if channel.guild_id is not None:
            self.add_member(channel.guild_id, author)
        record = MessageRecord(
            id=self._snowflake(),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author=author,
            content=content,
        )
        record.created_at = snowflake_time(record.id)
        if reply_to is not None:
            record.type = 19
            record.referenced = reply_to
            record.replied_user_id = int(reply_to.author["id"])
            record.message_reference = self._reference_json(reply_to)
        self._resolve_mentions(record)
        self._store_new(record)
        return record

    @property
    def sessions(self) -> list[GatewaySession]:
        return list(self._sessions.values())

    def count_by_route(self) -> Counter[str]:
        """``"METHOD /route/{template}"`` -> number of requests (any status)."""
        return Counter(f"{r.method} {r.path}" for r in self.requests)

    def requests_for(self, method: str, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # ------------------------------------------------------------------ lookups

    def _guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[int(guild_id)]
        except KeyError:
            raise DiscordAPIError(404, 10004, "Unknown Guild") from None

    def _channel(self, channel_id: int | str) -> Channel:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10003, "Unknown Channel") from None

    def _message(self, channel_id: int, message_id: int | str) -> MessageRecord:
        try:
            record = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10008, "Unknown Message") from None
        if record.channel_id != channel_id or record.deleted or record.ephemeral:
            raise DiscordAPIError(404, 10008, "Unknown Message")
        return record

    def _member_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is not None and member.permissions is not None:
            return member.permissions
        perms = guild.everyone_permissions
        if member is not None and guild.bot_role_id in member.roles:
            perms |= BOT_ROLE_PERMISSIONS
        return perms

    def _app_permissions(self, channel: Channel) -> int:
        if channel.guild_id is None:
            return DEFAULT_PERMISSIONS
        perms = self._member_permissions(self.guilds[channel.guild_id], self.bot_user_id)
        if channel.id in self._forbidden:
            perms &= ~(SEND_MESSAGES | ATTACH_FILES | EMBED_LINKS | SEND_MESSAGES_IN_THREADS)
        return perms

    # ------------------------------------------------------------------ JSON builders

    def _role_json(self, guild: Guild, *, bot_role: bool) -> dict[str, Any]:
        role_id = guild.bot_role_id if bot_role else guild.id
        data: dict[str, Any] = {
            "id": str(role_id),
            "name": self.bot_name if bot_role else "@everyone",
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 1 if bot_role else 0,
            "permissions": str(BOT_ROLE_PERMISSIONS if bot_role else guild.everyone_permissions),
            "managed": bot_role,
            "mentionable": False,
            "flags": 0,
        }
        if bot_role:
            data["tags"] = {"bot_id": str(self.bot_user_id)}
        return data

    def _overwrites(self, channel: Channel) -> list[dict[str, Any]]:
        if channel.id not in self._forbidden or channel.guild_id is None:
            return []
        deny = SEND_MESSAGES | ATTACH_FILES | EMBED_LINKS | SEND_MESSAGES_IN_THREADS
        guild = self.guilds[channel.guild_id]
        return [{"id": str(guild.bot_role_id), "type": 0, "allow": "0", "deny": str(deny)}]

    def _channel_json(self, channel_id: int) -> dict[str, Any]:
        channel = self.channels[channel_id]
        return channel.to_json(self._overwrites(channel))

    def _guild_json(self, guild: Guild, *, in_ready: bool | None = None) -> dict[str, Any]:
        """Full guild object; the gateway extras (members, channels...) for GUILD_CREATE."""
        data: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                self._role_json(guild, bot_role=False),
                self._role_json(guild, bot_role=True),
            ],
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(guild.channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "stickers": [],
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
            "incidents_data": None,
        }
        if in_ready is None:
            return data
        data.update(
            {
                "joined_at": guild.joined_at,
                "large": False,
                "member_count": len(guild.members),
                "members": [m.to_json() for m in guild.members.values()],
                "channels": [
                    {k: v for k, v in self._channel_json(cid).items() if k != "guild_id"}
                    for cid in guild.channel_ids
                ],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "lazy": True,
            }
        )
        # discord.py reads unavailable=False as "became available" (startup) and an
        # absent key as "joined": Discord sends the former only right after READY.
        if in_ready:
            data["unavailable"] = False
        return data

    def _reference_json(self, target: MessageRecord) -> dict[str, Any]:
        ref = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
        if target.guild_id is not None:
            ref["guild_id"] = str(target.guild_id)
        return ref

    def _gateway_message_json(self, record: MessageRecord, session: GatewaySession) -> dict:
        """MESSAGE_CREATE/UPDATE data: REST JSON + member, blanked without the intent."""
        data = record.to_json()
        if record.guild_id is not None:
            guild = self.guilds.get(record.guild_id)
            member = guild.members.get(int(record.author["id"])) if guild else None
            if member is not None and record.webhook_id is None:
                data["member"] = member.to_json(with_user=False)
            for mention in data["mentions"]:
                m = guild.members.get(int(mention["id"])) if guild else None
                if m is not None:
                    mention["member"] = m.to_json(with_user=False)
        has_intent = bool(session.intents & INTENT_MESSAGE_CONTENT) and self.message_content_intent
        if not has_intent:
            data = self._redact(record, data)
        return data

    def _redact(self, record: MessageRecord, data: dict[str, Any]) -> dict[str, Any]:
        """What Discord strips without the Message Content intent (guild messages only)."""
        if record.guild_id is None or int(record.author["id"]) == self.bot_user_id:
            return data
        if any(int(u["id"]) == self.bot_user_id for u in record.mentions):
            return data
        if f"<@{self.bot_user_id}>" in record.content or f"<@!{self.bot_user_id}>" in (
            record.content
        ):
            return data
        data = dict(data)
        data.update(content="", embeds=[], attachments=[], components=[])
        data.pop("poll", None)
        return data

    # ------------------------------------------------------------------ gateway dispatch

    def _targets(self, required_intent: int) -> list[GatewaySession]:
        return [s for s in self._sessions.values() if s.intents & required_intent]

    def _dispatch_guild_event(self, event: str, data: dict[str, Any], guild: Guild) -> None:
        for session in self._targets(INTENT_GUILDS):
            session.dispatch(event, data)

    def _announce_channel_update(self, channel_id: int) -> None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.guild_id is None:
            return
        guild = self.guilds[channel.guild_id]
        self._dispatch_guild_event("CHANNEL_UPDATE", self._channel_json(channel_id), guild)

    def _dispatch_message(self, event: str, record: MessageRecord) -> None:
        """Echo a message event to every session whose intents cover it."""
        if record.ephemeral:
            return
        intent = INTENT_DIRECT_MESSAGES if record.guild_id is None else INTENT_GUILD_MESSAGES
        for session in self._targets(intent):
            if event == "MESSAGE_DELETE":
                data: dict[str, Any] = {"id": str(record.id), "channel_id": str(record.channel_id)}
                if record.guild_id is not None:
                    data["guild_id"] = str(record.guild_id)
            else:
                data = self._gateway_message_json(record, session)
            session.dispatch(event, data)

    def _dispatch_interaction(self, interaction: FakeInteraction) -> None:
        """INTERACTION_CREATE to every session; queued if no session exists yet."""
        if not self._sessions:
            self._offline_interactions.append(interaction.payload)
            return
        for session in self._sessions.values():
            session.dispatch("INTERACTION_CREATE", interaction.payload)
            self._watch_delivery(session, interaction)

    def _watch_delivery(self, session: GatewaySession, interaction: FakeInteraction) -> None:
        """Record when a connection actually wrote the interaction to the bot."""
        if session.conn is None or session.conn.closed:
            return

        def delivered() -> None:
            if interaction.delivered_at is None:
                interaction.delivered_at = time.monotonic()
                self._changed()

        session.conn.call_when_flushed(delivered)

    async def drop_gateway(self, code: int | None = None) -> None:
        """Kill live gateway connections: ``None`` aborts TCP, else close with ``code``.

        Sessions survive (unless the code is non-resumable for the client), so events
        dispatched meanwhile are buffered and replayed when the client RESUMEs.
        """
        conns = [c for c in self._connections if not c.closed]
        for conn in conns:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
        for conn in conns:
            if code is None:
                conn.abort()
            else:
                await conn.close(code, "dropped by FakeDiscord")
        self._changed()

    # ------------------------------------------------------------------ gateway server

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=3.0, max_msg_size=0, autoping=True, compress=False)
        await ws.prepare(request)
        query = request.query
        compress = query.get("compress")
        self.gateway_queries.append(dict(query))
        conn = _Connection(ws, request, compress=compress == "zlib-stream")
        self._connections.add(conn)
        self.gateway_connects += 1
        try:
            if query.get("v", "10") != "10":
                await conn.close(4012, "Invalid API version")
                return ws
            if query.get("encoding", "json") != "json":
                await conn.close(4002, "Only encoding=json is supported by FakeDiscord")
                return ws
            if compress not in (None, "zlib-stream"):
                # Not resumable for discord.py, so a zstd-enabled client fails loudly.
                await conn.close(4012, f"compress={compress} is not supported by FakeDiscord")
                return ws
            conn.send({"op": 10, "s": None, "t": None, "d": self._hello()})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    text = msg.data
                elif msg.type is WSMsgType.BINARY:
                    text = msg.data.decode("utf-8", "replace")
                else:
                    break
                try:
                    payload = json.loads(text)
                except ValueError:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                if not await self._on_gateway_payload(conn, payload):
                    break
        finally:
            conn.closed = True
            self.gateway_closes.append(ws.close_code)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A clean close by the client (1000/1001) ends the session, as on Discord.
                if ws.close_code in (1000, 1001):
                    self._sessions.pop(session.session_id, None)
            self._connections.discard(conn)
            await conn.stop_writer()
            self._changed()
        return ws

    def _hello(self) -> dict[str, Any]:
        return {"heartbeat_interval": self.heartbeat_interval, "_trace": ['["fake-gateway",{}]']}

    async def _on_gateway_payload(self, conn: _Connection, payload: dict[str, Any]) -> bool:
        """Handle one client payload; False ends the connection."""
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:  # HEARTBEAT
            conn.send({"op": 11, "s": None, "t": None, "d": None})
            return True
        if op == 2:
            return await self._identify(conn, data or {})
        if op == 6:
            return await self._resume(conn, data or {})
        if conn.session is None:
            await conn.close(4003, "Not authenticated.")
            return False
        if op == 8:  # REQUEST_GUILD_MEMBERS
            self._members_chunk(conn.session, data or {})
            return True
        if op in (3, 4):  # presence / voice state: accepted, ignored
            return True
        await conn.close(4001, "Unknown opcode.")
        return False

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> bool:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return False
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int):
            await conn.close(4013, "Invalid intent(s).")
            return False
        if intents & INTENT_MESSAGE_CONTENT and not self.message_content_intent:
            await conn.close(4014, "Disallowed intent(s).")
            return False
        session = GatewaySession(
            session_id=secrets.token_hex(16), intents=intents, shard=data.get("shard")
        )
        self._sessions[session.session_id] = session
        session.conn = conn
        conn.session = session
        self.identifies += 1
        guilds = list(self.guilds.values())
        ready = {
            "v": 10,
            "user": {**self.bot_user, "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "user_settings": {},
            "auth": {},
            "_trace": ['["fake-gateway",{}]'],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        session.dispatch("READY", ready)
        if intents & INTENT_GUILDS:
            for guild in guilds:
                session.dispatch("GUILD_CREATE", self._guild_json(guild, in_ready=True))

        def mark_ready() -> None:
            session.ready = True
            self._changed()

        conn.call_when_flushed(mark_ready)
        pending, self._offline_interactions = self._offline_interactions, []
        for interaction_payload in pending:
            session.dispatch("INTERACTION_CREATE", interaction_payload)
            interaction = self.interactions.get(int(interaction_payload["id"]))
            if interaction is not None:
                self._watch_delivery(session, interaction)
        return True

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> bool:
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return False
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or conn.session is not None:
            conn.send({"op": 9, "s": None, "t": None, "d": False})
            return True
        old = session.conn
        if old is not None and old is not conn:
            old.abort()
        session.conn = conn
        conn.session = session
        last_seq = data.get("seq") or 0
        for seq, payload in session.buffer:
            if seq > last_seq:
                conn.send(payload)
                if payload["t"] == "INTERACTION_CREATE":
                    interaction = self.interactions.get(int(payload["d"]["id"]))
                    if interaction is not None and interaction.delivered_at is None:
                        self._watch_delivery(session, interaction)
        session.dispatch("RESUMED", {"_trace": ['["fake-gateway",{}]']})
        self.resumes += 1
        self._changed()
        return True

    def _members_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        members = list(guild.members.values())
        if data.get("user_ids"):
            wanted = {int(u) for u in data["user_ids"]}
            members = [m for m in members if m.id in wanted]
        elif data.get("query"):
            members = [m for m in members if m.user["username"].startswith(data["query"])]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.to_json() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, app: web.Application) -> None:
        def add(
            method: str,
            template: str,
            handler: Handler,
            *,
            auth: bool = True,
            global_limited: bool | None = None,
            bucket: str | None = None,
            prefix: str = API_PREFIX,
        ) -> None:
            route = app.router.add_route(method, prefix + template, handler)
            meta = _RouteMeta(
                template=template,
                auth=auth,
                global_limited=auth if global_limited is None else global_limited,
                bucket=bucket,
            )
            self._route_meta[route] = meta

        for method, path, control in (
            ("GET", "/info", self._control_info),
            ("POST", "/guilds", self._control_guilds),
            ("POST", "/users", self._control_users),
            ("POST", "/members", self._control_members),
            ("POST", "/slash", self._control_slash),
            ("GET", "/interactions", self._control_interactions),
            ("POST", "/interactions", self._control_interactions),
            ("GET", "/stats", self._control_stats),
            ("POST", "/drop_gateway", self._control_drop_gateway),
            ("POST", "/replies", self._control_replies),
        ):
            self._control_routes.add(app.router.add_route(method, CONTROL_PREFIX + path, control))
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        add("GET", "/gateway", self._get_gateway, auth=False)
        add("GET", "/gateway/bot", self._get_gateway_bot)
        add("GET", "/users/@me", self._get_me)
        add("GET", "/users/{user_id}", self._get_user)
        add("POST", "/users/@me/channels", self._create_dm)
        add("GET", "/oauth2/applications/@me", self._get_application)
        add("GET", "/applications/@me", self._get_application)
        for base in (
            "/applications/{application_id}",
            "/applications/{application_id}/guilds/{guild_id}",
        ):
            add("GET", base + "/commands", self._list_commands)
            add("PUT", base + "/commands", self._bulk_overwrite_commands)
            add("POST", base + "/commands", self._create_command)
            add("GET", base + "/commands/{command_id}", self._get_command)
            add("DELETE", base + "/commands/{command_id}", self._delete_command)
        add("GET", "/channels/{channel_id}", self._get_channel)
        add("GET", "/channels/{channel_id}/messages", self._get_messages)
        add("POST", "/channels/{channel_id}/messages", self._post_message, bucket="channel")
        add("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message)
        add(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            self._patch_message,
            bucket="channel",
        )
        add(
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}",
            self._delete_message,
            bucket="channel",
        )
        add("POST", "/channels/{channel_id}/typing", self._typing)
        add("GET", "/guilds/{guild_id}", self._get_guild)
        add("GET", "/guilds/{guild_id}/channels", self._get_guild_channels)
        add("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member)
        add(
            "POST",
            "/interactions/{interaction_id}/{token}/callback",
            self._interaction_callback,
            auth=False,
        )
        add(
            "POST",
            "/webhooks/{application_id}/{token}",
            self._webhook_execute,
            auth=False,
            bucket="webhook",
        )
        add(
            "GET",
            "/webhooks/{application_id}/{token}/messages/{message_id}",
            self._webhook_get_message,
            auth=False,
            bucket="webhook",
        )
        add(
            "PATCH",
            "/webhooks/{application_id}/{token}/messages/{message_id}",
            self._webhook_edit_message,
            auth=False,
            bucket="webhook",
        )
        add(
            "DELETE",
            "/webhooks/{application_id}/{token}/messages/{message_id}",
            self._webhook_delete_message,
            auth=False,
            bucket="webhook",
        )
        add(
            "GET",
            "/attachments/{channel_id}/{attachment_id}/{filename}",
            self._get_attachment,
            auth=False,
            prefix="",
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        meta = self._route_meta.get(match.route)
        if match.route.handler == self._gateway:
            return await handler(request)
        if match.http_exception is None and match.route in self._control_routes:
            return await self._control(request, handler)
        if match.http_exception is not None or meta is None:
            status = match.http_exception.status if match.http_exception is not None else 404
            message = "405: Method Not Allowed" if status == 405 else "404: Not Found"
            response = DiscordAPIError(status, 0, message).to_response()
            response.headers["Via"] = "1.1 google"
            path = request.path.removeprefix(API_PREFIX)
            record = RequestRecord(request.method, path, status, time.monotonic(), request.path)
            self.requests.append(record)
            self.unknown_routes.append(record)
            log.warning("FakeDiscord: unknown route %s %s", request.method, request.path)
            return response
        try:
            response = await self._guarded(request, handler, meta)
        except DiscordAPIError as err:
            response = err.to_response()
        except Exception as exc:
            # A bug in the fake. Not a 500: discord.py retries those for ~25 s.
            log.exception("FakeDiscord: handler crashed on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            response = DiscordAPIError(400, 0, f"FakeDiscord internal error: {exc!r}").to_response()
        response.headers["Via"] = "1.1 google"
        self.requests.append(
            RequestRecord(
                request.method, meta.template, response.status, time.monotonic(), request.path
            )
        )
        if response.status == 429:
            self.count_429 += 1
        if response.status == 429 and meta.bucket == "webhook":
            interaction = self._interactions_by_token.get(match.get("token", ""))
            if interaction is not None:
                interaction.errors.append((429, 0))
        self._changed()
        return response

    async def _guarded(
        self, request: web.Request, handler: Handler, meta: _RouteMeta
    ) -> web.StreamResponse:
        """Auth, then the global limit, then the route bucket, then the handler."""
        if meta.auth and request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordAPIError(401, 0, "401: Unauthorized")
        if meta.global_limited:
            ok, reset_after, _ = self._take(("global", ""), self.global_limit, 1.0)
            if not ok:
                raise self._rate_limited(reset_after, is_global=True)
        rl_headers: dict[str, str] = {}
        if meta.bucket is not None:
            if meta.bucket == "webhook":
                key = ("webhook", request.match_info["token"])
                limit, window = self.webhook_limit, self.webhook_window
            else:
                key = ("channel", request.match_info["channel_id"])
                limit, window = self.channel_limit, self.channel_window
            ok, reset_after, remaining = self._take(key, limit, window)
            rl_headers = self._ratelimit_headers(meta.bucket, limit, remaining, reset_after)
            if not ok:
                raise self._rate_limited(reset_after, is_global=False, headers=rl_headers)
        try:
            response = await handler(request)
        except DiscordAPIError as err:
            err.headers.update(rl_headers)
            raise
        response.headers.update(rl_headers)
        return response

    def _take(self, key: tuple[str, str], limit: int, window: float) -> tuple[bool, float, int]:
        """Fixed window starting at the first request: (allowed, reset_after, remaining)."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.started + bucket.window:
            bucket = self._buckets[key] = _Bucket(started=now, window=window)
        reset_after = bucket.started + bucket.window - now
        if bucket.count >= limit:
            return False, reset_after, 0
        bucket.count += 1
        return True, reset_after, limit - bucket.count

    @staticmethod
    def _ratelimit_headers(
        kind: str, limit: int, remaining: int, reset_after: float
    ) -> dict[str, str]:
        reset_after = math.ceil(reset_after * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(kind.encode()).hexdigest()[:32],
        }

    @staticmethod
    def _rate_limited(
        retry_after: float, *, is_global: bool, headers: dict[str, str] | None = None
    ) -> DiscordAPIError:
        retry_after = math.ceil(retry_after * 1000) / 1000
        hdrs = dict(headers or {})
        hdrs["Retry-After"] = str(max(1, math.ceil(retry_after)))
        hdrs["X-RateLimit-Scope"] = "global" if is_global else "user"
        if is_global:
            hdrs["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        return DiscordAPIError(429, 0, body["message"], headers=hdrs, body=body)

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return json_response(data, status=status)

    async def _read_body(
        self, request: web.Request
    ) -> tuple[dict[str, Any], dict[int, tuple[str, bytes]]]:
        """JSON or multipart (``payload_json`` + ``files[n]``) body -> (payload, files)."""
        files: dict[int, tuple[str, bytes]] = {}
        if request.content_type == "multipart/form-data":
            payload: dict[str, Any] = {}
            reader = await request.multipart()
            loose = itertools.count(1000)
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = part.name or ""
                if name == "payload_json":
                    payload = json.loads(await part.text())
                    continue
                data = bytes(await part.read(decode=False))
                match = re.fullmatch(r"files\[(\d+)\]", name)
                index = int(match.group(1)) if match else next(loose)
                files[index] = (part.filename or f"file{index}", data)
            return payload, files
        raw = await request.read()
        if not raw:
            return {}, files
        try:
            body = json.loads(raw)
        except ValueError:
            raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None
        if not isinstance(body, dict):
            raise _form_error("_root", "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
        return body, files

    # ------------------------------------------------------------------ message building

    def _make_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> dict[str, Any]:
        attachment_id = self._snowflake()
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        now = int(time.time())
        query = f"?ex={now + 86400:x}&is={now:x}&hm={secrets.token_hex(32)}&"
        url = f"{self.http_base}/attachments/{channel_id}/{attachment_id}/{quote(filename)}{query}"
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
        size = _image_size(data) if content_type.startswith("image/") else None
        if size is not None:
            att["width"], att["height"] = size
            att["placeholder_version"] = 1
            att["placeholder"] = base64.b64encode(hashlib.md5(data).digest()[:16]).decode()
        self._attachments[attachment_id] = att
        return att

    def _build_attachments(
        self,
        channel_id: int,
        existing: list[dict[str, Any]],
        requested: list[dict[str, Any]] | None,
        files: dict[int, tuple[str, bytes]],
        *,
        size_limit: int,
        ephemeral: bool,
    ) -> list[dict[str, Any]]:
        """Discord's rules: ``attachments`` lists what to keep (existing ids) + new ``files[n]``."""
        for _, (_, data) in files.items():
            if len(data) > size_limit:
                raise DiscordAPIError(413, 40005, "Request entity too large")
        by_id = {int(a["id"]): a for a in existing}
        used: set[int] = set()
        result: list[dict[str, Any]] = []
        for i, entry in enumerate(requested if requested is not None else []):
            try:
                ident = int(entry["id"])
            except (KeyError, TypeError, ValueError):
                raise _form_error(
                    f"attachments.{i}.id", "BASE_TYPE_REQUIRED", "This field is required"
                ) from None
            if ident in by_id:
                result.append(by_id[ident])
            elif ident in files:
                used.add(ident)
                filename = entry.get("filename") or files[ident][0]
                result.append(
                    self._make_attachment(
                        channel_id,
                        filename,
                        files[ident][1],
                        description=entry.get("description"),
                        ephemeral=ephemeral,
                    )
                )
            else:
                raise _form_error(
                    f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", f"Attachment {ident} not found"
                )
        if requested is None:
            result = list(existing)
        for index in sorted(set(files) - used):
            filename, data = files[index]
            result.append(self._make_attachment(channel_id, filename, data, ephemeral=ephemeral))
        if len(result) > 10:
            raise _form_error(
                "attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."
            )
        return result

    def _apply_payload(
        self,
        record: MessageRecord,
        payload: dict[str, Any],
        files: dict[int, tuple[str, bytes]],
        *,
        creating: bool,
        size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
        allow_ephemeral: bool = False,
        keep_loading: bool = False,
    ) -> None:
        """Validate a create/edit body, then apply it to ``record`` (all or nothing)."""
        content = record.content
        if "content" in payload:
            content = payload["content"] or ""
            if not isinstance(content, str):
                content = str(content)
            if len(content) > 2000:
                raise _form_error(
                    "content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."
                )
        embeds = record.embeds
        if "embeds" in payload:
            embeds = [dict(e) for e in payload["embeds"] or []]
            if len(embeds) > 10:
                raise _form_error(
                    "embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."
                )
        components = record.components
        if "components" in payload:
            components = _number_components(payload["components"] or [])
        allowed_mentions = record.allowed_mentions
        if "allowed_mentions" in payload:
            allowed_mentions = payload["allowed_mentions"]
            if allowed_mentions is not None:
                _validate_allowed_mentions(allowed_mentions)
        flags = record.flags
        if "flags" in payload and payload["flags"] is not None:
            requested = int(payload["flags"])
            settable = SETTABLE_FLAGS | (FLAG_EPHEMERAL if allow_ephemeral and creating else 0)
            flags = (flags & ~SETTABLE_FLAGS) | (requested & settable)
        if not keep_loading:
            flags &= ~FLAG_LOADING
        ephemeral = bool(flags & FLAG_EPHEMERAL)
        has_files = bool(files) or "attachments" in payload
        attachments = record.attachments
        if has_files:
            attachments = self._build_attachments(
                record.channel_id,
                record.attachments,
                payload.get("attachments"),
                files,
                size_limit=size_limit,
                ephemeral=ephemeral,
            )
        embeds = [self._resolve_embed(e, attachments) for e in embeds]
        empty = not (content or embeds or attachments or components)
        touched = creating or "content" in payload or "embeds" in payload or has_files
        if empty and touched and not flags & FLAG_LOADING:
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        record.content = content
        record.embeds = embeds
        record.components = components
        record.allowed_mentions = allowed_mentions
        record.flags = flags
        record.attachments = attachments
        if "tts" in payload:
            record.tts = bool(payload["tts"])
        if not creating:
            record.edited_at = datetime.now(UTC)
        self._resolve_mentions(record)

    def _resolve_embed(self, embed: dict[str, Any], attachments: list[dict[str, Any]]) -> dict:
        """Fill ``attachment://name`` references the way Discord does, add ``type``."""
        embed.setdefault("type", "rich")
        by_name = {a["filename"]: a for a in attachments}
        for key in ("image", "thumbnail"):
            part = embed.get(key)
            if isinstance(part, dict) and str(part.get("url", "")).startswith("attachment://"):
                att = by_name.get(part["url"].removeprefix("attachment://"))
                if att is not None:
                    part = {**part, "url": att["url"], "proxy_url": att["proxy_url"]}
                    if "width" in att:
                        part.update(width=att["width"], height=att["height"])
                    embed[key] = part
        return embed

    def _resolve_mentions(self, record: MessageRecord) -> None:
        pings = record.pings
        users = [self.users[u] for u in sorted(pings.users) if u in self.users]
        record.mentions = [dict(u) for u in users]
        record.mention_roles = [str(r) for r in sorted(pings.roles)]

    def _store_new(self, record: MessageRecord) -> None:
        self.messages[record.id] = record
        self._channel_messages.setdefault(record.channel_id, []).append(record)
        if not record.ephemeral:
            channel = self.channels.get(record.channel_id)
            if channel is not None:
                channel.last_message_id = record.id
        self._snapshot(record)
        self._dispatch_message("MESSAGE_CREATE", record)
        self._changed()

    def _snapshot(self, record: MessageRecord) -> dict[str, Any]:
        data = record.to_json()
        record.history.append(Snapshot(time.monotonic(), data))
        return data

    def _store_edit(self, record: MessageRecord) -> dict[str, Any]:
        data = self._snapshot(record)
        self._dispatch_message("MESSAGE_UPDATE", record)
        self._changed()
        return data

    def _store_delete(self, record: MessageRecord) -> None:
        record.deleted = True
        self._dispatch_message("MESSAGE_DELETE", record)
        self._changed()

    def _new_bot_message(self, channel: Channel, **extra: Any) -> MessageRecord:
        record = MessageRecord(
            id=self._snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=self.bot_user,
            **extra,
        )
        record.created_at = snowflake_time(record.id)
        return record

    # ------------------------------------------------------------------ REST handlers

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return self._json({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return self._json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - self.identifies,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_me(self, request: web.Request) -> web.Response:
        return self._json(
            {
                **self.bot_user,
                "verified": True,
                "mfa_enabled": False,
                "locale": "en-US",
                "email": None,
                "bio": "",
            }
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        try:
            return self._json(self.users[int(request.match_info["user_id"])])
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10013, "Unknown User") from None

    async def _get_application(self, request: web.Request) -> web.Response:
        return self._json(
            {
                "id": str(self.application_id),
                "name": self.bot_name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(str(self.application_id).encode()).hexdigest(),
                "flags": 0,
                "owner": dict(self.owner_user),
                "team": None,
                "rpc_origins": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "tags": [],
                "install_params": None,
                "integration_types_config": {"0": {}},
                "approximate_guild_count": len(self.guilds),
                "bot": dict(self.bot_user),
            }
        )

    async def _create_dm(self, request: web.Request) -> web.Response:
        payload, _ = await self._read_body(request)
        try:
            user = self.users[int(payload["recipient_id"])]
        except (KeyError, TypeError, ValueError):
            raise DiscordAPIError(400, 50033, "Invalid Recipient(s)") from None
        return self._json(self._channel_json(self.dm_channel_for(user)))

    # commands

    def _command_list(self, request: web.Request) -> list[dict[str, Any]]:
        if int(request.match_info["application_id"]) != self.application_id:
            raise DiscordAPIError(
                403, 20012, "You are not authorized to perform this action on this application"
            )
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return self.commands
        self._guild(int(guild_id))
        return self.guild_commands.setdefault(int(guild_id), [])

    def _store_command(
        self,
        data: dict[str, Any],
        existing: list[dict[str, Any]],
        guild_id: str | None,
        index: int = 0,
    ) -> dict[str, Any]:
        _validate_command(data, index)
        ctype = data.get("type", 1)
        old = next((c for c in existing if c["name"] == data["name"] and c["type"] == ctype), None)
        command = {
            "id": old["id"] if old else str(self._snowflake()),
            "application_id": str(self.application_id),
            "version": str(self._snowflake()),
            "default_member_permissions": data.get("default_member_permissions"),
            "type": ctype,
            "name": data["name"],
            "name_localizations": data.get("name_localizations"),
            "description": data.get("description", ""),
            "description_localizations": data.get("description_localizations"),
            "dm_permission": data.get("dm_permission", True),
            "contexts": data.get("contexts"),
            "integration_types": data.get("integration_types", [0]),
            "nsfw": data.get("nsfw", False),
        }
        if data.get("options"):
            command["options"] = data["options"]
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        return command

    async def _list_commands(self, request: web.Request) -> web.Response:
        return self._json(self._command_list(request))

    async def _bulk_overwrite_commands(self, request: web.Request) -> web.Response:
        existing = self._command_list(request)
        body = json.loads(await request.read() or b"[]")
        if not isinstance(body, list):
            raise _form_error(
                "_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
            )
        if len(body) > 100:
            raise _form_error("_root", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        guild_id = request.match_info.get("guild_id")
        new = [self._store_command(data, existing, guild_id, i) for i, data in enumerate(body)]
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(new):
            key = (cmd["name"], cmd["type"])
            if key in seen:
                raise _form_error(
                    f"{i}.name",
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
        existing[:] = new
        self._changed()
        return self._json(new)

    async def _create_command(self, request: web.Request) -> web.Response:
        existing = self._command_list(request)
        payload, _ = await self._read_body(request)
        command = self._store_command(payload, existing, request.match_info.get("guild_id"))
        replaced = [i for i, c in enumerate(existing) if c["id"] == command["id"]]
        if replaced:
            existing[replaced[0]] = command
        else:
            existing.append(command)
        self._changed()
        return self._json(command, status=200 if replaced else 201)

    def _find_command(self, request: web.Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        existing = self._command_list(request)
        cid = request.match_info["command_id"]
        for command in existing:
            if command["id"] == cid:
                return existing, command
        raise DiscordAPIError(404, 10063, "Unknown application command")

    async def _get_command(self, request: web.Request) -> web.Response:
        return self._json(self._find_command(request)[1])

    async def _delete_command(self, request: web.Request) -> web.Response:
        existing, command = self._find_command(request)
        existing.remove(command)
        self._changed()
        return web.Response(status=204)

    # channels and messages

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self._channel(request.match_info["channel_id"])
        return self._json(self._channel_json(channel.id))

    def _rest_message_json(self, record: MessageRecord) -> dict[str, Any]:
        data = record.to_json()
        if not self.message_content_intent:
            data = self._redact(record, data)
        return data

    async def _get_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request.match_info["channel_id"])
        query = request.query
        try:
            limit = int(query.get("limit", 50))
        except ValueError:
            raise _form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.") from None
        if not 1 <= limit <= 100:
            raise _form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
        visible = self.channel_history(channel.id)  # oldest first
        if "before" in query:
            before = int(query["before"])
            picked = [m for m in visible if m.id < before][-limit:]
        elif "after" in query:
            after = int(query["after"])
            picked = [m for m in visible if m.id > after][:limit]
        elif "around" in query:
            around = int(query["around"])
            older = [m for m in visible if m.id <= around]
            newer = [m for m in visible if m.id > around]
            half = limit // 2
            picked = older[-(limit - half) :] + newer[:half]
        else:
            picked = visible[-limit:]
        picked.sort(key=lambda m: m.id, reverse=True)
        return self._json([self._rest_message_json(m) for m in picked])

    async def _get_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request.match_info["channel_id"])
        record = self._message(channel.id, request.match_info["message_id"])
        return self._json(self._rest_message_json(record))

    async def _post_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request.match_info["channel_id"])
        if channel.id in self._forbidden:
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        payload, files = await self._read_body(request)
        record = self._new_bot_message(channel)
        ref = payload.get("message_reference")
        if ref:
            try:
                target = self._message(channel.id, int(ref.get("message_id")))
            except (DiscordAPIError, TypeError, ValueError):
                if ref.get("fail_if_not_exists", True):
                    raise _form_error(
                        "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                    ) from None
                target = None
            if target is not None:
                record.type = 19
                record.referenced = target
                record.replied_user_id = int(target.author["id"])
                record.message_reference = self._reference_json(target)
        self._apply_payload(record, payload, files, creating=True)
        self._store_new(record)
        return self._json(record.to_json())

    def _own_message(self, request: web.Request) -> MessageRecord:
        channel = self._channel(request.match_info["channel_id"])
        return self._message(channel.id, request.match_info["message_id"])

    async def _patch_message(self, request: web.Request) -> web.Response:
        record = self._own_message(request)
        if int(record.author["id"]) != self.bot_user_id or record.webhook_id is not None:
            raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
        payload, files = await self._read_body(request)
        self._apply_payload(record, payload, files, creating=False)
        return self._json(self._store_edit(record))

    async def _delete_message(self, request: web.Request) -> web.Response:
        record = self._own_message(request)
        self._store_delete(record)
        return web.Response(status=204)

    async def _typing(self, request: web.Request) -> web.Response:
        self._channel(request.match_info["channel_id"])
        return web.Response(status=204)

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(int(request.match_info["guild_id"]))
        data = self._guild_json(guild)
        if request.query.get("with_counts") in ("true", "1"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return self._json(data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(int(request.match_info["guild_id"]))
        return self._json([self._channel_json(cid) for cid in guild.channel_ids])

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(int(request.match_info["guild_id"]))
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise DiscordAPIError(404, 10007, "Unknown Member")
        return self._json(member.to_json())

    async def _get_attachment(self, request: web.Request) -> web.Response:
        try:
            att = self._attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        return web.Response(body=att["data"], content_type=att["content_type"])

    # interactions: callback

    def _interaction_error(
        self, interaction: FakeInteraction | None, status: int, code: int, message: str
    ) -> DiscordAPIError:
        if interaction is not None:
            interaction.errors.append((status, code))
        return DiscordAPIError(status, code, message)

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        interaction = self._interactions_by_token.get(request.match_info["token"])
        if interaction is None or str(interaction.id) != request.match_info["interaction_id"]:
            raise DiscordAPIError(404, 10062, "Unknown interaction")
        body, files = await self._read_body(request)
        if now - interaction.created_at > self.ack_deadline:
            raise self._interaction_error(interaction, 404, 10062, "Unknown interaction")
        if interaction.callback is not None:
            raise self._interaction_error(
                interaction, 400, 40060, "Interaction has already been acknowledged."
            )
        cb_type = body.get("type")
        if cb_type not in _CALLBACKS_FOR.get(interaction.type, set()):
            interaction.errors.append((400, 50035))
            raise _form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid"
            )
        data = body.get("data") or {}
        try:
            resource = self._apply_callback(interaction, cb_type, data, files)
        except DiscordAPIError as err:
            interaction.errors.append((err.status, err.code))
            raise
        interaction.callback = {"type": cb_type, "data": data}
        interaction.callback_at = now
        self._changed()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        info: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        if resource is not None and cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_UPDATE):
            info.update(
                response_message_id=str(resource.id),
                response_message_loading=resource.loading,
                response_message_ephemeral=resource.ephemeral,
            )
        result: dict[str, Any] = {"interaction": info}
        if resource is not None and cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_UPDATE):
            result["resource"] = {"type": cb_type, "message": resource.to_json()}
        elif cb_type != CB_PONG:
            result["resource"] = {"type": cb_type}
        return self._json(result)

    def _apply_callback(
        self,
        interaction: FakeInteraction,
        cb_type: int,
        data: dict[str, Any],
        files: dict[int, tuple[str, bytes]],
    ) -> MessageRecord | None:
        channel = self.channels[interaction.channel_id]
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT)
        if cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            record = self._interaction_message(interaction, channel)
            if cb_type == CB_DEFERRED_MESSAGE:
                flags = int(data.get("flags") or 0) & FLAG_EPHEMERAL
                record.flags = flags | FLAG_LOADING
                self._apply_payload(record, {}, {}, creating=True, keep_loading=True)
            else:
                self._apply_payload(
                    record, data, files, creating=True, size_limit=limit, allow_ephemeral=True
                )
            interaction.original = record
            self._store_new(record)
            return record
        if cb_type in (CB_DEFERRED_UPDATE, CB_UPDATE):
            target = interaction.source_message
            interaction.original = target
            if cb_type == CB_UPDATE and target is not None:
                self._apply_payload(target, data, files, creating=False, size_limit=limit)
                self._store_edit(target)
            return target
        if cb_type == CB_AUTOCOMPLETE:
            choices = data.get("choices")
            if not isinstance(choices, list) or len(choices) > 25:
                raise _form_error(
                    "data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
        return None

    def _interaction_message(self, interaction: FakeInteraction, channel: Channel) -> MessageRecord:
        """The message an interaction response creates (authored by the bot, webhook_id=app)."""
        metadata: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": dict(interaction.user),
            "authorizing_integration_owners": interaction.payload["authorizing_integration_owners"],
        }
        legacy: dict[str, Any] | None = None
        msg_type = 0
        if interaction.type == APPLICATION_COMMAND:
            cmd = interaction.payload["data"]
            metadata.update(name=cmd["name"], command_type=cmd.get("type", 1))
            msg_type = 20 if cmd.get("type", 1) == 1 else 23
            legacy = {
                "id": str(interaction.id),
                "type": interaction.type,
                "name": cmd["name"],
                "user": dict(interaction.user),
            }
            if "member" in interaction.payload:
                legacy["member"] = {
                    k: v for k, v in interaction.payload["member"].items() if k != "user"
                }
        elif interaction.source_message is not None:
            metadata["interacted_message_id"] = str(interaction.source_message.id)
        record = self._new_bot_message(
            channel,
            type=msg_type,
            webhook_id=self.application_id,
            application_id=self.application_id,
            interaction_id=interaction.id,
            interaction_metadata=metadata,
            interaction=legacy,
        )
        return record

    # interactions: webhook routes

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        token = request.match_info["token"]
        interaction = self._interactions_by_token.get(token)
        app_ok = request.match_info["application_id"] == str(self.application_id)
        if interaction is None or not app_ok:
            raise DiscordAPIError(401, 50027, "Invalid Webhook Token")
        if time.monotonic() - interaction.created_at > self.token_lifetime:
            raise self._interaction_error(interaction, 401, 50027, "Invalid Webhook Token")
        return interaction

    def _webhook_target(self, interaction: FakeInteraction, message_id: str) -> MessageRecord:
        if message_id == "@original":
            if interaction.callback is None or interaction.original is None:
                raise self._interaction_error(interaction, 404, 10015, "Unknown Webhook")
            record = interaction.original
        else:
            record = next(
                (
                    m
                    for m in [interaction.original, *interaction.followups]
                    if m is not None and str(m.id) == message_id
                ),
                None,
            )
            if record is None:
                raise self._interaction_error(interaction, 404, 10008, "Unknown Message")
        if record.deleted:
            raise self._interaction_error(interaction, 404, 10008, "Unknown Message")
        return record

    async def _webhook_execute(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction.callback is None:
            raise self._interaction_error(interaction, 404, 10015, "Unknown Webhook")
        payload, files = await self._read_body(request)
        channel = self.channels[interaction.channel_id]
        record = self._interaction_message(interaction, channel)
        if interaction.original is not None:
            record.interaction_metadata = {
                **(record.interaction_metadata or {}),
                "original_response_message_id": str(interaction.original.id),
            }
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT)
        try:
            self._apply_payload(
                record, payload, files, creating=True, size_limit=limit, allow_ephemeral=True
            )
        except DiscordAPIError as err:
            interaction.errors.append((err.status, err.code))
            raise
        interaction.followups.append(record)
        self._store_new(record)
        if request.query.get("wait") in ("1", "true", "True"):
            return self._json(record.to_json())
        return web.Response(status=204)

    async def _webhook_get_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        record = self._webhook_target(interaction, request.match_info["message_id"])
        return self._json(record.to_json())

    async def _webhook_edit_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        record = self._webhook_target(interaction, request.match_info["message_id"])
        payload, files = await self._read_body(request)
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT)
        try:
            self._apply_payload(record, payload, files, creating=False, size_limit=limit)
        except DiscordAPIError as err:
            interaction.errors.append((err.status, err.code))
            raise
        return self._json(self._store_edit(record))

    async def _webhook_delete_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        record = self._webhook_target(interaction, request.match_info["message_id"])
        self._store_delete(record)
        return web.Response(status=204)

    # ------------------------------------------------------------------ sending interactions

    def _find_command_schema(self, name: str, guild_id: int | None, ctype: int) -> dict | None:
        pools = []
        if guild_id is not None:
            pools.append(self.guild_commands.get(guild_id, []))
        pools.append(self.commands)
        for pool in pools:
            for command in pool:
                if command["name"] == name and command.get("type", 1) == ctype:
                    return command
        return None

    def _context(
        self,
        *,
        user: dict[str, Any],
        guild_id: int | None,
        channel_id: int | None,
    ) -> tuple[Channel, Guild | None]:
        if channel_id is None:
            if guild_id is None:
                channel_id = self.dm_channel_for(user)
            else:
                channel_id = self._guild(guild_id).channel_id
        channel = self._channel(channel_id)
        if guild_id is not None and channel.guild_id != guild_id:
            raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
        guild = self.guilds[channel.guild_id] if channel.guild_id is not None else None
        uid = int(user["id"])
        self.users.setdefault(uid, user)
        if guild is not None:
            self.add_member(guild.id, user)
        return channel, guild

    def _new_interaction(
        self,
        itype: int,
        data: dict[str, Any] | None,
        *,
        user: dict[str, Any],
        channel: Channel,
        guild: Guild | None,
        permissions: int | None,
        attachment_size_limit: int,
        context: int | None,
        extra: dict[str, Any] | None = None,
        source_message: MessageRecord | None = None,
    ) -> FakeInteraction:
        """Build the full INTERACTION_CREATE payload and dispatch it."""
        interaction_id = self._snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(150)
        app_perms = self._app_permissions(channel)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "app_permissions": str(app_perms),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": attachment_size_limit,
        }
        if data is not None:
            payload["data"] = data
        uid = int(user["id"])
        if guild is not None:
            member = guild.members[uid]
            perms = permissions if permissions is not None else self._member_permissions(guild, uid)
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = {**member.to_json(), "permissions": str(perms)}
            payload["channel"] = {**self._channel_json(channel.id), "permissions": str(perms)}
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
            payload["context"] = 0 if context is None else context
        else:
            payload["user"] = dict(user)
            payload["channel"] = self._channel_json(channel.id)
            payload["authorizing_integration_owners"] = {"0": "0"}
            payload["context"] = 1 if context is None else context
        payload["channel_id"] = str(channel.id)
        if extra:
            payload.update(extra)
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            type=itype,
            payload=payload,
            created_at=time.monotonic(),
            channel_id=channel.id,
            guild_id=guild.id if guild is not None else None,
            user=user,
            fake=self,
            source_message=source_message,
        )
        self.interactions[interaction_id] = interaction
        self._interactions_by_token[token] = interaction
        self._dispatch_interaction(interaction)
        self._changed()
        return interaction

    def _command_data(
        self,
        name: str,
        options: dict[str, Any] | None,
        *,
        guild: Guild | None,
        channel: Channel,
        subcommand: str | None,
        focused: str | None = None,
    ) -> dict[str, Any]:
        schema = self._find_command_schema(name, guild.id if guild else None, 1)
        data: dict[str, Any] = {
            "id": schema["id"] if schema else str(self._snowflake()),
            "name": name,
            "type": 1,
        }
        if schema is not None and "guild_id" in schema:
            data["guild_id"] = schema["guild_id"]
        schema_opts: list[dict[str, Any]] | None = schema.get("options", []) if schema else None
        resolved: dict[str, dict[str, Any]] = {}
        parts = subcommand.split() if subcommand else []
        leaf_schema = schema_opts
        kinds = [OPT_SUB_COMMAND_GROUP] * (len(parts) - 1) + [OPT_SUB_COMMAND] if parts else []
        if parts and schema_opts is not None:
            chain = _subcommand_chain(schema_opts, parts)
            if chain is None:
                raise ValueError(f"/{name} has no subcommand {subcommand!r}")
            kinds = [opt["type"] for opt in chain]
            leaf_schema = chain[-1].get("options", [])
        built = self._build_options(
            leaf_schema,
            options or {},
            resolved,
            guild=guild,
            channel=channel,
            focused=focused,
            path=" ".join([name, *parts]),
        )
        for part, kind in reversed(list(zip(parts, kinds, strict=True))):
            built = [{"type": kind, "name": part, "options": built}]
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        return data

    def _build_options(
        self,
        schema: list[dict[str, Any]] | None,
        values: dict[str, Any],
        resolved: dict[str, dict[str, Any]],
        *,
        guild: Guild | None,
        channel: Channel,
        focused: str | None,
        path: str,
    ) -> list[dict[str, Any]]:
        """Interaction options typed from the registered schema, else from Python types."""
        by_name = {o["name"]: o for o in schema or [] if o["type"] not in (1, 2)}
        if schema is not None:
            unknown = set(values) - set(by_name)
            if unknown:
                raise ValueError(f"/{path} has no option(s) {sorted(unknown)}")
            if focused is None:
                missing = [n for n, o in by_name.items() if o.get("required") and n not in values]
                if missing:
                    raise ValueError(f"/{path} requires option(s) {missing}")
        out: list[dict[str, Any]] = []
        for name, value in values.items():
            spec = by_name.get(name)
            otype = spec["type"] if spec else _infer_option_type(value)
            option: dict[str, Any] = {"name": name, "type": otype}
            if name == focused:
                option["value"] = value if isinstance(value, str) else str(value)
                option["focused"] = True
                out.append(option)
                continue
            option["value"] = self._option_value(
                otype, value, resolved, guild=guild, channel=channel
            )
            if spec and spec.get("choices") and focused is None:
                allowed = [c["value"] for c in spec["choices"]]
                if option["value"] not in allowed:
                    raise ValueError(f"/{path} {name}={value!r} is not one of {allowed}")
            out.append(option)
        return out

    def _option_value(
        self,
        otype: int,
        value: Any,
        resolved: dict[str, dict[str, Any]],
        *,
        guild: Guild | None,
        channel: Channel,
    ) -> Any:
        if otype == OPT_STRING:
            return str(value)
        if otype == OPT_INTEGER:
            return int(value)
        if otype == OPT_NUMBER:
            return float(value)
        if otype == OPT_BOOLEAN:
            return bool(value)
        if otype in (OPT_USER, OPT_MENTIONABLE) and isinstance(value, dict):
            uid = str(value["id"])
            self.users.setdefault(int(uid), value)
            resolved.setdefault("users", {})[uid] = dict(value)
            if guild is not None:
                member = guild.members.get(int(uid))
                if member is not None:
                    members = resolved.setdefault("members", {})
                    members[uid] = {
                        **member.to_json(with_user=False),
                        "permissions": str(self._member_permissions(guild, int(uid))),
                    }
            return uid
        if otype == OPT_CHANNEL:
            target = self._channel(int(value))
            resolved.setdefault("channels", {})[str(target.id)] = {
                **self._channel_json(target.id),
                "permissions": str(DEFAULT_PERMISSIONS),
            }
            return str(target.id)
        if otype == OPT_ATTACHMENT:
            if isinstance(value, bytes):
                filename, data = "upload.bin", value
            else:
                filename, data = value[0], value[1]
            att = self._make_attachment(channel.id, filename, data, ephemeral=True)
            resolved.setdefault("attachments", {})[att["id"]] = _public_attachment(att)
            return att["id"]
        return str(value)

    async def send_slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any],
        guild_id: int | None = None,
        channel_id: int | None = None,
        permissions: int | None = None,
        subcommand: str | None = None,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
        context: int | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name``; typed from the registered command when there is one.

        ``channel_id`` defaults to the guild's channel (or the user's DM without a guild);
        ``permissions`` defaults to what the member has (@everyone's unless overridden).
        ``subcommand`` may be ``"sub"`` or ``"group sub"``. Attachment options take
        ``bytes`` or ``(filename, bytes)``; user options take a user dict.
        """
        channel, guild = self._context(user=user, guild_id=guild_id, channel_id=channel_id)
        data = self._command_data(
            name, options, guild=guild, channel=channel, subcommand=subcommand
        )
        return self._new_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=attachment_size_limit,
            context=context,
        )

    async def send_autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        user: dict[str, Any],
        guild_id: int | None = None,
        channel_id: int | None = None,
        permissions: int | None = None,
        subcommand: str | None = None,
        context: int | None = None,
    ) -> FakeInteraction:
        """The user is typing option ``focused``; the bot must answer type 8 with choices."""
        if focused not in options:
            raise ValueError(f"focused option {focused!r} must be in options")
        channel, guild = self._context(user=user, guild_id=guild_id, channel_id=channel_id)
        data = self._command_data(
            name, options, guild=guild, channel=channel, subcommand=subcommand, focused=focused
        )
        return self._new_interaction(
            AUTOCOMPLETE,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
            context=context,
        )

    async def send_message_command(
        self,
        name: str,
        target: MessageRecord,
        *,
        user: dict[str, Any],
        permissions: int | None = None,
        context: int | None = None,
    ) -> FakeInteraction:
        """A user picks Apps > ``name`` on ``target`` (message context menu, data type 3)."""
        channel, guild = self._context(
            user=user, guild_id=target.guild_id, channel_id=target.channel_id
        )
        schema = self._find_command_schema(name, guild.id if guild else None, 3)
        data: dict[str, Any] = {
            "id": schema["id"] if schema else str(self._snowflake()),
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            # Context-menu targets carry content even without the Message Content intent.
            "resolved": {"messages": {str(target.id): target.to_json()}},
        }
        if schema is not None and "guild_id" in schema:
            data["guild_id"] = schema["guild_id"]
        return self._new_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
            context=context,
        )

    async def send_user_command(
        self,
        name: str,
        target_user: dict[str, Any],
        *,
        user: dict[str, Any],
        guild_id: int | None = None,
        channel_id: int | None = None,
        permissions: int | None = None,
    ) -> FakeInteraction:
        """A user picks Apps > ``name`` on another user (user context menu, data type 2)."""
        channel, guild = self._context(user=user, guild_id=guild_id, channel_id=channel_id)
        schema = self._find_command_schema(name, guild.id if guild else None, 2)
        resolved: dict[str, dict[str, Any]] = {}
        target_id = self._option_value(
            OPT_USER, target_user, resolved, guild=guild, channel=channel
        )
        data: dict[str, Any] = {
            "id": schema["id"] if schema else str(self._snowflake()),
            "name": name,
            "type": 2,
            "target_id": target_id,
            "resolved": resolved,
        }
        return self._new_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
            context=None,
        )

    async def press_button(
        self,
        message: MessageRecord,
        custom_id: str,
        *,
        user: dict[str, Any],
        permissions: int | None = None,
        stale: bool = False,
    ) -> FakeInteraction:
        """A user clicks an enabled button of ``message`` (as it is now).

        ``stale``: the click left the user's client while it still showed an earlier version
        of the message (a click racing an edit): the button may be gone by now.
        """
        shown = [message.to_json()]
        if stale:
            shown += list(reversed(message.versions))
        seen, component = next(
            (
                (version, found)
                for version in shown
                if (found := _find_component(version.get("components") or [], custom_id))
            ),
            (None, None),
        )
        if component is None or component.get("type") != 2:
            raise ValueError(f"message {message.id} has no button {custom_id!r}")
        if component.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled; Discord would not send a click")
        return await self._component_interaction(
            message,
            {"custom_id": custom_id, "component_type": 2},
            user=user,
            permissions=permissions,
            shown=seen,
        )

    async def choose_select(
        self,
        message: MessageRecord,
        custom_id: str,
        values: list[str],
        *,
        user: dict[str, Any],
        permissions: int | None = None,
    ) -> FakeInteraction:
        """A user picks ``values`` in a string select of ``message``."""
        component = _find_component(message.components, custom_id)
        if component is None or component.get("type") != 3:
            raise ValueError(f"message {message.id} has no string select {custom_id!r}")
        return await self._component_interaction(
            message,
            {"custom_id": custom_id, "component_type": 3, "values": list(values)},
            user=user,
            permissions=permissions,
        )

    async def _component_interaction(
        self,
        message: MessageRecord,
        data: dict[str, Any],
        *,
        user: dict[str, Any],
        permissions: int | None,
        shown: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        """``shown``: the message as the user's client showed it (default: as it is now)."""
        if message.deleted:
            raise ValueError("the message was deleted")
        channel, guild = self._context(
            user=user, guild_id=message.guild_id, channel_id=message.channel_id
        )
        return self._new_interaction(
            MESSAGE_COMPONENT,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
            context=None,
            extra={"message": shown or message.to_json()},
            source_message=message,
        )

    # ------------------------------------------------------------------ control API

    async def _control(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Control routes: no auth, no rate limits, not recorded; bad input is a 400."""
        try:
            return await handler(request)
        except (KeyError, ValueError, TypeError, DiscordAPIError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)

    @staticmethod
    async def _control_body(request: web.Request) -> Any:
        raw = await request.read()
        return json.loads(raw) if raw else {}

    def _control_user(self, user_id: Any) -> dict[str, Any]:
        user = self.users.get(int(user_id))
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    async def _control_info(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "rest_base": self.rest_base,
                "gateway_url": self.gateway_url,
                "control": self.control_url,
                "application_id": str(self.application_id),
                "bot_user_id": str(self.bot_user_id),
                "ready": any(s.ready for s in self._sessions.values()),
                "commands": [c["name"] for c in self.commands],
                "guilds": [str(g) for g in self.guilds],
                "now": time.monotonic(),
            }
        )

    async def _control_guilds(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        guilds = [self.add_guild(str(name)) for name in body["names"]]
        return json_response(
            {
                "guilds": [
                    {"id": str(g.id), "name": g.name, "channel_id": str(g.channel_id)}
                    for g in guilds
                ]
            }
        )

    async def _control_users(self, request: web.Request) -> web.Response:
        specs = (await self._control_body(request))["users"]
        for spec in specs:  # check every guild first: all or nothing
            for guild_id in spec.get("guild_ids") or []:
                self._guild(int(guild_id))
        users = []
        for spec in specs:
            user = self.add_user(str(spec["name"]))
            for guild_id in spec.get("guild_ids") or []:
                self.add_member(int(guild_id), user, permissions=spec.get("permissions"))
            users.append(user)
        return json_response({"users": users})

    async def _control_members(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        guild = self._guild(int(body["guild_id"]))
        users = [self._control_user(uid) for uid in body["user_ids"]]
        for user in users:
            self.add_member(guild.id, user, permissions=body.get("permissions"))
        return json_response({"guild_id": str(guild.id), "members": len(users)})

    async def _control_slash(self, request: web.Request) -> web.Response:
        """One interaction, or a list of them created in the same event-loop turn."""
        body = await self._control_body(request)
        specs = body if isinstance(body, list) else [body]
        users = [self._control_user(spec["user_id"]) for spec in specs]
        sent = []
        for spec, user in zip(specs, users, strict=True):
            interaction = await self.send_slash(
                spec["name"],
                spec.get("options") or {},
                user=user,
                guild_id=_opt_int(spec.get("guild_id")),
                channel_id=_opt_int(spec.get("channel_id")),
                permissions=spec.get("permissions"),
                subcommand=spec.get("subcommand"),
            )
            sent.append({"id": str(interaction.id), "created_at": interaction.created_at})
        return json_response(sent if isinstance(body, list) else sent[0])

    async def _control_interactions(self, request: web.Request) -> web.Response:
        """Records of interactions; GET takes a query, POST the same keys as JSON."""
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params.update(await self._control_body(request))
        ids = params.get("ids")
        if isinstance(ids, str):
            ids = [part for part in ids.split(",") if part.strip()]
        if ids:
            try:
                chosen = [self.interactions[int(i)] for i in ids]
            except KeyError as exc:
                raise ValueError(f"unknown interaction {exc.args[0]}") from None
        else:
            chosen = list(self.interactions.values())
        until = params.get("until", "final")
        if until not in ("callback", "final"):
            raise ValueError(f"until must be 'callback' or 'final', not {until!r}")
        wait = float(params.get("wait", 0))
        timed_out = False
        if wait > 0:
            try:
                await self.wait_until(lambda: all(_settled(i, until) for i in chosen), wait)
            except TimeoutError:
                timed_out = True
        return json_response(
            {
                "now": time.monotonic(),
                "count_429": self.count_429,
                "timed_out": timed_out,
                "interactions": [_control_record(i) for i in chosen],
            }
        )

    async def _control_stats(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "count_429": self.count_429,
                "requests": dict(Counter(f"{r.method} {r.path} {r.status}" for r in self.requests)),
                "internal_errors": [repr(exc) for exc in self.internal_errors],
                "unknown_routes": [f"{r.method} {r.url}" for r in self.unknown_routes],
                "identifies": self.identifies,
                "resumes": self.resumes,
                "gateway_connects": self.gateway_connects,
            }
        )

    async def _control_drop_gateway(self, request: web.Request) -> web.Response:
        """Drop every live gateway connection; ``code`` null aborts TCP, else a close code."""
        body = await self._control_body(request)
        code = body.get("code") if isinstance(body, dict) else None
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError(f"code must be null or an integer close code, not {code!r}")
        before = {
            "dropped": sum(1 for c in self._connections if not c.closed),
            "resumes": self.resumes,
            "identifies": self.identifies,
            "gateway_connects": self.gateway_connects,
        }
        await self.drop_gateway(code)
        return json_response(before)

    async def _control_replies(self, request: web.Request) -> web.Response:
        """What each interaction's reply shows now (its embeds' titles, its buttons...)."""
        body = await self._control_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if ids is None:
            chosen = list(self.interactions.values())
        else:
            try:
                chosen = [self.interactions[int(i)] for i in ids]
            except KeyError as exc:
                raise ValueError(f"unknown interaction {exc.args[0]}") from None
        return json_response(
            {
                "replies": [
                    {
                        "id": str(i.id),
                        "callback_type": i.callback["type"] if i.callback else None,
                        "original": _reply_view(i.original),
                        "followups": [_reply_view(m) for m in i.followups],
                    }
                    for i in chosen
                ]
            }
        )


def _reply_view(record: MessageRecord | None) -> dict[str, Any] | None:
    """A message as the control API's ``replies`` shows it."""
    if record is None:
        return None
    buttons: list[dict[str, Any]] = []

    def collect(items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == 2:
                buttons.append(
                    {
                        "label": item.get("label"),
                        "custom_id": item.get("custom_id"),
                        "disabled": bool(item.get("disabled")),
                    }
                )
            collect(item.get("components", []))

    collect(record.components)
    return {
        "id": str(record.id),
        "content": record.content,
        "flags": record.flags,
        "deleted": record.deleted,
        "edits": record.edit_count,
        "attachments": len(record.attachments),
        "embeds": [
            {"title": e.get("title"), "description": e.get("description")} for e in record.embeds
        ],
        "buttons": buttons,
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _settled(interaction: FakeInteraction, until: str) -> bool:
    """``callback``: answered (or answered too late); ``final``: no longer a plain status."""
    if any(code == 10062 for _, code in interaction.errors):
        return True
    if interaction.callback is None:
        return False
    if until == "callback" or interaction.callback["type"] == CB_MESSAGE:
        return True
    original = interaction.original
    return original is not None and bool(original.attachments or original.embeds)


def _control_record(interaction: FakeInteraction) -> dict[str, Any]:
    """What the control API tells about one interaction (times: this process's monotonic)."""
    original = interaction.original
    versions: list[Snapshot] = []
    if original is not None:
        created_here = interaction.callback is not None and interaction.callback["type"] in (
            CB_MESSAGE,
            CB_DEFERRED_MESSAGE,
        )
        if created_here:
            versions = original.history[1:]
        else:  # a component's message: only what changed since the click
            versions = [s for s in original.history if s.at > interaction.created_at]
    return {
        "id": str(interaction.id),
        "type": interaction.type,
        "user_id": str(interaction.user["id"]),
        "guild_id": _opt_str(interaction.guild_id),
        "channel_id": str(interaction.channel_id),
        "created_at": interaction.created_at,
        "delivered_at": interaction.delivered_at,
        "callback_at": interaction.callback_at,
        "ack_latency": interaction.ack_latency,
        "callback_type": interaction.callback["type"] if interaction.callback else None,
        "original_id": str(original.id) if original is not None else None,
        "edits": [
            {
                "at": snap.at,
                "has_attachments": bool(snap.data["attachments"]),
                "embeds": len(snap.data["embeds"]),
                "content": snap.data["content"][:200],
            }
            for snap in versions
        ],
        "followups": len(interaction.followups),
        "errors": [[status, code] for status, code in interaction.errors],
        "count_429": sum(1 for status, _ in interaction.errors if status == 429),
    }


# --------------------------------------------------------------------------- helpers


def _image_size(data: bytes) -> tuple[int, int] | None:
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


def _number_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy components and give each an ``id`` (Discord numbers them depth-first)."""
    counter = itertools.count(1)
    used = set()

    def collect(items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if "id" in item:
                used.add(item["id"])
            collect(item.get("components", []))
            if isinstance(item.get("accessory"), dict):
                collect([item["accessory"]])

    def number(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            copy = dict(item)
            if "id" not in copy:
                ident = next(counter)
                while ident in used:
                    ident = next(counter)
                copy["id"] = ident
            if "components" in copy:
                copy["components"] = number(copy["components"])
            if isinstance(copy.get("accessory"), dict):
                copy["accessory"] = number([copy["accessory"]])[0]
            out.append(copy)
        return out

    collect(components)
    return number(components)


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for item in components:
        if item.get("custom_id") == custom_id:
            return item
        found = _find_component(item.get("components", []), custom_id)
        if found is None and isinstance(item.get("accessory"), dict):
            found = _find_component([item["accessory"]], custom_id)
        if found is not None:
            return found
    return None


def _validate_allowed_mentions(allowed: dict[str, Any]) -> None:
    parse = allowed.get("parse") or []
    for kind in parse:
        if kind not in ("users", "roles", "everyone"):
            raise _form_error(
                "allowed_mentions.parse", "ENUM_TYPE_COERCE", f"{kind!r} is not valid"
            )
    for kind in ("users", "roles"):
        if kind in parse and allowed.get(kind):
            raise _form_error(
                "allowed_mentions",
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPT_BOOLEAN
    if isinstance(value, int):
        return OPT_INTEGER
    if isinstance(value, float):
        return OPT_NUMBER
    if isinstance(value, bytes | tuple):
        return OPT_ATTACHMENT
    if isinstance(value, dict):
        return OPT_USER
    return OPT_STRING


def _subcommand_chain(
    options: list[dict[str, Any]], parts: list[str]
) -> list[dict[str, Any]] | None:
    """The schema entries for ``"group sub"``, outermost first; None if absent."""
    chain: list[dict[str, Any]] = []
    pool = options
    for part in parts:
        found = next((o for o in pool if o["name"] == part and o["type"] in (1, 2)), None)
        if found is None:
            return None
        chain.append(found)
        pool = found.get("options", [])
    return chain


def _validate_command(data: dict[str, Any], index: int) -> None:
    """The checks Discord applies on registration that commonly bite (names, lengths)."""
    name = data.get("name")
    ctype = data.get("type", 1)
    if not isinstance(name, str) or not name:
        raise _form_error(f"{index}.name", "BASE_TYPE_REQUIRED", "This field is required")
    if ctype == 1:
        if not _COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            raise _form_error(
                f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        description = data.get("description") or ""
        if not 1 <= len(description) <= 100:
            raise _form_error(
                f"{index}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        _validate_options(data.get("options") or [], f"{index}.options")
    elif len(name) > 32:
        raise _form_error(
            f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
        )


def _validate_options(options: list[dict[str, Any]], path: str) -> None:
    if len(options) > 25:
        raise _form_error(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    for i, option in enumerate(options):
        name = option.get("name", "")
        if not _COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            raise _form_error(
                f"{path}.{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if not 1 <= len(option.get("description") or "") <= 100:
            raise _form_error(
                f"{path}.{i}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        if len(option.get("choices") or []) > 25:
            raise _form_error(
                f"{path}.{i}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        if option.get("type") in (1, 2):
            _validate_options(option.get("options") or [], f"{path}.{i}.options")
            continue
        if option.get("required"):
            if seen_optional:
                raise _form_error(
                    f"{path}.{i}.required",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True


# --------------------------------------------------------------------------- CLI


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(token=args.token, port=args.port)
    await fake.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "rest_base": fake.rest_base,
        "gateway_url": fake.gateway_url,
        "control": fake.control_url,
        "token": fake.token,
        "application_id": str(fake.application_id),
    }
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    """Run the fake in its own process until SIGTERM/SIGINT (see the control API above)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.discord_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="test-token", help="the bot token it accepts")
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
