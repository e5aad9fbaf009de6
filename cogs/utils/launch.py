"""From a request on Discord to a running job: every check, then one reply.

Checks come first and cost no I/O beyond cached server settings, so a refusal is an
immediate ephemeral message and an accepted job is acknowledged (deferred) at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import discord

from imagine.engine import Engine
from imagine.errors import BadInput
from imagine.jobs import QueueFull, Scheduler, SchedulerBusy, SchedulerClosed, Ticket
from imagine.limits import Cooldowns, RateLimiter
from imagine.runner import JobRunner
from imagine.settings import MAX_SIDE
from imagine.store import GuildSettings, Store
from imagine.wordfilter import find_blocked_word

from .replies import InteractionReply, MessageReply

log = logging.getLogger(__name__)

DEFAULT_MODEL = "flux"
DEFAULT_SIDE = 1024
USER_BURST = (5, 60.0)
"""At most 5 accepted commands per user per minute, whatever the server's cooldown."""
GUILD_BURST = (60, 60.0)
"""At most 60 accepted commands per server per minute."""


BUSY_SERVER = "This server is making a lot of images right now; try again shortly."


class Refusal(Exception):
    """A request we will not run; the message says why, for an ephemeral reply."""


class Throttled(Refusal):
    """Refused for a limit (a rate, a cooldown, a full queue): asking again at once is
    refused again, so repeating the answer is pointless."""


def slow_down(wait: float) -> str:
    return f"Slow down: you can ask again <t:{int(time.time() + wait) + 1}:R>."


@dataclass(frozen=True, slots=True)
class Plan:
    user_id: int
    requester: str
    guild_id: int | None
    channel_id: int | None
    source: str
    prompt: str
    model: str
    width: int
    height: int
    seed: int | None
    fallback: str | None


def allowed_models(engine: Engine, settings: GuildSettings | None) -> list[str]:
    everything = engine.models()
    if settings is None or settings.allowed_models is None:
        return everything
    return [m for m in everything if m in settings.allowed_models]


def usable_fallback(engine: Engine, name: str | None) -> str | None:
    """``name`` as a model we can draw now, or None (logged) if it is unknown."""
    if not name:
        return None
    try:
        return engine.resolve_model(name)
    except BadInput:
        log.warning("fallback model %r is not a model I know; ignoring it", name)
        return None


class Launcher:
    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        scheduler: Scheduler,
        runner: JobRunner,
        fallback_model: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.scheduler = scheduler
        self.runner = runner
        self.fallback_model = fallback_model
        """The bot-wide fallback (``FALLBACK_MODEL``), checked at start."""
        self.cooldowns = Cooldowns()
        self.user_rate = RateLimiter(*USER_BURST)
        self.guild_rate = RateLimiter(*GUILD_BURST)

    async def guild_settings(self, guild_id: int | None) -> GuildSettings | None:
        return await self.store.guild(guild_id) if guild_id else None

    async def precheck(self, user_id: int, guild_id: int | None) -> None:
        """The limits, before any I/O on the request's behalf (reading the conversation, say):
        ``Refusal`` if one is reached. Nothing is counted here; ``admit`` counts."""
        wait = self.user_rate.wait(user_id)
        if wait:
            raise Throttled(slow_down(wait))
        if guild_id is not None:
            settings = await self.guild_settings(guild_id)
            cooldown = settings.cooldown_seconds if settings else 0.0
            left = self.cooldowns.remaining((guild_id, user_id), cooldown)
            if left:
                raise Throttled(
                    f"This server has a {cooldown:g}s cooldown: you can ask again "
                    f"<t:{int(time.time() + left) + 1}:R>."
                )
            if self.guild_rate.wait(guild_id):
                raise Throttled(BUSY_SERVER)
        limit = self.scheduler.max_queued_per_user
        if self.scheduler.active_jobs(user_id) >= limit:
            raise Throttled(str(QueueFull(limit)))
        if self.scheduler.full:
            assert self.scheduler.max_total is not None
            raise Throttled(str(SchedulerBusy(self.scheduler.max_total)))

    def fallback_for(self, settings: GuildSettings | None, model: str) -> str | None:
        """The server's fallback, else the bot's: only a model we can draw, that the server
        allows, and that is not the job's own."""
        allowed = allowed_models(self.engine, settings)
        own = settings.fallback_model if settings is not None else None
        for name in (own, self.fallback_model):
            fallback = usable_fallback(self.engine, name)
            if fallback is not None and fallback in allowed and fallback != model:
                return fallback
        return None

    async def plan(
        self,
        *,
        user: discord.abc.User,
        guild_id: int | None,
        channel_id: int | None,
        source: str,
        prompt: str,
        model: str | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
    ) -> Plan:
        """Everything checked and defaults applied; ``Refusal`` says what is wrong."""
        settings = await self.guild_settings(guild_id)
        if settings and settings.channels and channel_id not in settings.channels:
            places = ", ".join(f"<#{c}>" for c in settings.channels[:10])
            raise Refusal(f"/imagine is not enabled in this channel. Try {places}.")
        engine = self.engine
        try:
            name = engine.resolve_model(
                model or (settings and settings.default_model) or DEFAULT_MODEL
            )
        except BadInput as exc:
            raise Refusal(str(exc)) from None
        allowed = allowed_models(engine, settings)
        if name not in allowed:
            raise Refusal(
                f"The model {name} is not enabled on this server. "
                f"Available here: {', '.join(allowed) or 'none'}."
            )
        largest = min(settings.max_size or MAX_SIDE, MAX_SIDE) if settings else MAX_SIDE
        width = min(DEFAULT_SIDE, largest) if width is None else width
        height = min(DEFAULT_SIDE, largest) if height is None else height
        for label, value in (("width", width), ("height", height)):
            if value > largest:
                raise Refusal(f"The largest {label} on this server is {largest} pixels.")
        try:
            request = engine.prepare(name, prompt=prompt, width=width, height=height, seed=seed)
        except BadInput as exc:
            raise Refusal(str(exc)) from None
        if settings and settings.blocked_words:
            word = find_blocked_word(request.prompt, settings.blocked_words)
            if word is not None:
                raise Refusal(
                    "This server does not allow that prompt (it contains a blocked word)."
                )
        return Plan(
            user_id=user.id,
            requester=user.display_name,
            guild_id=guild_id,
            channel_id=channel_id,
            source=source,
            prompt=request.prompt,
            model=name,
            width=width,
            height=height,
            seed=seed,
            fallback=self.fallback_for(settings, name),
        )

    async def admit(self, plan: Plan) -> Ticket:
        """Rate limits, the server's cooldown and the queue; ``Refusal`` when over."""
        await self.precheck(plan.user_id, plan.guild_id)
        wait = self.user_rate.hit(plan.user_id)
        if wait:
            raise Throttled(slow_down(wait))
        if plan.guild_id is not None and self.guild_rate.hit(plan.guild_id):
            raise Throttled(BUSY_SERVER)
        try:
            ticket = self.scheduler.submit(plan.user_id, 0)
        except (QueueFull, SchedulerBusy, SchedulerClosed) as exc:
            raise Throttled(str(exc)) from None
        if plan.guild_id is not None:
            settings = await self.guild_settings(plan.guild_id)
            cooldown = settings.cooldown_seconds if settings else 0.0
            self.cooldowns.start((plan.guild_id, plan.user_id), cooldown)
        return ticket

    async def _create_job(self, plan: Plan, **extra):
        return await self.store.create_job(
            user_id=plan.user_id,
            guild_id=plan.guild_id,
            channel_id=plan.channel_id,
            source=plan.source,
            prompt=plan.prompt,
            model=plan.model,
            width=plan.width,
            height=plan.height,
            seed=plan.seed,
            **extra,
        )

    async def launch(self, interaction: discord.Interaction, plan: Plan, ticket: Ticket) -> None:
        """Acknowledge at once, then run the job in the interaction's own reply."""
        try:
            response = await interaction.response.defer(thinking=True)
            message_id = getattr(response, "message_id", None)
            job = await self._create_job(
                plan,
                application_id=interaction.application_id,
                interaction_token=interaction.token,
                token_expires_at=interaction.created_at.timestamp() + 15 * 60,
                message_id=message_id,
            )
        except BaseException:
            self.scheduler.release(ticket)
            raise
        ticket.job_id = job.id
        reply = InteractionReply(interaction, job, requester=plan.requester, message_id=message_id)
        self.runner.start(job, ticket, reply, fallback=plan.fallback)

    async def launch_in_channel(
        self,
        channel: discord.abc.Messageable,
        plan: Plan,
        ticket: Ticket,
        *,
        reference: discord.Message | None = None,
    ) -> None:
        """Run a job in a message the bot sends (DM prompts): one reply, then edits."""
        job = None
        try:
            job = await self._create_job(plan)
            reply = MessageReply(channel, job, requester=plan.requester, reference=reference)
            message = await reply.open()
            await self.store.update_job(job.id, message_id=message.id)
        except BaseException:
            self.scheduler.release(ticket)
            if job is not None:
                await self.store.update_job(
                    job.id, state="failed", finished_at=time.time(), error="could not reply"
                )
            raise
        ticket.job_id = job.id
        self.runner.start(job, ticket, reply, fallback=plan.fallback)
