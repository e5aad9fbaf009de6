"""The job buttons: Cancel, Reroll, Delete, Retry, Vary, Edit, U1..U4, V1..V4 and the
numbered prompts under /describe. Persistent: each button names its job, and the job (with
everything needed to run it again) is in the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from discord_jobs.language import language_of_interaction, member_of, texts_of
from discord_jobs.launch import Request
from discord_jobs.render import NO_PINGS, Action, Offers, job_view
from discord_jobs.replies import CANCELLED_BY, InteractionReply
from discord_jobs.shared_launch import SharedLauncher
from discord_jobs.starting import (
    GONE,
    checked_image,
    counted,
    earlier_image,
    input_limit,
    may_manage,
    nth_attachment,
    refuse,
    start_job,
)
from imagine.errors import FetchError, message_of
from imagine.fetch import fetch_image
from imagine.i18n import Text, _, texts
from imagine.operations import operation_of
from imagine.outcomes import Delivery, Outcome, Picture
from imagine.store import FINAL_STATES, JobKind, JobRecord, JobState

from .utils.modals import EditModal

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)


class JobButtons(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_job_button(
        self, interaction: discord.Interaction, action: Action, job_id: int, index: int | None
    ) -> None:
        await self.bot.languages.prepare(interaction)
        job = await self.bot.store.job(job_id)
        if job is None:
            await refuse(interaction, _("I no longer know this image."))
            return
        if action is Action.CANCEL:
            await self.cancel(interaction, job)
        elif action is Action.DELETE:
            await self.delete(interaction, job)
        elif action in (Action.REROLL, Action.RETRY):
            await self.again(interaction, job, same_seed=action is Action.RETRY)
        elif action is Action.PICK:
            await self.pick(interaction, job, index or 0)
        elif action in (Action.VARY, Action.VARIATION):
            await self.vary(interaction, job, index or 0)
        elif action is Action.EDIT:
            await self.edit(interaction, job)
        elif action is Action.PROMPT:
            await self.prompt(interaction, job, index or 0)

    async def cancel(self, interaction: discord.Interaction, job: JobRecord) -> None:
        if not may_manage(interaction, job.user_id):
            await refuse(
                interaction, _("Only the person who asked (or a moderator) can cancel this.")
            )
            return
        if self.bot.runner.cancel(job.id, by=interaction.user.display_name):
            await interaction.response.defer()  # the job's own ending edits the message
            return
        if self.bot.shared_queue is not None and await self.cancel_shared(interaction, job):
            return
        # Not in progress here. It may have ended a moment ago (its reply now shows the result
        # or the failure, with their own buttons): look before touching the message.
        current = await self.bot.store.job(job.id)
        if current is not None and current.state in FINAL_STATES:
            await refuse(
                interaction, _("This image is already finished; there is nothing to cancel.")
            )
            return
        await interaction.response.edit_message(
            content=texts(job.language)(_("This image is no longer being made.")),
            view=None,
            allowed_mentions=NO_PINGS,
        )

    async def cancel_shared(self, interaction: discord.Interaction, job: JobRecord) -> bool:
        """With workers: a waiting job leaves the queue and is told here; a running one is
        stopped by its worker (a signal), whose ending edits the message. False when the job
        is in neither state."""
        queue = self.bot.shared_queue
        assert queue is not None
        by = interaction.user.display_name
        if await queue.cancel_waiting(job.id):
            launcher = self.bot.launcher
            if isinstance(launcher, SharedLauncher):
                await launcher.forget(job.id)  # no place in line shown after this
            tr = texts(job.language)
            await interaction.response.edit_message(
                content=tr(Text(CANCELLED_BY, {"name": by})),
                embed=None,
                attachments=[],
                view=job_view(job.id, Action.RETRY, tr=tr),
                allowed_mentions=NO_PINGS,
            )
            await self.bot.store.update_job(
                job.id, state=JobState.CANCELLED, finished_at=time.time(), interaction_token=None
            )
            self.bot.metrics.job_ended(job, Outcome.CANCELLED)
            return True
        if await queue.request_cancel(job.id, by=by):  # kept until its worker sees it
            await interaction.response.defer()  # the worker's ending edits the message
            return True
        return False

    async def delete(self, interaction: discord.Interaction, job: JobRecord) -> None:
        if not may_manage(interaction, job.user_id):
            await refuse(
                interaction, _("Only the person who asked (or a moderator) can delete this.")
            )
            return
        await interaction.response.defer()
        await interaction.delete_original_response()

    async def again(
        self, interaction: discord.Interaction, job: JobRecord, *, same_seed: bool
    ) -> None:
        """Reroll (new seed) or Retry (the same request): a new job, in a new reply. A job that
        started from an image starts from it again (read back from Discord, from its message
        fetched again once the URL kept has expired, and checked by hash); an Upscale, Zoom
        Out, Pan or Vary (Region) does the same operation again."""
        kind = JobKind.IMAGINE if job.kind == JobKind.PICK else JobKind(job.kind)
        request = Request(
            prompt=job.prompt,
            source="retry" if same_seed else "reroll",
            kind=kind,
            model=job.model if kind is not JobKind.DESCRIBE else None,
            width=job.width,
            height=job.height,
            seed=job.seed if same_seed else None,
            negative=job.negative,
            count=job.count if kind is JobKind.IMAGINE else None,
            parent_id=job.parent_id,
            image_index=job.image_index,
            flags=False,
            operation=operation_of(job),
        )
        if job.input_url:
            if not await counted(self.bot.launcher, interaction):  # before reading it again
                return
            earlier = await earlier_image(self.bot, self.bot.http_session, interaction, job)
            if earlier is None:
                return
            request = replace(
                request,
                input=earlier.image,
                input_url=earlier.url,
                input_channel_id=job.input_channel_id,
                input_message_id=job.input_message_id,
                counted=True,
            )
        await start_job(self.bot.launcher, interaction, request)

    async def vary(self, interaction: discord.Interaction, job: JobRecord, index: int) -> None:
        """V1..V4 and Vary: the chosen image, drawn again close to itself (image to image,
        the original prompt), in a new reply."""
        attachment = nth_attachment(interaction, index)
        if attachment is None or interaction.message is None:
            await refuse(interaction, GONE)
            return
        launcher = self.bot.launcher
        safe = await checked_image(
            launcher,
            self.bot.http_session,
            interaction,
            attachment,
            max_bytes=input_limit(interaction, interaction.message),
        )
        if safe is None:
            return
        request = Request(
            prompt=job.prompt,
            source="vary",
            kind=JobKind.VARY,
            negative=job.negative,
            input=safe,
            input_url=attachment.url,
            input_channel_id=interaction.message.channel.id,
            input_message_id=interaction.message.id,
            parent_id=job.id,
            image_index=index,
            flags=False,
            counted=True,
        )
        await start_job(launcher, interaction, request)

    async def edit(self, interaction: discord.Interaction, job: JobRecord) -> None:
        """Edit: a modal asks what should change; then image to image from this image."""
        attachment = nth_attachment(interaction, 0)
        if attachment is None or interaction.message is None:
            await refuse(interaction, GONE)
            return
        await interaction.response.send_modal(
            EditModal(
                self.bot,
                attachment,
                interaction.message,
                tr=texts_of(interaction),
                parent_id=job.id,
                image_index=job.image_index or 0,
            )
        )

    async def pick(self, interaction: discord.Interaction, job: JobRecord, index: int) -> None:
        """U1..U4: one image of a grid, alone and full size, in a new reply with its own
        buttons. Nothing is drawn: the image is the one already posted."""
        attachment = nth_attachment(interaction, index)
        if attachment is None:
            await refuse(interaction, GONE)
            return
        if not await counted(self.bot.launcher, interaction):  # before reading the image
            return
        member = member_of(interaction)
        await interaction.response.defer(thinking=True, ephemeral=member.private)
        try:
            image = await fetch_image(
                self.bot.http_session,
                attachment.url,
                origin=attachment.url,
                max_bytes=max(attachment.size, 1) + 1024,
                filename=f"imagine-{job.id}-{index + 1}",
            )
        except FetchError as exc:
            await refuse(
                interaction,
                _(
                    "I could not read that image back from Discord ({error}).",
                    error=message_of(exc),
                ),
            )
            return
        records = job.results()
        record = records[index] if index < len(records) and isinstance(records[index], dict) else {}
        picked = await self.bot.store.create_job(
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            source="pick",
            prompt=job.prompt,
            model=str(record.get("model") or job.model),
            width=int(record.get("width") or job.width),
            height=int(record.get("height") or job.height),
            seed=record.get("seed"),
            state=JobState.DONE,
            kind=JobKind.PICK,
            negative=job.negative,
            parent_id=job.id,
            image_index=index,
            result_seed=record.get("seed"),
            result_model=record.get("model"),
            result_backend=record.get("backend"),
            finished_at=time.time(),
            language=language_of_interaction(interaction).value,
            private=member.private,
        )
        picture = Picture(
            index=0,
            image=image,
            link=None,
            model=picked.model,
            seed=picked.seed,
            width=picked.width,
            height=picked.height,
            backend=str(record.get("backend") or job.result_backend or "?"),
        )
        elapsed = (job.finished_at or 0) - (job.started_at or job.created_at or 0)
        delivery = Delivery(job=picked, pictures=(picture,), elapsed=max(0.0, elapsed))
        reply = InteractionReply(
            interaction,
            picked,
            requester=interaction.user.display_name,
            offers=Offers.of(self.bot.engine),
        )
        try:
            await reply.deliver(delivery)
        finally:
            delivery.close()

    async def prompt(self, interaction: discord.Interaction, job: JobRecord, index: int) -> None:
        """1..4 under /describe: draw that prompt, as /imagine would."""
        prompts = [p for p in job.results() if isinstance(p, str)]
        if index >= len(prompts):
            await refuse(interaction, _("That prompt is no longer known."))
            return
        await start_job(
            self.bot.launcher,
            interaction,
            Request(prompt=prompts[index], source="prompt", parent_id=job.id, image_index=index),
        )


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(JobButtons(bot))
