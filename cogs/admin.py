"""/imagine-config: each server's own settings, for members who may manage the server.

Discord hides the group from others by default (``default_permissions``), and every command
checks the member's permissions again here, so a changed default in the server's
integration settings cannot let anyone else change anything.

Every change is a function of the server's current settings, applied by the store inside its
lock and transaction (``Store.change_guild``): two admins changing one list at once both keep
their change, and checks against the current value (the blocked-word limit, the default model
among the allowed ones) see the fresh value. A refusal raises ``Refused``, which writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from imagine.errors import BadInput, message_of
from imagine.flags import MAX_COUNT
from imagine.settings import MAX_SIDE
from imagine.store import GuildSettings
from imagine.wordfilter import matching_form

from .utils.render import NO_PINGS

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

NONE = "none"
MAX_BLOCKED_WORDS = 200


class Refused(Exception):
    """Raised by a change function: nothing changes and the admin is told why."""


def server_of(interaction: discord.Interaction) -> int:
    """The server of an /imagine-config interaction (the group is server-only)."""
    assert interaction.guild_id is not None
    return interaction.guild_id


async def say(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


def describe(settings: GuildSettings, bot_fallback: str | None) -> str:
    models = ", ".join(settings.allowed_models) if settings.allowed_models is not None else "all"
    channels = ", ".join(f"<#{c}>" for c in settings.channels) or "everywhere"
    fallback = settings.fallback_model or (
        f"{bot_fallback} (bot default)" if bot_fallback else NONE
    )
    return "\n".join(
        [
            f"**Default model:** {settings.default_model or 'flux (bot default)'}",
            f"**Models members may pick:** {models}",
            f"**Cooldown:** {settings.cooldown_seconds:g}s per member",
            f"**Channels:** {channels}",
            f"**Largest width/height:** {settings.max_size or MAX_SIDE}",
            f"**Fallback model:** {fallback}",
            f"**Blocked words:** {len(settings.blocked_words)}",
            f"**Images per request:** {settings.default_count or 1} "
            f"(at most {settings.max_count or MAX_COUNT})",
        ]
    )


@app_commands.guild_only()
@app_commands.allowed_installs(guilds=True, users=False)
@app_commands.default_permissions(manage_guild=True)
class Admin(commands.GroupCog, group_name="imagine-config", group_description="Imagine settings"):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Checked again here: Discord's default permission is only a default."""
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await say(
                interaction, "You need the Manage Server permission to change Imagine settings."
            )
            return False
        return True

    async def change(
        self,
        interaction: discord.Interaction,
        change: Callable[[GuildSettings], GuildSettings],
    ) -> GuildSettings | None:
        """Apply ``change`` atomically; on ``Refused``, tell the admin and return None."""
        try:
            return await self.bot.store.change_guild(server_of(interaction), change)
        except Refused as exc:
            await say(interaction, message_of(exc))
            return None

    async def update(self, interaction: discord.Interaction, **values) -> GuildSettings | None:
        """Set fixed values (no check against the current ones)."""
        return await self.change(interaction, lambda current: replace(current, **values))

    def model_name(self, name: str) -> str:
        return self.bot.engine.resolve_model(name)

    async def model_choices(self, current: str, *, with_none: bool = False):
        names = self.bot.engine.models() + ([NONE] if with_none else [])
        current = current.casefold()
        return [app_commands.Choice(name=n, value=n) for n in names if current in n][:25]

    @app_commands.command(name="show", description="Show this server's Imagine settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self.bot.store.guild(server_of(interaction))
        embed = discord.Embed(
            title="Imagine settings",
            description=describe(settings, self.bot.launcher.fallback_model),
            color=discord.Color.blurple(),
        )
        health = [
            f"`{backend.name}` ({', '.join(backend.models)}): {breaker.describe()}"
            for backend, breaker in self.bot.engine.backend_health()
        ]
        if health:
            text = "\n".join(health)
            embed.add_field(name="Backends", value=text[:1021] + "…" if len(text) > 1024 else text)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="model", description="The model /imagine uses by default here")
    @app_commands.describe(model="A model name")
    async def model(self, interaction: discord.Interaction, model: str) -> None:
        try:
            name = self.model_name(model)
        except BadInput as exc:
            await say(interaction, message_of(exc))
            return

        def set_default(current: GuildSettings) -> GuildSettings:
            if current.allowed_models is not None and name not in current.allowed_models:
                raise Refused(f"{name} is not among the models members may pick here.")
            return replace(current, default_model=name)

        if await self.change(interaction, set_default) is not None:
            await say(interaction, f"The default model here is now **{name}**.")

    @model.autocomplete("model")
    async def model_autocomplete(self, interaction: discord.Interaction, current: str):
        return await self.model_choices(current)

    @app_commands.command(name="models", description="Which models members may pick here")
    @app_commands.describe(models="Comma-separated model names, or 'all'")
    async def models(
        self, interaction: discord.Interaction, models: app_commands.Range[str, 1, 500]
    ) -> None:
        if models.strip().casefold() == "all":
            if await self.update(interaction, allowed_models=None) is not None:
                await say(interaction, "Members may pick **every** model.")
            return
        try:
            names = list(dict.fromkeys(self.model_name(n) for n in models.split(",") if n.strip()))
        except BadInput as exc:
            await say(interaction, message_of(exc))
            return
        if not names:
            await say(interaction, "Name at least one model, or 'all'.")
            return
        moved: list[str] = []

        dropped: list[str] = []

        def set_allowed(current: GuildSettings) -> GuildSettings:
            """The default model must stay among the allowed ones (the first one if not), and
            a fallback that is no longer allowed is dropped."""
            moved.clear()
            dropped.clear()
            default = current.default_model
            if default and default not in names:
                default = names[0]
                moved.append(default)
            fallback = current.fallback_model
            if fallback and fallback not in names:
                dropped.append(fallback)
                fallback = None
            return replace(
                current,
                allowed_models=tuple(names),
                default_model=default,
                fallback_model=fallback,
            )

        if await self.change(interaction, set_allowed) is None:
            return
        text = f"Members may pick: **{', '.join(names)}**."
        if moved:
            text += f" The default model is now **{moved[0]}**."
        if dropped:
            text += f" The fallback model {dropped[0]} is no longer allowed: no fallback now."
        await say(interaction, text)

    @app_commands.command(name="cooldown", description="Seconds each member waits between images")
    @app_commands.describe(seconds="0 for no cooldown")
    async def cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[float, 0, 86400]
    ) -> None:
        if await self.update(interaction, cooldown_seconds=float(seconds)) is not None:
            await say(interaction, f"Cooldown set to **{seconds:g}s** per member.")

    @app_commands.command(name="channels", description="Where /imagine works (empty: everywhere)")
    @app_commands.describe(action="add, remove or clear", channel="The channel to add or remove")
    @app_commands.choices(
        action=[
            app_commands.Choice(name="add", value="add"),
            app_commands.Choice(name="remove", value="remove"),
            app_commands.Choice(name="clear", value="clear"),
        ]
    )
    async def channels(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        if action.value != "clear" and channel is None:
            await say(interaction, f"Name the channel to {action.value}.")
            return

        def edit_channels(current: GuildSettings) -> GuildSettings:
            channels = list(current.channels)
            if action.value == "clear":
                channels = []
            elif channel is None:
                pass  # refused above: add and remove name a channel
            elif action.value == "add" and channel.id not in channels:
                channels.append(channel.id)
            elif action.value == "remove" and channel.id in channels:
                channels.remove(channel.id)
            return replace(current, channels=tuple(channels))

        new = await self.change(interaction, edit_channels)
        if new is None:
            return
        where = ", ".join(f"<#{c}>" for c in new.channels) or "every channel"
        await say(interaction, f"/imagine now works in {where}.")

    @app_commands.command(name="max-size", description="The largest width/height members may ask")
    @app_commands.describe(pixels=f"32 to {MAX_SIDE}")
    async def max_size(
        self, interaction: discord.Interaction, pixels: app_commands.Range[int, 32, MAX_SIDE]
    ) -> None:
        if await self.update(interaction, max_size=int(pixels)) is not None:
            await say(interaction, f"Members may ask for up to **{pixels}×{pixels}** pixels.")

    @app_commands.command(name="images", description="How many images /imagine makes here")
    @app_commands.describe(count=f"1 to {MAX_COUNT}: more than 1 makes a grid (U/V buttons)")
    async def images(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, MAX_COUNT]
    ) -> None:
        def set_count(current: GuildSettings) -> GuildSettings:
            most = current.max_count or MAX_COUNT
            if count > most:
                raise Refused(
                    f"The limit here is {most} (`/imagine-config max-count`); nothing changed."
                )
            return replace(current, default_count=int(count))

        if await self.change(interaction, set_count) is not None:
            await say(interaction, f"/imagine makes **{count}** image(s) here unless asked.")

    @app_commands.command(name="max-count", description="The most images one request may make")
    @app_commands.describe(count=f"1 to {MAX_COUNT} (each image spends GPU quota)")
    async def max_count(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, MAX_COUNT]
    ) -> None:
        lowered: list[int] = []

        def set_max(current: GuildSettings) -> GuildSettings:
            lowered.clear()
            default = current.default_count
            if default is not None and default > count:
                lowered.append(count)
                default = int(count)
            return replace(current, max_count=int(count), default_count=default)

        if await self.change(interaction, set_max) is not None:
            text = f"A request may make at most **{count}** image(s) here."
            if lowered:
                text += f" The default is now {lowered[0]} too."
            await say(interaction, text)

    @app_commands.command(name="fallback", description="The model a failed job falls back to")
    @app_commands.describe(model="A model name, or 'none'")
    async def fallback(self, interaction: discord.Interaction, model: str) -> None:
        if model.strip().casefold() == NONE:
            if await self.update(interaction, fallback_model=None) is not None:
                await say(interaction, "No fallback model for this server.")
            return
        try:
            name = self.model_name(model)
        except BadInput as exc:
            await say(interaction, message_of(exc))
            return

        def set_fallback(current: GuildSettings) -> GuildSettings:
            if current.allowed_models is not None and name not in current.allowed_models:
                raise Refused(
                    f"{name} is not among the models members may pick here; allow it first "
                    "(`/imagine-config models`)."
                )
            return replace(current, fallback_model=name)

        if await self.change(interaction, set_fallback) is not None:
            await say(interaction, f"Failed jobs here fall back to **{name}**.")

    @fallback.autocomplete("model")
    async def fallback_autocomplete(self, interaction: discord.Interaction, current: str):
        return await self.model_choices(current, with_none=True)

    @app_commands.command(name="blocked-words", description="Words a prompt here may not contain")
    @app_commands.describe(action="add, remove, clear or list", words="Comma-separated words")
    @app_commands.choices(
        action=[
            app_commands.Choice(name=name, value=name)
            for name in ("add", "remove", "clear", "list")
        ]
    )
    async def blocked_words(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        words: app_commands.Range[str, 1, 1000] | None = None,
    ) -> None:
        given = [w.strip() for w in (words or "").split(",") if w.strip()]
        if action.value == "list":
            settings = await self.bot.store.guild(server_of(interaction))
            listed = ", ".join(f"`{w}`" for w in settings.blocked_words) or "none"
            await say(interaction, f"Blocked words: {listed}"[:2000])
            return
        if action.value != "clear" and not given:
            await say(interaction, f"Name the words to {action.value}, separated by commas.")
            return

        def edit_words(current: GuildSettings) -> GuildSettings:
            blocked = list(current.blocked_words)
            if action.value == "clear":
                blocked = []
            elif action.value == "add":
                # Compared as prompts are: "nude" and "ｎｕｄｅ" are one word.
                known = {matching_form(w) for w in blocked}
                for word in given:
                    if matching_form(word) not in known:
                        known.add(matching_form(word))
                        blocked.append(word)
            else:
                drop = {matching_form(w) for w in given}
                blocked = [w for w in blocked if matching_form(w) not in drop]
            if len(blocked) > MAX_BLOCKED_WORDS:
                raise Refused(f"At most {MAX_BLOCKED_WORDS} blocked words; nothing changed.")
            return replace(current, blocked_words=tuple(blocked))

        new = await self.change(interaction, edit_words)
        if new is not None:
            await say(interaction, f"{len(new.blocked_words)} blocked word(s) now.")


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Admin(bot))
