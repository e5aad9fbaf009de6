"""What Discord knows: the application and its bot user, users, guilds with their members
and channels, DM channels, the interactions in flight; permissions; the JSON of those
objects; and the change notification every ``wait_until`` hangs on.

Guild and channel changes are announced through :attr:`DiscordState.events` (the gateway).
Messages are kept by ``messages.MessageStore``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .errors import DiscordAPIError
from .locales import DEFAULT_LOCALE, check_locale
from .models import Channel, Guild, Member, MessageRecord, SnowflakeFactory, iso
from .protocol import (
    ALL_PERMISSIONS,
    BOT_ROLE_PERMISSIONS,
    DEFAULT_PERMISSIONS,
    FORBIDDEN_PERMISSIONS,
)

if TYPE_CHECKING:
    from .interactions import FakeInteraction

__all__ = ["DiscordState", "GuildEvents"]


class GuildEvents(Protocol):
    """Where guild and channel events go (the gateway, to every session with GUILDS)."""

    def guild_event(self, event: str, data: dict[str, Any]) -> None: ...


class DiscordState:
    """The world the bot lives in, and a way to wait for it to change."""

    def __init__(
        self,
        *,
        token: str,
        application_id: int | None,
        bot_user_id: int | None,
        bot_name: str,
        message_content_intent: bool,
    ) -> None:
        self.snowflake = SnowflakeFactory()
        self.token = token
        self.application_id = application_id or self.snowflake()
        self.bot_user_id = bot_user_id or self.application_id
        self.bot_name = bot_name
        #: The app's privileged-intent switch in the developer portal.
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
        self.users: dict[int, dict[str, Any]] = {self.bot_user_id: self.bot_user}
        #: Each user's client language (kept apart: bots never see it in a user object).
        self.user_locales: dict[int, str] = {}
        self.owner_user = self.add_user("owner")
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.forbidden: set[int] = set()
        self._dm_by_user: dict[int, int] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.interactions_by_token: dict[str, FakeInteraction] = {}
        self.events: GuildEvents | None = None
        self._waiters: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ waiting

    def changed(self) -> None:
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

    def _announce(self, event: str, data: dict[str, Any]) -> None:
        if self.events is not None:
            self.events.guild_event(event, data)

    # ------------------------------------------------------------------ users, guilds, channels

    def add_user(
        self, name: str, *, bot: bool = False, locale: str | None = None
    ) -> dict[str, Any]:
        """A Discord user object (ids are snowflakes, as strings).

        ``locale``: the language of the user's client (default en-US); it is what their
        interactions carry as ``locale``. See :meth:`user_locale`.
        """
        user = {
            "id": str(self.snowflake()),
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
        if locale is not None:
            self.user_locales[int(user["id"])] = check_locale(locale)
        return user

    def set_user_locale(self, user: dict[str, Any], locale: str) -> None:
        """The user switches their client's language; later interactions carry it."""
        self.user_locales[int(user["id"])] = check_locale(locale)

    def user_locale(self, user: dict[str, Any]) -> str:
        """The language of ``user``'s client: a ``"locale"`` in the dict itself (as an OAuth
        user object has), else what :meth:`add_user`/:meth:`set_user_locale` said, else
        en-US."""
        locale = user.get("locale") or self.user_locales.get(int(user["id"]), DEFAULT_LOCALE)
        return check_locale(locale)

    def add_guild(
        self,
        name: str = "Test Server",
        *,
        owner_id: int | None = None,
        shard: tuple[int, int] | None = None,
        preferred_locale: str = DEFAULT_LOCALE,
    ) -> Guild:
        """A guild with one text channel; announced by GUILD_CREATE if a session is live.
        ``shard=(id, count)`` picks an id whose events go to that shard;
        ``preferred_locale`` is the community's language (interactions' ``guild_locale``)."""
        guild_id = self.snowflake.on_shard(*shard) if shard else self.snowflake()
        owner_id = owner_id or int(self.owner_user["id"])
        now = iso(datetime.now(UTC))
        guild = Guild(
            id=guild_id,
            name=name,
            owner_id=owner_id,
            channel_id=0,
            bot_role_id=self.snowflake(),
            joined_at=now,
            preferred_locale=check_locale(preferred_locale),
        )
        self.guilds[guild_id] = guild
        guild.members[self.bot_user_id] = Member(
            user=self.bot_user, joined_at=now, roles=[guild.bot_role_id]
        )
        owner = self.users.get(owner_id)
        if owner is not None:
            guild.members[owner_id] = Member(user=owner, joined_at=now)
        guild.channel_id = self._create_guild_channel(guild, "general")
        self._announce("GUILD_CREATE", self.guild_json(guild, in_ready=False))
        self.changed()
        return guild

    def set_guild_locale(self, guild_id: int, locale: str) -> None:
        """An admin changes the server's primary language: GUILD_UPDATE, as Discord sends."""
        guild = self.guild(guild_id)
        guild.preferred_locale = check_locale(locale)
        self._announce("GUILD_UPDATE", self.guild_json(guild))
        self.changed()

    def add_channel(self, guild_id: int, name: str, *, nsfw: bool = False) -> int:
        """A text channel; ``nsfw``: age-restricted (Discord's ``nsfw`` flag)."""
        guild = self.guild(guild_id)
        channel_id = self._create_guild_channel(guild, name, nsfw=nsfw)
        self._announce("CHANNEL_CREATE", self.channel_json(channel_id))
        return channel_id

    def _create_guild_channel(self, guild: Guild, name: str, *, nsfw: bool = False) -> int:
        channel = Channel(
            id=self.snowflake(),
            type=0,
            name=name,
            guild_id=guild.id,
            position=len(guild.channel_ids),
            nsfw=nsfw,
        )
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel.id

    def add_member(
        self, guild_id: int, user: dict[str, Any], *, permissions: int | None = None
    ) -> Member:
        """Make ``user`` a member; ``permissions`` overrides what interactions report."""
        guild = self.guild(guild_id)
        uid = int(user["id"])
        self.users.setdefault(uid, user)
        member = guild.members.get(uid)
        if member is None:
            member = Member(user=user, joined_at=iso(datetime.now(UTC)))
            guild.members[uid] = member
        if permissions is not None:
            member.permissions = permissions
        return member

    def dm_channel_for(self, user: dict[str, Any]) -> int:
        """The DM channel between the bot and ``user`` (created on first use, as Discord)."""
        uid = int(user["id"])
        self.users.setdefault(uid, user)
        if uid not in self._dm_by_user:
            channel = Channel(id=self.snowflake(), type=1, name=None, recipients=[user])
            self.channels[channel.id] = channel
            self._dm_by_user[uid] = channel.id
        return self._dm_by_user[uid]

    def forbid_channel(self, channel_id: int) -> None:
        """The bot loses Send Messages there: POST messages answers 403 / 50013."""
        self.forbidden.add(channel_id)
        self._announce_channel_update(channel_id)

    def allow_channel(self, channel_id: int) -> None:
        self.forbidden.discard(channel_id)
        self._announce_channel_update(channel_id)

    def _announce_channel_update(self, channel_id: int) -> None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.guild_id is None:
            return
        self._announce("CHANNEL_UPDATE", self.channel_json(channel_id))

    def register_interaction(self, interaction: FakeInteraction) -> None:
        self.interactions[interaction.id] = interaction
        self.interactions_by_token[interaction.token] = interaction

    # ------------------------------------------------------------------ lookups

    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[int(guild_id)]
        except KeyError:
            raise DiscordAPIError(404, 10004, "Unknown Guild") from None

    def channel(self, channel_id: int | str) -> Channel:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10003, "Unknown Channel") from None

    def member_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is not None and member.permissions is not None:
            return member.permissions
        perms = guild.everyone_permissions
        if member is not None and guild.bot_role_id in member.roles:
            perms |= BOT_ROLE_PERMISSIONS
        return perms

    def app_permissions(self, channel: Channel) -> int:
        if channel.guild_id is None:
            return DEFAULT_PERMISSIONS
        perms = self.member_permissions(self.guilds[channel.guild_id], self.bot_user_id)
        if channel.id in self.forbidden:
            perms &= ~FORBIDDEN_PERMISSIONS
        return perms

    # ------------------------------------------------------------------ JSON of these objects

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
        if channel.id not in self.forbidden or channel.guild_id is None:
            return []
        guild = self.guilds[channel.guild_id]
        deny = str(FORBIDDEN_PERMISSIONS)
        return [{"id": str(guild.bot_role_id), "type": 0, "allow": "0", "deny": deny}]

    def channel_json(self, channel_id: int) -> dict[str, Any]:
        channel = self.channels[channel_id]
        return channel.to_json(self._overwrites(channel))

    def guild_json(self, guild: Guild, *, in_ready: bool | None = None) -> dict[str, Any]:
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
            "preferred_locale": guild.preferred_locale,
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
                    {k: v for k, v in self.channel_json(cid).items() if k != "guild_id"}
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

    # ------------------------------------------------------------------ what messages show

    def resolve_mentions(self, record: MessageRecord) -> None:
        """Fill ``mentions``/``mention_roles`` from who the message pings."""
        pings = record.pings
        users = [self.users[u] for u in sorted(pings.users) if u in self.users]
        record.mentions = [dict(u) for u in users]
        record.mention_roles = [str(r) for r in sorted(pings.roles)]

    def redact(self, record: MessageRecord, data: dict[str, Any]) -> dict[str, Any]:
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
