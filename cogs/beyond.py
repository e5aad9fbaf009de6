"""Upscale, Zoom Out (2x, 1.5x, Custom Zoom), Pan (⬅️ ➡️ ⬆️ ⬇️) and Vary (Region) under a
single result, and the Vary (Region) picker's menu and button. Each makes a new reply; the
result keeps its image. Persistent: the buttons, the menu and the picker's button name their
job (and the picker's, the message and cells) in their custom ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from discord_jobs.beyond import OPERATIONS, open_picker, start_operation
from discord_jobs.earlier_input import InputSource
from discord_jobs.language import texts_of
from discord_jobs.region import picked_image, picker_view
from discord_jobs.render import Action
from discord_jobs.starting import GONE, nth_attachment, refuse
from imagine.canvas import Cell
from imagine.errors import BadInput
from imagine.i18n import _
from imagine.operations import Region
from imagine.store import JobRecord

from .utils.beyond_modals import RegionModal, ZoomModal

if TYPE_CHECKING:
    from bot import ImagineBot

UNKNOWN_JOB = _("I no longer know this image.")


class Beyond(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    async def _job(self, interaction: discord.Interaction, job_id: int) -> JobRecord | None:
        """The job a component names, after deciding the presser's language; None when it is
        gone (the presser has been told)."""
        await self.bot.languages.prepare(interaction)
        job = await self.bot.store.job(job_id)
        if job is None:
            await refuse(interaction, UNKNOWN_JOB)
        return job

    @commands.Cog.listener()
    async def on_beyond_button(
        self, interaction: discord.Interaction, action: Action, job_id: int, index: int | None
    ) -> None:
        job = await self._job(interaction, job_id)
        if job is None:
            return
        launcher = self.bot.launcher
        if action is Action.CUSTOM_ZOOM:
            await self.custom_zoom(interaction, job)
        elif action is Action.REGION:
            await open_picker(launcher, interaction, job)
        else:
            operation = OPERATIONS[action]
            await start_operation(launcher, self.bot.http_session, interaction, job, operation)

    async def custom_zoom(self, interaction: discord.Interaction, job: JobRecord) -> None:
        attachment = nth_attachment(interaction, 0)
        if attachment is None or interaction.message is None:
            await refuse(interaction, GONE)
            return
        modal = ZoomModal(self.bot, job, attachment, interaction.message, tr=texts_of(interaction))
        await interaction.response.send_modal(modal)

    @commands.Cog.listener()
    async def on_region_cells(
        self, interaction: discord.Interaction, job_id: int, message_id: int, values: list[str]
    ) -> None:
        """The picker shown again with the cells chosen (and its button on)."""
        await self.bot.languages.prepare(interaction)
        try:
            region = Region.of(values)
        except BadInput as exc:
            await refuse(interaction, exc)
            return
        view = picker_view(job_id, message_id, region.cells, texts_of(interaction))
        await interaction.response.edit_message(view=view)

    @commands.Cog.listener()
    async def on_region_paint(
        self,
        interaction: discord.Interaction,
        job_id: int,
        message_id: int,
        cells: frozenset[Cell],
    ) -> None:
        """The prompt asked for; the image is the one the picker shows."""
        job = await self._job(interaction, job_id)
        if job is None:
            return
        url = picked_image(interaction.message)
        if url is None:
            await refuse(interaction, GONE)
            return
        try:
            region = Region.of(cells)
        except BadInput as exc:
            await refuse(interaction, exc)
            return
        source = InputSource(url, interaction.channel_id, message_id)
        modal = RegionModal(self.bot, job, region, source, tr=texts_of(interaction))
        await interaction.response.send_modal(modal)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Beyond(bot))
