"""After a crash or restart: jobs the last run left queued or running are marked interrupted
and their replies told so (with Retry), while Discord still honours their tokens.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord

from imagine.runner import Failure
from imagine.store import ACTIVE_STATES

from .render import NO_PINGS, failure_embed, job_view

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

INTERRUPTED = "The bot restarted before this image was finished."
TOKEN_MARGIN = 10.0


async def recover_interrupted_jobs(bot: ImagineBot) -> int:
    """Mark and tell every job a previous run left active; returns how many were told."""
    told = 0
    for job in await bot.store.jobs_in_states(ACTIVE_STATES):
        await bot.store.update_job(
            job.id, state="interrupted", finished_at=time.time(), error=INTERRUPTED
        )
        failure = Failure(job, INTERRUPTED, interrupted=True)
        fields = {
            "content": None,
            "embed": failure_embed(failure),
            "view": job_view(job.id, "retry"),
            "allowed_mentions": NO_PINGS,
        }
        try:
            if (
                job.interaction_token
                and job.application_id
                and job.message_id
                and (job.token_expires_at or 0) > time.time() + TOKEN_MARGIN
            ):
                webhook = discord.Webhook.partial(
                    job.application_id, job.interaction_token, client=bot
                )
                await webhook.edit_message(job.message_id, **fields)
            elif job.channel_id and job.message_id:
                message = bot.get_partial_messageable(job.channel_id).get_partial_message(
                    job.message_id
                )
                await message.edit(**fields)
            else:
                continue
            told += 1
        except discord.HTTPException as exc:
            log.info("could not tell interrupted job %s (%s)", job.id, exc)
    if told:
        log.info("told %d interrupted job(s)", told)
    return told
