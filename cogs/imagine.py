"""/imagine, the "Imagine this" message menu, and the job buttons (Cancel, Reroll, Delete,
Retry). Thin: parse the interaction, hand it to the launcher, answer refusals ephemerally.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from imagine.messages import format_image_prompt
from imagine.settings import MAX_SIDE
from imagine.store import FINAL_STATES

from .utils.history import read_conversation
from .utils.launch import Refusal, allowed_models
from .utils.render import NO_PINGS

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

HISTORY_WAIT = 2.0
"""Seconds we may spend reading the conversation before the 3 s acknowledgement deadline."""
NOTHING_TO_DRAW = (
    "Nothing to draw: give a `prompt`, or describe the image in a message first "
    "(I read this conversation's recent messages)."
)


async def refuse(interaction: discord.Interaction, message: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_PINGS)


def may_manage(interaction: discord.Interaction, owner_id: int) -> bool:
    """The requester, or a member who may manage messages here."""
    if interaction.user.id == owner_id:
        return True
    return interaction.guild_id is not None and interaction.permissions.manage_messages


EVERYWHERE = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)
ANY_INSTALL = app_commands.AppInstallationType(guild=True, user=True)
"""Servers, the bot's DM and private channels; installed to a server or to a user. Set on each
command: discord.py applies class-level ``allowed_contexts`` only to a ``GroupCog``."""


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
        prompt="What to draw (leave out to draw from your recent messages here)",
        model="Which model draws it",
        width=f"Width in pixels (up to {MAX_SIDE})",
        height=f"Height in pixels (up to {MAX_SIDE})",
        seed="Seed for a repeatable image (random if left out)",
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 2000] | None = None,
        model: app_commands.Range[str, 1, 100] | None = None,
        width: app_commands.Range[int, 1, MAX_SIDE] | None = None,
        height: app_commands.Range[int, 1, MAX_SIDE] | None = None,
        seed: app_commands.Range[int, 0, 2**32 - 1] | None = None,
    ) -> None:
        if prompt is None:
            try:
                # The limits first: reading the conversation is I/O on the asker's behalf.
                await self.bot.launcher.precheck(interaction.user.id, interaction.guild_id)
                prompt = await self.conversation_prompt(interaction)
            except Refusal as refusal:
                await refuse(interaction, str(refusal))
                return
        await self.start(
            interaction, "slash", prompt, model=model, width=width, height=height, seed=seed
        )

    async def start(
        self, interaction: discord.Interaction, source: str, prompt: str, **options
    ) -> None:
        """Check, admit and launch a job in this interaction's reply (or refuse, ephemerally)."""
        launcher = self.bot.launcher
        try:
            plan = await launcher.plan(
                user=interaction.user,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                source=source,
                prompt=prompt,
                **options,
            )
            ticket = await launcher.admit(plan)
        except Refusal as refusal:
            await refuse(interaction, str(refusal))
            return
        await launcher.launch(interaction, plan, ticket)

    @imagine.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        settings = await self.bot.launcher.guild_settings(interaction.guild_id)
        current = current.casefold()
        return [
            app_commands.Choice(name=name, value=name)
            for name in allowed_models(self.bot.engine, settings)
            if current in name
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
                "I could not read this conversation (I may not have access here); "
                "give a `prompt` instead."
            ) from None
        prompt = format_image_prompt(messages).strip()
        if not prompt:
            raise Refusal(NOTHING_TO_DRAW)
        return prompt

    async def imagine_this(self, interaction: discord.Interaction, message: discord.Message):
        prompt = message.content.strip()
        if not prompt:
            await refuse(interaction, "That message has no text to draw.")
            return
        await self.start(interaction, "menu", prompt)

    # -- buttons ------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_job_button(
        self, interaction: discord.Interaction, action: str, job_id: int
    ) -> None:
        job = await self.bot.store.job(job_id)
        if job is None:
            await refuse(interaction, "I no longer know this image.")
            return
        if action == "cancel":
            await self.cancel(interaction, job)
        elif action == "delete":
            await self.delete(interaction, job)
        else:
            await self.again(interaction, job, same_seed=action == "retry")

    async def cancel(self, interaction: discord.Interaction, job) -> None:
        if not may_manage(interaction, job.user_id):
            await refuse(interaction, "Only the person who asked (or a moderator) can cancel this.")
            return
        if self.bot.runner.cancel(job.id, by=interaction.user.display_name):
            await interaction.response.defer()  # the job's own ending edits the message
            return
        # Not in progress here. It may have ended a moment ago (its reply now shows the result
        # or the failure, with their own buttons): look before touching the message.
        current = await self.bot.store.job(job.id)
        if current is not None and current.state in FINAL_STATES:
            await refuse(interaction, "This image is already finished; there is nothing to cancel.")
            return
        await interaction.response.edit_message(
            content="This image is no longer being made.", view=None, allowed_mentions=NO_PINGS
        )

    async def delete(self, interaction: discord.Interaction, job) -> None:
        if not may_manage(interaction, job.user_id):
            await refuse(interaction, "Only the person who asked (or a moderator) can delete this.")
            return
        await interaction.response.defer()
        await interaction.delete_original_response()

    async def again(self, interaction: discord.Interaction, job, *, same_seed: bool) -> None:
        """Reroll (new seed) or Retry (same request): a new job, in a new reply."""
        await self.start(
            interaction,
            "retry" if same_seed else "reroll",
            job.prompt,
            model=job.model,
            width=job.width,
            height=job.height,
            seed=job.seed if same_seed else None,
        )


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Imagine(bot))
