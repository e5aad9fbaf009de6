"""/imagine and the "Imagine this" message menu. Thin: parse the interaction into a
``Request``, hand it to the launcher, answer refusals ephemerally.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from discord_jobs.launch import Refusal, Request, allowed_models
from discord_jobs.starting import ANY_INSTALL, EVERYWHERE, checked_image, refuse, start_job
from imagine.aspects import ASPECT_CHOICES
from imagine.flags import MAX_COUNT
from imagine.i18n import _
from imagine.messages import format_image_prompt
from imagine.settings import MAX_SIDE
from imagine.store import JobKind

from .utils.history import read_conversation

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

HISTORY_WAIT = 2.0
"""Seconds we may spend reading the conversation before the 3 s acknowledgement deadline."""
NOTHING_TO_DRAW = _(
    "Nothing to draw: give a `prompt`, or describe the image in a message first "
    "(I read this conversation's recent messages)."
)


class Imagine(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(
            name="Imagine this",
            callback=self.imagine_this,
            allowed_contexts=EVERYWHERE,
            allowed_installs=ANY_INSTALL,
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="imagine", description="Draw an image from a prompt or the chat")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.describe(
        prompt="What to draw (leave out to draw from your recent messages here); "
        "--ar 16:9 --no text --seed 7 --model flux-dev --count 4 work inside it too",
        model="Which model draws it",
        width=f"Width in pixels (up to {MAX_SIDE})",
        height=f"Height in pixels (up to {MAX_SIDE})",
        seed="Seed for a repeatable image (random if left out)",
        aspect="Shape of the image, at about one megapixel",
        negative="What the image should not have (models that take a negative prompt)",
        count=f"How many images, as one grid (1 to {MAX_COUNT})",
        image="An image to start from: the prompt says what to change",
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=a, value=a) for a in ASPECT_CHOICES])
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 2000] | None = None,
        model: app_commands.Range[str, 1, 100] | None = None,
        width: app_commands.Range[int, 1, MAX_SIDE] | None = None,
        height: app_commands.Range[int, 1, MAX_SIDE] | None = None,
        seed: app_commands.Range[int, 0, 2**32 - 1] | None = None,
        aspect: app_commands.Choice[str] | None = None,
        negative: app_commands.Range[str, 1, 1000] | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        image: discord.Attachment | None = None,
    ) -> None:
        launcher = self.bot.launcher
        try:
            # The limits first: reading the conversation or an image is I/O on the asker's
            # behalf.
            await launcher.precheck(interaction.user.id, interaction.guild_id)
            if prompt is None:
                prompt = await self.conversation_prompt(interaction)
        except Refusal as refusal:
            await refuse(interaction, refusal)
            return
        request = Request(
            prompt=prompt,
            source="slash",
            model=model,
            width=width,
            height=height,
            seed=seed,
            aspect=aspect.value if aspect else None,
            negative=negative,
            count=count,
        )
        if image is not None:
            try:
                launcher.check_image_model(model)  # before reading the image, not after
            except Refusal as refusal:
                await refuse(interaction, refusal)
                return
            safe = await checked_image(launcher, self.bot.http_session, interaction, image)
            if safe is None:
                return
            request = replace(
                request, kind=JobKind.EDIT, input=safe, input_url=image.url, counted=True
            )
        await start_job(launcher, interaction, request)

    @imagine.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        settings = await self.bot.launcher.guild_settings(interaction.guild_id)
        current = current.casefold()
        return [
            app_commands.Choice(name=name, value=name)
            for name in allowed_models(self.bot.engine, settings)
            if current in name.casefold()
        ][:25]

    async def conversation_prompt(self, interaction: discord.Interaction) -> str:
        """The user's latest messages here, as the prompt; ``Refusal`` if there are none."""
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            raise Refusal(NOTHING_TO_DRAW)
        try:
            async with asyncio.timeout(HISTORY_WAIT):
                messages = await read_conversation(
                    channel,
                    user_id=interaction.user.id,
                    bot_id=self.bot.me_id,
                    limit=self.bot.settings.history_limit,
                )
        except (discord.HTTPException, TimeoutError) as exc:
            log.info("could not read the conversation in %s: %r", interaction.channel_id, exc)
            raise Refusal(
                _(
                    "I could not read this conversation (I may not have access here); "
                    "give a `prompt` instead."
                )
            ) from None
        prompt = format_image_prompt(messages).strip()
        if not prompt:
            raise Refusal(NOTHING_TO_DRAW)
        return prompt

    async def imagine_this(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        prompt = message.content.strip()
        if not prompt:
            await refuse(interaction, _("That message has no text to draw."))
            return
        await start_job(self.bot.launcher, interaction, Request(prompt=prompt, source="menu"))


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Imagine(bot))
