"""The records the fake keeps: snowflakes, messages with every version, guilds, channels,
members, the requests it answered, and who a message pings.

They are plain data with their Discord JSON (``to_json``); the rules that create and change
them live in the modules that do that job (``state``, ``messages``, ``bodies``...).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .locales import DEFAULT_LOCALE
from .protocol import DEFAULT_PERMISSIONS, DISCORD_EPOCH_MS, FLAG_EPHEMERAL, FLAG_LOADING

__all__ = [
    "Channel",
    "Guild",
    "Member",
    "MessageRecord",
    "Pings",
    "RequestRecord",
    "Snapshot",
    "SnowflakeFactory",
    "compute_pings",
    "iso",
    "opt_str",
    "public_attachment",
    "snowflake_time",
]

_EVERYONE_RE = re.compile(r"@(everyone|here)")
_USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")


def snowflake_time(snowflake: int) -> datetime:
    """The creation time encoded in a snowflake (Discord's timestamps derive from ids)."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


class SnowflakeFactory:
    """Time-based, strictly increasing snowflakes, so ordering by id is ordering by time."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._last = 0

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (next(self._counter) & 0xFFF)
        self._last = max(value, self._last + 1)
        return self._last

    def on_shard(self, shard_id: int, count: int) -> int:
        """The next snowflake whose guild would be on shard ``shard_id`` of ``count``
        (``(id >> 22) % count``): its timestamp moved at most ``count - 1`` ms ahead."""
        ms = self() >> 22
        ms += (shard_id - ms) % count
        self._last = max(ms << 22, self._last + 1)
        return self._last


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
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "tts": self.tts,
            "mention_everyone": self.pinged_everyone,
            "mentions": [dict(u) for u in self.mentions],
            "mention_roles": list(self.mention_roles),
            "attachments": [public_attachment(a) for a in self.attachments],
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


def public_attachment(att: dict[str, Any]) -> dict[str, Any]:
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
    nsfw: bool = False  # age-restricted (a server's channel)

    def to_json(self, overwrites: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if self.type == 1:
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": opt_str(self.last_message_id),
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
            "nsfw": self.nsfw,
            "parent_id": None,
            "topic": None,
            "last_message_id": opt_str(self.last_message_id),
            "last_pin_timestamp": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }


def opt_str(value: int | None) -> str | None:
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
    #: The community's language: ``preferred_locale``, and ``guild_locale`` in interactions.
    preferred_locale: str = DEFAULT_LOCALE
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
