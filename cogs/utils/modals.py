"""The modal that asks what should change in an image (Edit, "Edit this image"). Kept out of
the cogs: an extension is loaded as its own module object, and two cogs use this class."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from discord_jobs.launch import Request
from discord_jobs.starting import checked_image, input_limit, start_job
from imagine.i18n import ENGLISH, Texts, _
from imagine.store import JobKind

if TYPE_CHECKING:
    from bot import ImagineBot


class EditModal(discord.ui.Modal):
    """Asks what should change (in the member's language); then an image-to-image job starts
    from the image."""

    def __init__(
        self,
        bot: ImagineBot,
        attachment: discord.Attachment,
        message: discord.Message,
        *,
        tr: Texts = ENGLISH,
        parent_id: int | None = None,
        image_index: int | None = None,
    ) -> None:
        super().__init__(title=tr(_("Edit this image")), timeout=15 * 60)
        self.change: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
            label=tr(_("What should change?")),
            style=discord.TextStyle.paragraph,
            placeholder=tr(_("make it night, add snow, turn the cat into a fox…")),
            min_length=1,
            max_length=1000,
        )
        self.add_item(self.change)
        self.bot = bot
        self.attachment = attachment
        self.message = message  # fetched again for a fresh URL, once the attachment's expired
        self.parent_id = parent_id
        self.image_index = image_index

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await self.bot.languages.prepare(interaction)  # the member's settings and language
        return True

    async def on_submit(self, interaction: discord.Interaction) -> None:
        launcher = self.bot.launcher
        limit = input_limit(interaction, self.message)  # a result of ours: its upload limit
        safe = await checked_image(
            launcher, self.bot.http_session, interaction, self.attachment, max_bytes=limit
        )
        if safe is None:
            return
        request = Request(
            prompt=self.change.value,
            source="edit",
            kind=JobKind.EDIT,
            input=safe,
            input_url=self.attachment.url,
            input_channel_id=self.message.channel.id,
            input_message_id=self.message.id,
            parent_id=self.parent_id,
            image_index=self.image_index,
            counted=True,
        )
        await start_job(launcher, interaction, request)
