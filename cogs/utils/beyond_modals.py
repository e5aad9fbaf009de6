"""The modals of Custom Zoom (the prompt and a factor) and of Vary (Region) (the prompt), each
prefilled with the original prompt, in the member's language."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from discord_jobs.beyond import start_operation, start_region
from discord_jobs.earlier_input import InputSource
from discord_jobs.starting import refuse
from imagine.errors import BadInput
from imagine.i18n import ENGLISH, Texts, _
from imagine.operations import Region, ZoomOut, parse_factor
from imagine.providers.base import MAX_PROMPT_CHARS
from imagine.store import JobRecord

if TYPE_CHECKING:
    from bot import ImagineBot


def prompt_input(job: JobRecord, label: str) -> discord.ui.TextInput:
    """The original prompt, to keep or change (empty lets Fill go on from the picture)."""
    return discord.ui.TextInput(
        label=label,
        style=discord.TextStyle.paragraph,
        default=job.prompt[:MAX_PROMPT_CHARS] or None,
        required=False,
        max_length=MAX_PROMPT_CHARS,
    )


class ZoomModal(discord.ui.Modal):
    """Custom Zoom: the prompt and how far to zoom out (1.1 to 2)."""

    def __init__(
        self,
        bot: ImagineBot,
        job: JobRecord,
        attachment: discord.Attachment,
        message: discord.Message,
        *,
        tr: Texts = ENGLISH,
    ) -> None:
        super().__init__(title=tr(_("Custom Zoom")), timeout=15 * 60)
        self.prompt: discord.ui.TextInput[ZoomModal] = prompt_input(job, tr(_("Prompt")))
        self.factor: discord.ui.TextInput[ZoomModal] = discord.ui.TextInput(
            label=tr(_("Zoom out by (1.1 to 2)")),
            placeholder="1.25",
            min_length=1,
            max_length=6,
        )
        self.add_item(self.prompt)
        self.add_item(self.factor)
        self.bot = bot
        self.job = job
        self.attachment = attachment
        self.message = message

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await self.bot.languages.prepare(interaction)
        return True

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            operation = ZoomOut(parse_factor(self.factor.value))
        except BadInput as exc:
            await refuse(interaction, exc)
            return
        await start_operation(
            self.bot.launcher,
            self.bot.http_session,
            interaction,
            self.job,
            operation,
            prompt=self.prompt.value,
            attachment=self.attachment,
            message=self.message,
        )


class RegionModal(discord.ui.Modal):
    """Vary (Region): what the chosen parts should show."""

    def __init__(
        self,
        bot: ImagineBot,
        job: JobRecord,
        region: Region,
        source: InputSource,
        *,
        tr: Texts = ENGLISH,
    ) -> None:
        super().__init__(title=tr(_("Vary (Region)")), timeout=15 * 60)
        self.prompt: discord.ui.TextInput[RegionModal] = prompt_input(
            job, tr(_("What should the chosen parts show?"))
        )
        self.add_item(self.prompt)
        self.bot = bot
        self.job = job
        self.region = region
        self.source = source

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await self.bot.languages.prepare(interaction)
        return True

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await start_region(
            self.bot.launcher,
            self.bot,
            self.bot.http_session,
            interaction,
            self.job,
            self.region,
            self.prompt.value,
            self.source,
        )
