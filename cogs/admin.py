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

from discord_jobs.language import texts_of
from discord_jobs.render import NO_PINGS, clip, rest_line
from imagine.errors import BadInput, message_of
from imagine.flags import MAX_COUNT
from imagine.i18n import Shown, Texts, Verbatim, _, joined, n_
from imagine.settings import MAX_SIDE
from imagine.store import GuildSettings
from imagine.wordfilter import matching_form

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

NONE = "none"
"""What an admin types for "no model" (an option's value, the same in every language)."""
NOTHING = _("none")
"""What is shown for no model, no words: in the reader's language."""
MAX_BLOCKED_WORDS = 200


class Refused(Exception):
    """Raised by a change function: nothing changes and the admin is told why."""


def server_of(interaction: discord.Interaction) -> int:
    """The server of an /imagine-config interaction (the group is server-only)."""
    assert interaction.guild_id is not None
    return interaction.guild_id


async def say(interaction: discord.Interaction, text: Shown) -> None:
    """Answer the admin privately, in their language."""
    await interaction.response.send_message(
        clip(texts_of(interaction)(text), 2000), ephemeral=True, allowed_mentions=NO_PINGS
    )


def describe(settings: GuildSettings, bot_fallback: str | None, tr: Texts) -> str:
    if settings.allowed_models is not None:
        models = ", ".join(settings.allowed_models)
    else:
        models = tr(_("all"))
    channels = ", ".join(f"<#{c}>" for c in settings.channels) or tr(_("everywhere"))
    by_bot = tr(_("bot default"))
    none = tr(NOTHING)
    fallback = settings.fallback_model or (f"{bot_fallback} ({by_bot})" if bot_fallback else none)
    lines = [
        _("**Default model:** {model}", model=settings.default_model or f"flux ({by_bot})"),
        _("**Models members may pick:** {models}", models=models),
        _("**Cooldown:** {seconds}s per member", seconds=f"{settings.cooldown_seconds:g}"),
        _("**Channels:** {channels}", channels=channels),
        _("**Largest width/height:** {n}", n=settings.max_size or MAX_SIDE),
        _("**Fallback model:** {model}", model=fallback),
        _("**Blocked words:** {n}", n=len(settings.blocked_words)),
        _(
            "**Images per request:** {n} (at most {most})",
            n=settings.default_count or 1,
            most=settings.max_count or MAX_COUNT,
        ),
        _("**Translate prompts with:** {model}", model=settings.translate_model or none),
    ]
    return "\n".join(tr(line) for line in lines)


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
                interaction, _("You need the Manage Server permission to change Imagine settings.")
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
        return [app_commands.Choice(name=n, value=n) for n in names if current in n.casefold()][:25]

    @app_commands.command(name="show", description="Show this server's Imagine settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self.bot.store.guild(server_of(interaction))
        tr = texts_of(interaction)
        embed = discord.Embed(
            title=tr(_("Imagine settings")),
            description=describe(settings, self.bot.launcher.fallback_model, tr),
            color=discord.Color.blurple(),
        )
        health = [
            f"`{backend.name}` ({', '.join(backend.models)}): {tr(breaker.describe())}"
            for backend, breaker in self.bot.engine.backend_health()
        ]
        if health:
            text = "\n".join(health)
            embed.add_field(
                name=tr(_("Backends")), value=text[:1021] + "…" if len(text) > 1024 else text
            )
        rests = [
            rest_line(rest, self.bot.engine.label(rest.backend), tr)
            for rest in await self.bot.store.quota_rests()
        ]
        if rests:
            embed.add_field(name=tr(_("GPU quota")), value=clip("\n".join(rests), 1024))
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
                raise Refused(
                    _("{model} is not among the models members may pick here.", model=name)
                )
            return replace(current, default_model=name)

        if await self.change(interaction, set_default) is not None:
            await say(interaction, _("The default model here is now **{model}**.", model=name))

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
                await say(interaction, _("Members may pick **every** model."))
            return
        try:
            names = list(dict.fromkeys(self.model_name(n) for n in models.split(",") if n.strip()))
        except BadInput as exc:
            await say(interaction, message_of(exc))
            return
        if not names:
            await say(interaction, _("Name at least one model, or 'all'."))
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
        said = [_("Members may pick: **{models}**.", models=", ".join(names))]
        if moved:
            said.append(_("The default model is now **{model}**.", model=moved[0]))
        if dropped:
            said.append(
                _(
                    "The fallback model {model} is no longer allowed: no fallback now.",
                    model=dropped[0],
                )
            )
        await say(interaction, joined(" ", said))

    @app_commands.command(name="cooldown", description="Seconds each member waits between images")
    @app_commands.describe(seconds="0 for no cooldown")
    async def cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[float, 0, 86400]
    ) -> None:
        if await self.update(interaction, cooldown_seconds=float(seconds)) is not None:
            await say(
                interaction, _("Cooldown set to **{seconds}s** per member.", seconds=f"{seconds:g}")
            )

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
            await say(
                interaction,
                _("Name the channel to add.")
                if action.value == "add"
                else _("Name the channel to remove."),
            )
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
        where = ", ".join(f"<#{c}>" for c in new.channels)
        if not where:
            await say(interaction, _("/imagine now works in every channel."))
            return
        await say(interaction, _("/imagine now works in {channels}.", channels=where))

    @app_commands.command(name="max-size", description="The largest width/height members may ask")
    @app_commands.describe(pixels=f"32 to {MAX_SIDE}")
    async def max_size(
        self, interaction: discord.Interaction, pixels: app_commands.Range[int, 32, MAX_SIDE]
    ) -> None:
        if await self.update(interaction, max_size=int(pixels)) is not None:
            await say(interaction, _("Members may ask for up to **{n}×{n}** pixels.", n=pixels))

    @app_commands.command(name="images", description="How many images /imagine makes here")
    @app_commands.describe(count=f"1 to {MAX_COUNT}: more than 1 makes a grid (U/V buttons)")
    async def images(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, MAX_COUNT]
    ) -> None:
        def set_count(current: GuildSettings) -> GuildSettings:
            most = current.max_count or MAX_COUNT
            if count > most:
                raise Refused(
                    _(
                        "The limit here is {n} (`/imagine-config max-count`); nothing changed.",
                        n=most,
                    )
                )
            return replace(current, default_count=int(count))

        if await self.change(interaction, set_count) is not None:
            await say(
                interaction,
                n_(
                    "/imagine makes **{n}** image here unless asked.",
                    "/imagine makes **{n}** images here unless asked.",
                    count,
                ),
            )

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
            said = [
                n_(
                    "A request may make at most **{n}** image here.",
                    "A request may make at most **{n}** images here.",
                    count,
                )
            ]
            if lowered:
                said.append(_("The default is now {n} too.", n=lowered[0]))
            await say(interaction, joined(" ", said))

    @app_commands.command(name="fallback", description="The model a failed job falls back to")
    @app_commands.describe(model="A model name, or 'none'")
    async def fallback(self, interaction: discord.Interaction, model: str) -> None:
        if model.strip().casefold() == NONE:
            if await self.update(interaction, fallback_model=None) is not None:
                await say(interaction, _("No fallback model for this server."))
            return
        try:
            name = self.model_name(model)
        except BadInput as exc:
            await say(interaction, message_of(exc))
            return

        def set_fallback(current: GuildSettings) -> GuildSettings:
            if current.allowed_models is not None and name not in current.allowed_models:
                raise Refused(
                    _(
                        "{model} is not among the models members may pick here; allow it first "
                        "(`/imagine-config models`).",
                        model=name,
                    )
                )
            return replace(current, fallback_model=name)

        if await self.change(interaction, set_fallback) is not None:
            await say(interaction, _("Failed jobs here fall back to **{model}**.", model=name))

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
            blocked = settings.blocked_words
            listed = Verbatim(", ".join(f"`{w}`" for w in blocked)) if blocked else NOTHING
            await say(interaction, _("Blocked words: {words}", words=listed))
            return
        if action.value != "clear" and not given:
            await say(
                interaction,
                _("Name the words to add, separated by commas.")
                if action.value == "add"
                else _("Name the words to remove, separated by commas."),
            )
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
                raise Refused(_("At most {n} blocked words; nothing changed.", n=MAX_BLOCKED_WORDS))
            return replace(current, blocked_words=tuple(blocked))

        new = await self.change(interaction, edit_words)
        if new is not None:
            count = len(new.blocked_words)
            await say(interaction, n_("{n} blocked word now.", "{n} blocked words now.", count))

    @app_commands.command(
        name="translate", description="Put prompts in other languages into English before drawing"
    )
    @app_commands.describe(model="A chat model from the backends, or 'none' (the default)")
    async def translate(self, interaction: discord.Interaction, model: str) -> None:
        if model.strip().casefold() == NONE:
            if await self.update(interaction, translate_model=None) is not None:
                await say(interaction, _("Prompts here are drawn as written, never translated."))
            return
        known = self.bot.engine.translation_models()
        if model not in known:
            await say(
                interaction,
                _(
                    "{model} is not a translation model here. Available: {models}.",
                    model=model,
                    models=", ".join(known) or NOTHING,
                ),
            )
            return
        if await self.update(interaction, translate_model=model) is not None:
            await say(
                interaction,
                _(
                    "Prompts in other languages are now put into English by **{model}** "
                    "before drawing; results show both.",
                    model=model,
                ),
            )

    @translate.autocomplete("model")
    async def translate_autocomplete(self, interaction: discord.Interaction, current: str):
        names = [*self.bot.engine.translation_models(), NONE]
        current = current.casefold()
        return [app_commands.Choice(name=n, value=n) for n in names if current in n.casefold()][:25]


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Admin(bot))
