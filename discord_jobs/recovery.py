"""After a crash or restart: jobs the last run left queued or running are marked interrupted
and their replies told so (with Retry), while Discord still honours their tokens.

A job whose reply already shows its ending (the process died between telling the user and
writing the job log) is only brought up to date in the log; its reply is left as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from imagine.i18n import Language, Text, _, texts
from imagine.metrics import Metrics
from imagine.outcomes import Failure, Outcome
from imagine.shared import SharedScheduler
from imagine.store import ACTIVE_STATES, JobRecord, JobState, Store

from .render import (
    FAILURE_TITLE,
    INTERRUPTED_TITLE,
    NO_PINGS,
    Action,
    Offers,
    failure_embed,
    job_view,
)
from .replies import CANCELLED_BY, PREVIEW_NAME, WebhookReply

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

INTERRUPTED = _("The bot restarted before this image was finished.")
TOKEN_MARGIN = 10.0


class _Reply:
    """The reply of a job from a previous run, reached through its token or its channel."""

    def __init__(self, bot: ImagineBot, job: JobRecord) -> None:
        self.webhook: discord.Webhook | None = None
        self.message: discord.PartialMessage | None = None
        self.message_id = job.message_id or 0
        if not job.message_id:
            return  # the job never had a reply: nothing to tell
        if (
            job.interaction_token
            and job.application_id
            and (job.token_expires_at or 0) > time.time() + TOKEN_MARGIN
        ):
            self.webhook = discord.Webhook.partial(
                job.application_id, job.interaction_token, client=bot
            )
        elif job.channel_id:
            channel = bot.get_partial_messageable(job.channel_id)
            self.message = channel.get_partial_message(job.message_id)

    @property
    def reachable(self) -> bool:
        return self.webhook is not None or self.message is not None

    async def fetch(self) -> discord.Message:
        if self.webhook is not None:
            return await self.webhook.fetch_message(self.message_id)
        assert self.message is not None
        return await self.message.fetch()

    async def edit(self, **fields: Any) -> None:
        if self.webhook is not None:
            await self.webhook.edit_message(self.message_id, **fields)
        else:
            assert self.message is not None
            await self.message.edit(**fields)


def ended_state(message: discord.Message) -> JobState | None:
    """The state a reply shows, if it already shows an ending (a running job's reply has a
    status text, and maybe a preview: neither is an ending)."""
    if any(a.filename != PREVIEW_NAME for a in message.attachments):
        return JobState.DONE
    if message.embeds:
        title = message.embeds[0].title
        if title in INTERRUPTED_TITLES:
            return JobState.INTERRUPTED
        return JobState.FAILED if title in FAILURE_TITLES else JobState.DONE
    if message.content.startswith(tuple(CANCELLED_PREFIXES)):
        return JobState.CANCELLED
    return None


async def ending_shown(fetch: Callable[[], Awaitable[discord.Message | None]]) -> JobState | None:
    """The ending a job's reply already shows, if any (None too when it cannot be read)."""
    try:
        message = await fetch()
    except discord.HTTPException:
        return None
    return ended_state(message) if message is not None else None


def in_every_language(text: Text) -> set[str]:
    """``text`` as each language shows it: a reply is read back in whichever it was sent."""
    return {texts(language).catalog.gettext(text.msgid) for language in Language}


CANCELLED_PREFIXES = {
    shown.split("{")[0].rstrip(".")  # "Cancelled", "Cancelled by ", "Отменено", …
    for shown in in_every_language(_("Cancelled.")) | in_every_language(CANCELLED_BY)
}
"""How a cancelled job's reply starts, in every language."""
INTERRUPTED_TITLES = in_every_language(INTERRUPTED_TITLE)
FAILURE_TITLES = in_every_language(FAILURE_TITLE)


async def recover_interrupted_jobs(bot: ImagineBot) -> int:
    """Mark and tell every job a previous run left active; returns how many were told.

    Only jobs of this process's shards: another gateway process's jobs are still running."""
    told = 0
    for job in await bot.store.jobs_in_states(ACTIVE_STATES):
        if not bot.settings.runs_shard_of(job.guild_id):
            continue
        reply = _Reply(bot, job)
        shown = await ending_shown(reply.fetch) if reply.reachable else None
        if shown is not None:
            await bot.store.update_job(job.id, state=shown, finished_at=time.time())
            continue
        await bot.store.update_job(
            job.id, state=JobState.INTERRUPTED, finished_at=time.time(), error=INTERRUPTED
        )
        bot.metrics.job_ended(job, Outcome.INTERRUPTED)
        if not reply.reachable:
            continue
        failure = Failure(job, INTERRUPTED, interrupted=True)
        try:
            tr = texts(job.language)
            await reply.edit(
                content=None,
                embed=failure_embed(failure, tr),
                view=job_view(job.id, Action.RETRY, tr=tr),
                allowed_mentions=NO_PINGS,
            )
            told += 1
        except discord.HTTPException as exc:
            log.info("could not tell interrupted job %s (%s)", job.id, exc)
    if told:
        log.info("told %d interrupted job(s)", told)
    return told


LOST = _("This request was lost on our side before it could start; please try again.")
ORPHAN_LEASES = 2
"""A job the log shows in progress with no place in the shared queue for this many leases
(``JOB_LEASE_SECONDS``: a minute by default) was lost between its acknowledgement and the
queue (its gateway failed or crashed), or by a worker that failed before running it: the
reaper ends it. A job reaches the queue within moments of its acknowledgement."""


async def reap_orphans(
    queue: SharedScheduler,
    store: Store,
    client: discord.Client,
    *,
    image_input: bool = False,
    metrics: Metrics | None = None,
) -> int:
    """End every job left in progress without a place in the shared queue: its reply says
    it was lost (with Retry), unless it already shows an ending, which only the log then
    follows; returns how many were found. Gateways and workers both run it (the queue's
    lock gives each job to one of them), and the one that ends a job counts it as lost in
    its ``metrics`` (one whose ending was shown already was counted where it was shown)."""
    reaped = await queue.reap(ORPHAN_LEASES * queue.lease_seconds, JobState.FAILED)
    for job_id in reaped:
        job = await store.job(job_id)
        if job is None:
            continue
        reply = WebhookReply(client, job, offers=Offers(image_input=image_input))
        shown = await ending_shown(reply.fetch)
        if shown is not None:
            await store.update_job(job.id, state=shown, interaction_token=None)
            continue
        log.warning("job %s was left without a queue; telling its reply", job.id)
        try:
            await reply.fail(Failure(job, LOST))
        except discord.HTTPException as exc:
            log.info("could not tell lost job %s (%s)", job.id, exc)
        # The state again (the queue set it): the ending that gives back a budget charge.
        await store.update_job(job.id, state=JobState.FAILED, error=LOST, interaction_token=None)
        if metrics is not None:
            metrics.job_ended(job, Outcome.LOST)
    return len(reaped)
