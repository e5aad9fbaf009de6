"""Starting from an image: the "Edit this image" and "Describe this image" message menus,
/describe, and the modal that asks what should change. Thin: read the image safely, build a
``Request``, hand it to the launcher.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from discord_jobs.language import texts_of
from discord_jobs.launch import Request
from discord_jobs.starting import (
    ANY_INSTALL,
    EVERYWHERE,
    checked_image,
    first_image,
    input_limit,
    refuse,
    start_job,
)
from imagine.i18n import _
from imagine.store import JobKind

from .utils.modals import EditModal

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

NO_IMAGE = _("That message has no image (PNG, JPEG, WebP or GIF) to start from.")


class Images(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.menus = [
            app_commands.ContextMenu(
                name="Edit this image",
                callback=self.edit_this_image,
                allowed_contexts=EVERYWHERE,
                allowed_installs=ANY_INSTALL,
            ),
            app_commands.ContextMenu(
                name="Describe this image",
                callback=self.describe_this_image,
                allowed_contexts=EVERYWHERE,
                allowed_installs=ANY_INSTALL,
            ),
        ]

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    async def edit_this_image(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        found = first_image(message)
        if found is None:
            await refuse(interaction, NO_IMAGE)
            return
        await interaction.response.send_modal(
            EditModal(self.bot, found[1], message, tr=texts_of(interaction))
        )

    async def describe_this_image(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        found = first_image(message)
        if found is None:
            await refuse(interaction, NO_IMAGE)
            return
        await self.describe_attachment(interaction, found[1], message, source="menu")

    @app_commands.command(name="describe", description="Read prompts off an image")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.describe(image="The image to describe (PNG, JPEG, WebP or GIF)")
    async def describe(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        await self.describe_attachment(interaction, image, None, source="slash")

    async def describe_attachment(
        self,
        interaction: discord.Interaction,
        attachment: discord.Attachment,
        message: discord.Message | None,
        *,
        source: str,
    ) -> None:
        """``message``: the one the image is attached to (None for the command's own option,
        an ephemeral upload with no message to fetch again)."""
        launcher = self.bot.launcher
        safe = await checked_image(
            launcher,
            self.bot.http_session,
            interaction,
            attachment,
            max_bytes=input_limit(interaction, message),
        )
        if safe is None:
            return
        request = Request(
            prompt="",
            source=source,
            kind=JobKind.DESCRIBE,
            input=safe,
            input_url=attachment.url,
            input_channel_id=message.channel.id if message else None,
            input_message_id=message.id if message else None,
            flags=False,
            counted=True,
        )
        await start_job(launcher, interaction, request)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Images(bot))
