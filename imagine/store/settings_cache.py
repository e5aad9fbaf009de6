"""Servers' and members' settings, cached in memory so reading them costs no I/O on the
interaction hot path: all of them are loaded at start-up (rows exist only for servers and
members that changed something, so one without a row simply has the defaults).

Settings change through ``change_guild`` / ``change_user``: a function of the current settings,
applied to the row read (and locked) inside the transaction, under a per-row lock in this
process; so two admins, or two processes, changing one server at once both keep their change.
Other processes learn of a change by a NOTIFY (``SETTINGS_CHANNEL``) and read the row again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .database import Database, retrying
from .notify import SETTINGS_CHANNEL, notify
from .records import GuildSettings, UserSettings, json_list
from .schema import guild_settings, user_settings


class SettingsCache(Database):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._guilds: dict[int, GuildSettings] = {}
        self._all_guilds_loaded = False
        self._users: dict[int, UserSettings] = {}

    async def load(self) -> None:
        await super().load()
        await self.load_guilds()
        await self.load_users()

    async def reload_settings(self) -> None:
        """Read every server's and member's settings again, replacing what is cached: for a
        process that may have missed other processes' notices of a change (a reconnection),
        and now and then in case it did without knowing."""
        guilds = await retrying(self._read_guilds, what="reading the settings")
        users = await retrying(self._read_users, what="reading the settings")
        self._guilds = guilds
        self._users = users
        self._all_guilds_loaded = True
        await super().reload_settings()

    # -- servers' settings ----------------------------------------------------------------

    async def load_guilds(self) -> int:
        """Cache every server's settings (one small table), so reads cost no I/O."""
        self._guilds = await self._read_guilds()
        self._all_guilds_loaded = True
        return len(self._guilds)

    async def _read_guilds(self) -> dict[int, GuildSettings]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(guild_settings))).all()
        return {
            row._mapping["guild_id"]: self._guild_from_row(row._mapping["guild_id"], row._mapping)
            for row in rows
        }

    async def guild(self, guild_id: int) -> GuildSettings:
        """A server's settings, from memory (a server without a row has the defaults)."""
        cached = self._guilds.get(guild_id)
        if cached is not None:
            return cached
        if self._all_guilds_loaded:
            # Not cached: ids come from anyone (a user-installed app runs in servers the bot
            # is not in), so only servers with a row take memory.
            return GuildSettings(guild_id)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(guild_settings).where(guild_settings.c.guild_id == guild_id)
                )
            ).first()
        settings = self._guild_from_row(guild_id, row._mapping if row else None)
        self._guilds[guild_id] = settings
        return settings

    @staticmethod
    def _guild_from_row(guild_id: int, row: Any) -> GuildSettings:
        if row is None:
            return GuildSettings(guild_id)
        allowed = json_list(row["allowed_models"])
        return GuildSettings(
            guild_id=guild_id,
            default_model=row["default_model"],
            allowed_models=tuple(str(m) for m in allowed) if allowed is not None else None,
            cooldown_seconds=float(row["cooldown_seconds"] or 0),
            channels=tuple(int(c) for c in json_list(row["channels"]) or ()),
            max_size=row["max_size"],
            fallback_model=row["fallback_model"],
            blocked_words=tuple(str(w) for w in json_list(row["blocked_words"]) or ()),
            default_count=row["default_count"],
            max_count=row["max_count"],
            translate_model=row["translate_model"],
            daily_limit=row["daily_limit"],
        )

    async def change_guild(
        self, guild_id: int, change: Callable[[GuildSettings], GuildSettings]
    ) -> GuildSettings:
        """Apply ``change`` to a server's settings as they are now; returns the new settings.

        ``change`` gets the settings read inside the transaction, with the row locked (``FOR
        UPDATE`` on PostgreSQL, the database on SQLite) and under a per-server lock here, so a
        check against the current value sees the fresh value and concurrent changes, from
        this process or another, all apply instead of overwriting each other. To refuse, raise:
        nothing is written and the exception propagates. ``change`` must not do I/O (the row
        is locked while it runs); it may be called with settings newer than the cache's.
        """
        async with self._row_lock("guild", guild_id), self._transaction() as conn:
            row = await self._locked_guild_row(conn, guild_id)
            if row is None:
                # A new server: make the row to lock. A concurrent first write by another
                # process makes this INSERT wait for its commit, and then do nothing.
                await conn.execute(
                    self._insert(guild_settings)
                    .values(guild_id=guild_id)
                    .on_conflict_do_nothing(index_elements=[guild_settings.c.guild_id])
                )
                row = await self._locked_guild_row(conn, guild_id)
            current = self._guild_from_row(guild_id, row)
            new = change(current)
            if new != current:
                await conn.execute(
                    guild_settings.update()
                    .where(guild_settings.c.guild_id == guild_id)
                    .values(**_guild_values(new))
                )
                if not self.is_sqlite:  # other processes drop it from their cache (at commit)
                    await notify(conn, SETTINGS_CHANNEL, str(guild_id))
                await conn.commit()  # otherwise rolled back: no row made for nothing
        self._guilds[guild_id] = new
        return new

    async def refresh_guild(self, guild_id: int) -> GuildSettings:
        """Read one server's settings again (another process changed them)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(guild_settings).where(guild_settings.c.guild_id == guild_id)
                )
            ).first()
        settings = self._guild_from_row(guild_id, row._mapping if row else None)
        self._guilds[guild_id] = settings
        return settings

    async def update_guild(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Set some of a server's settings to fixed values (atomic, like ``change_guild``)."""
        return await self.change_guild(guild_id, lambda current: replace(current, **changes))

    @staticmethod
    async def _locked_guild_row(conn: AsyncConnection, guild_id: int) -> Any:
        query = sa.select(guild_settings).where(guild_settings.c.guild_id == guild_id)
        row = (await conn.execute(query.with_for_update())).first()
        return row._mapping if row else None

    # -- members' settings ---------------------------------------------------------------

    async def load_users(self) -> int:
        """Cache every member's settings: rows exist only for members who changed their
        ``/settings`` (a member who never did has none), so reading them costs no I/O before
        an interaction is acknowledged, and memory grows with those members only."""
        self._users = await self._read_users()
        return len(self._users)

    async def _read_users(self) -> dict[int, UserSettings]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(user_settings))).all()
        return {
            row._mapping["user_id"]: _user_from_row(row._mapping["user_id"], row._mapping)
            for row in rows
        }

    def user(self, user_id: int) -> UserSettings:
        """A member's settings, from memory (a member without a row has none)."""
        return self._users.get(user_id) or UserSettings(user_id)

    async def refresh_user(self, user_id: int) -> UserSettings:
        """Read one member's settings again (another process changed them)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(user_settings).where(user_settings.c.user_id == user_id)
                )
            ).first()
        settings = _user_from_row(user_id, row._mapping if row else None)
        self._users[user_id] = settings
        return settings

    async def change_user(
        self, user_id: int, change: Callable[[UserSettings], UserSettings]
    ) -> UserSettings:
        """Apply ``change`` to a member's settings as stored, as ``change_guild`` does for a
        server (row locked in the transaction; raise to refuse)."""
        async with self._row_lock("user", user_id), self._transaction() as conn:
            query = sa.select(user_settings).where(user_settings.c.user_id == user_id)
            row = (await conn.execute(query.with_for_update())).first()
            if row is None:
                await conn.execute(
                    self._insert(user_settings)
                    .values(user_id=user_id)
                    .on_conflict_do_nothing(index_elements=[user_settings.c.user_id])
                )
                row = (await conn.execute(query.with_for_update())).first()
            current = _user_from_row(user_id, row._mapping if row else None)
            new = change(current)
            if new != current:
                await conn.execute(
                    user_settings.update()
                    .where(user_settings.c.user_id == user_id)
                    .values(**_user_values(new))
                )
                if not self.is_sqlite:
                    await notify(conn, SETTINGS_CHANNEL, f"u{user_id}")
                await conn.commit()
        self._users[user_id] = new
        return new


def _guild_values(settings: GuildSettings) -> dict[str, Any]:
    """A server's settings as its row's values."""
    return {
        "default_model": settings.default_model,
        "allowed_models": None
        if settings.allowed_models is None
        else json.dumps(list(settings.allowed_models)),
        "cooldown_seconds": settings.cooldown_seconds,
        "channels": json.dumps([str(c) for c in settings.channels]),
        "max_size": settings.max_size,
        "fallback_model": settings.fallback_model,
        "blocked_words": json.dumps(list(settings.blocked_words)),
        "updated_at": time.time(),
        "default_count": settings.default_count,
        "max_count": settings.max_count,
        "translate_model": settings.translate_model,
        "daily_limit": settings.daily_limit,
    }


def _user_values(settings: UserSettings) -> dict[str, Any]:
    return {
        "model": settings.model,
        "aspect": settings.aspect,
        "count": settings.count,
        "private": settings.private,
        "language": settings.language,
        "locale": settings.locale,
        "updated_at": time.time(),
    }


def _user_from_row(user_id: int, row: Any) -> UserSettings:
    if row is None:
        return UserSettings(user_id)
    return UserSettings(
        user_id=user_id,
        model=row["model"],
        aspect=row["aspect"],
        count=row["count"],
        private=bool(row["private"]),
        language=row["language"],
        locale=row["locale"],
    )
