"""From a request on Discord to a running job: every check, then one reply.

Checks come first and cost no I/O beyond cached server settings, so a refusal is an
immediate ephemeral message and an accepted job is acknowledged (deferred) at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import discord

from imagine.aspects import size_for_aspect
from imagine.budget import Budget, Charge, OverBudget, images_of
from imagine.drawing import Work
from imagine.engine import Engine
from imagine.errors import BadInput, message_of
from imagine.flags import MAX_COUNT, merge, parse_flags
from imagine.i18n import DEFAULT_LANGUAGE, Language, Text, _, n_
from imagine.inputs import InputImage
from imagine.jobs import QueueFull, Scheduler, SchedulerBusy, SchedulerClosed, Ticket
from imagine.limits import Cooldowns, RateLimiter
from imagine.operations import Operation, fill_prompt
from imagine.outcomes import Outcome
from imagine.runner import JobRunner
from imagine.settings import MAX_SIDE
from imagine.store import GuildSettings, JobKind, JobRecord, JobState, Store, UserSettings
from imagine.wordfilter import clean_text, find_blocked_word

from .render import Offers
from .replies import InteractionReply, MessageReply

log = logging.getLogger(__name__)

DEFAULT_MODEL = "flux"
DESCRIBE_MODEL = "janus-pro-7b"
DEFAULT_SIDE = 1024
MAX_NEGATIVE = 1000
USER_BURST = (5, 60.0)
"""At most 5 accepted commands per user per minute, whatever the server's cooldown."""
GUILD_BURST = (60, 60.0)
"""At most 60 accepted commands per server per minute."""

BUSY_SERVER = _("This server is making a lot of images right now; try again shortly.")


class Refusal(Exception):
    """A request we will not run; the message says why, for an ephemeral reply."""


class Throttled(Refusal):
    """Refused for a limit (a rate, a cooldown, a full queue): asking again at once is
    refused again, so repeating the answer is pointless."""


def slow_down(wait: float) -> str:
    return _("Slow down: you can ask again {when}.", when=f"<t:{int(time.time() + wait) + 1}:R>")


@dataclass(frozen=True, slots=True)
class Request:
    """What someone asked for, before any check; options as given (None: not given)."""

    prompt: str
    source: str  # slash, menu, dm, reroll, retry, vary, edit, describe, prompt, or an operation
    kind: JobKind = JobKind.IMAGINE
    model: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    aspect: str | None = None
    negative: str | None = None
    count: int | None = None
    input: InputImage | None = None  # already made safe (imagine.inputs)
    input_url: str | None = None  # where it came from (a Discord attachment URL)
    input_channel_id: int | None = None  # the message it is attached to, when there is one:
    input_message_id: int | None = None  # fetched again for a fresh URL once that one expired
    parent_id: int | None = None
    image_index: int | None = None
    flags: bool = True  # read --ar, --no, --seed, --model, --count from the prompt
    counted: bool = False  # already counted against the bursts (``Launcher.count``)
    operation: Operation | None = None  # Upscale, Zoom Out, Pan, Vary (Region) of ``input``


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
    kind: JobKind = JobKind.IMAGINE
    count: int = 1
    negative: str | None = None
    input: InputImage | None = None
    input_url: str | None = None
    input_channel_id: int | None = None
    input_message_id: int | None = None
    parent_id: int | None = None
    image_index: int | None = None
    language: Language = DEFAULT_LANGUAGE  # what the requester reads
    private: bool = False  # the reply only the requester sees
    translate: str | None = None  # the model that puts a non-English prompt into English
    counted: bool = False  # already counted against the bursts: ``admit`` does not again
    nsfw: bool = False  # asked in an age-restricted channel (never in a DM)
    operation: Operation | None = None  # what to do with ``input`` (its kind is ``kind``)

    def work(self) -> Work:
        images = () if self.input is None else (self.input.as_media(),)
        return Work(fallback=self.fallback, images=images, translate=self.translate)


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted plan: its place in the queue, and what it took from the member's daily
    budget (None: nothing). The job made of it carries the charge (``jobs.charged``)."""

    ticket: Ticket
    charge: Charge | None = None


def allowed_models(engine: Engine, settings: GuildSettings | None) -> list[str]:
    everything = engine.models()
    if settings is None or settings.allowed_models is None:
        return everything
    return [m for m in everything if m in settings.allowed_models]


def cannot_start_from_image(model: str, able: list[str]) -> Text:
    if not able:
        return _("The model {model} cannot start from an image; no model here can.", model=model)
    return _(
        "The model {model} cannot start from an image; try {models}.",
        model=model,
        models=", ".join(able),
    )


def clean_negative(text: str | None) -> str | None:
    """A negative prompt, cleaned as prompts are; None when empty."""
    if not text:
        return None
    cleaned = clean_text(text).strip()
    if len(cleaned) > MAX_NEGATIVE:
        raise BadInput(
            _(
                "The negative prompt is {length} characters long; the limit is {limit}.",
                length=len(cleaned),
                limit=MAX_NEGATIVE,
            )
        )
    return cleaned or None


def with_flags(request: Request) -> Request:
    """The request with the prompt's inline flags read; an explicit option wins over a flag.
    ``BadInput`` for a malformed flag."""
    if not request.flags:
        return request
    flags = parse_flags(request.prompt)
    chosen = merge(
        flags,
        aspect=request.aspect,
        negative=request.negative,
        seed=request.seed,
        model=request.model,
        count=request.count,
    )
    return replace(
        request,
        prompt=chosen.prompt,
        aspect=chosen.aspect,
        negative=chosen.negative,
        seed=chosen.seed,
        model=chosen.model,
        count=chosen.count,
        flags=False,
    )


def with_member_defaults(
    engine: Engine, settings: GuildSettings | None, member: UserSettings, request: Request
) -> Request:
    """What the member left out, from their own defaults: their model where this server
    allows it (else the server's default stands), their shape unless a size was given, their
    image count within the server's most."""
    model = request.model
    if model is None and member.model and request.input is None:
        try:
            mine = engine.resolve_model(member.model)
        except BadInput:
            mine = None  # a model gone since it was chosen
        if mine is not None and mine in allowed_models(engine, settings):
            model = mine
    aspect = request.aspect
    if aspect is None and request.width is None and request.height is None and not request.input:
        aspect = member.aspect
    count = request.count
    if count is None and member.count and request.kind is JobKind.IMAGINE:
        most = (settings.max_count if settings else None) or MAX_COUNT
        count = min(member.count, most)
    return replace(request, model=model, aspect=aspect, count=count)


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
        budget: Budget,
        fallback_model: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.budget = budget
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
        ``Refusal`` if one is reached. Nothing is counted here; ``admit`` (or ``count``)
        counts."""
        wait = self.user_rate.wait(user_id)
        if wait:
            raise Throttled(slow_down(wait))
        if guild_id is not None:
            await self.check_cooldown(user_id, guild_id)
            if self.guild_rate.wait(guild_id):
                raise Throttled(BUSY_SERVER)
        await self.check_queue(user_id)

    async def count(self, user_id: int, guild_id: int | None) -> None:
        """The limits checked and the request counted against the member's and the server's
        bursts now, before an image is downloaded and decoded on its behalf: a burst of
        presses must be refused before each costs a download, not after. The request then
        goes on with ``counted`` set, so ``admit`` does not count it again."""
        await self.precheck(user_id, guild_id)
        self._hit(user_id, guild_id)

    def _hit(self, user_id: int, guild_id: int | None) -> None:
        wait = self.user_rate.hit(user_id)
        if wait:
            raise Throttled(slow_down(wait))
        if guild_id is not None and self.guild_rate.hit(guild_id):
            raise Throttled(BUSY_SERVER)

    async def check_cooldown(self, user_id: int, guild_id: int) -> None:
        """``Throttled`` while the server's cooldown for this member runs."""
        settings = await self.guild_settings(guild_id)
        cooldown = settings.cooldown_seconds if settings else 0.0
        left = self.cooldowns.remaining((guild_id, user_id), cooldown)
        if left:
            raise Throttled(
                _(
                    "This server has a {seconds}s cooldown: you can ask again {when}.",
                    seconds=f"{cooldown:g}",
                    when=f"<t:{int(time.time() + left) + 1}:R>",
                )
            )

    async def check_queue(self, user_id: int) -> None:
        """``Throttled`` when the user or the bot holds as many jobs as allowed."""
        limit = self.scheduler.max_queued_per_user
        if self.scheduler.active_jobs(user_id) >= limit:
            raise Throttled(message_of(QueueFull(limit)))
        if self.scheduler.full:
            assert self.scheduler.max_total is not None
            raise Throttled(message_of(SchedulerBusy(self.scheduler.max_total)))

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
        request: Request,
        member: UserSettings | None = None,
        language: Language = DEFAULT_LANGUAGE,
        nsfw: bool = False,
    ) -> Plan:
        """Everything checked and defaults applied (what was asked, else the member's own
        defaults, else the server's, else the bot's); ``Refusal`` says what is wrong.
        ``nsfw``: asked in an age-restricted channel (see ``starting.age_restricted``)."""
        settings = await self.guild_settings(guild_id)
        if settings and settings.channels and channel_id not in settings.channels:
            places = ", ".join(f"<#{c}>" for c in settings.channels[:10])
            raise Refusal(
                _("/imagine is not enabled in this channel. Try {places}.", places=places)
            )
        try:
            request = with_flags(request)
        except BadInput as exc:
            raise Refusal(message_of(exc)) from None
        member = member or UserSettings(user.id)
        if request.kind is JobKind.DESCRIBE:
            plan = self._describe_plan(user, guild_id, channel_id, request)
            return replace(plan, language=language, private=member.private)
        if request.operation is not None:
            plan = self._operation_plan(user, guild_id, channel_id, request, settings)
            return replace(plan, language=language, private=member.private)
        request = with_member_defaults(self.engine, settings, member, request)
        name = self._model(settings, request)
        width, height = self._size(settings, request)
        count = self._count(settings, request)
        try:
            negative = clean_negative(request.negative)
            images = None if request.input is None else [request.input.as_media()]
            checked = self.engine.prepare(
                name,
                prompt=request.prompt,
                width=width,
                height=height,
                seed=request.seed,
                negative=negative,
                images=images,
            )
        except BadInput as exc:
            raise Refusal(message_of(exc)) from None
        if settings and find_blocked_word(checked.prompt, settings.blocked_words) is not None:
            raise Refusal(_("This server does not allow that prompt (it contains a blocked word)."))
        fallback = self.fallback_for(settings, name)
        if fallback is not None and request.input is not None:
            fallback = fallback if self.engine.accepts_images(fallback) else None
        return Plan(
            user_id=user.id,
            requester=user.display_name,
            guild_id=guild_id,
            channel_id=channel_id,
            source=request.source,
            prompt=checked.prompt,
            model=name,
            width=width,
            height=height,
            seed=request.seed,
            fallback=fallback,
            kind=request.kind,
            count=count,
            negative=negative,
            input=request.input,
            input_url=request.input_url,
            input_channel_id=request.input_channel_id,
            input_message_id=request.input_message_id,
            parent_id=request.parent_id,
            image_index=request.image_index,
            translate=self.engine.usable_translation_model(
                settings.translate_model if settings else None
            ),
            language=language,
            private=member.private,
            counted=request.counted,
            nsfw=nsfw,
        )

    def check_image_model(self, model: str | None) -> None:
        """``Refusal`` when ``model`` (if given) cannot start from an image: cheap, so it runs
        before an attachment is read."""
        if model is None:
            return
        try:
            name = self.engine.resolve_model(model)
        except BadInput as exc:
            raise Refusal(message_of(exc)) from None
        if not self.engine.accepts_images(name):
            raise Refusal(cannot_start_from_image(name, self.engine.image_models()))

    def _model(self, settings: GuildSettings | None, request: Request) -> str:
        """The model asked for, else the server's default; one that takes an image when the
        job starts from one."""
        engine = self.engine
        allowed = allowed_models(engine, settings)
        if request.input is not None and request.model is None:
            usable = [m for m in engine.image_models() if m in allowed]
            if not usable:
                raise Refusal(_("No model here can start from an image."))
            return usable[0]
        try:
            name = engine.resolve_model(
                request.model or (settings and settings.default_model) or DEFAULT_MODEL
            )
        except BadInput as exc:
            raise Refusal(message_of(exc)) from None
        if name not in allowed:
            raise Refusal(
                _(
                    "The model {model} is not enabled on this server. Available here: {models}.",
                    model=name,
                    models=", ".join(allowed) or "—",
                )
            )
        if request.input is not None and not engine.accepts_images(name):
            able = [m for m in engine.image_models() if m in allowed]
            raise Refusal(cannot_start_from_image(name, able))
        return name

    @staticmethod
    def _size(settings: GuildSettings | None, request: Request) -> tuple[int, int]:
        """Width and height: as asked, else the aspect's (about a megapixel), else the input
        image's, else 1024 square; within the server's largest side."""
        largest = min(settings.max_size or MAX_SIDE, MAX_SIDE) if settings else MAX_SIDE
        width, height = request.width, request.height
        if width is None and height is None and request.aspect is not None:
            width, height = size_for_aspect(request.aspect)
            if max(width, height) > largest:  # the shape, scaled down to fit
                scale = largest / max(width, height)
                width, height = (max(32, int(v * scale) // 64 * 64) for v in (width, height))
        elif width is None and height is None and request.input is not None:
            scale = min(1.0, largest / max(request.input.width, request.input.height))
            size = (request.input.width, request.input.height)
            width, height = (max(32, int(v * scale)) for v in size)
        width = min(DEFAULT_SIDE, largest) if width is None else width
        height = min(DEFAULT_SIDE, largest) if height is None else height
        for label, value in (("width", width), ("height", height)):
            if value > largest:
                raise Refusal(
                    _("The largest width on this server is {n} pixels.", n=largest)
                    if label == "width"
                    else _("The largest height on this server is {n} pixels.", n=largest)
                )
        return width, height

    @staticmethod
    def _count(settings: GuildSettings | None, request: Request) -> int:
        """Images in the job: as asked, else the server's default; at most the server's max."""
        most = (settings.max_count if settings else None) or MAX_COUNT
        if request.kind is not JobKind.IMAGINE:
            return 1
        count = request.count or (settings.default_count if settings else None) or 1
        if count > most:
            raise Refusal(
                n_(
                    "This server allows at most {n} image per request.",
                    "This server allows at most {n} images per request.",
                    most,
                )
            )
        return min(count, most)

    def _describe_plan(
        self,
        user: discord.abc.User,
        guild_id: int | None,
        channel_id: int | None,
        request: Request,
    ) -> Plan:
        if request.input is None:
            raise Refusal(_("Attach an image to describe."))
        return Plan(
            user_id=user.id,
            requester=user.display_name,
            guild_id=guild_id,
            channel_id=channel_id,
            source=request.source,
            prompt=request.input.filename,  # what it reads; shown as "Describe <file>"
            model=DESCRIBE_MODEL,
            width=request.input.width,
            height=request.input.height,
            seed=None,
            fallback=None,
            kind=JobKind.DESCRIBE,
            input=request.input,
            input_url=request.input_url,
            input_channel_id=request.input_channel_id,
            input_message_id=request.input_message_id,
            counted=request.counted,
        )

    def _operation_plan(
        self,
        user: discord.abc.User,
        guild_id: int | None,
        channel_id: int | None,
        request: Request,
        settings: GuildSettings | None,
    ) -> Plan:
        """Upscale, Zoom Out, Pan or Vary (Region) of the request's image: on the first
        model this bot has for it, sized as it will come out (``Refusal`` for a shape the
        model cannot take), with the prompt checked like any other (Fill paints from it)."""
        operation, image = request.operation, request.input
        assert operation is not None
        if image is None:
            raise Refusal(_("Start from an image."))
        models = operation.models(self.engine)
        if not models:
            raise Refusal(operation.unavailable())
        try:
            width, height = operation.size((image.width, image.height))
            prompt = fill_prompt(request.prompt) if operation.paints else request.prompt
        except BadInput as exc:
            raise Refusal(message_of(exc)) from None
        if settings and find_blocked_word(prompt, settings.blocked_words) is not None:
            raise Refusal(_("This server does not allow that prompt (it contains a blocked word)."))
        translate = settings.translate_model if settings and operation.paints else None
        return Plan(
            user_id=user.id,
            requester=user.display_name,
            guild_id=guild_id,
            channel_id=channel_id,
            source=request.source,
            prompt=prompt,
            model=models[0],
            width=width,
            height=height,
            seed=request.seed,
            fallback=None,  # another model would not do the same operation
            kind=operation.kind,
            input=image,
            input_url=request.input_url,
            input_channel_id=request.input_channel_id,
            input_message_id=request.input_message_id,
            parent_id=request.parent_id,
            image_index=request.image_index,
            translate=self.engine.usable_translation_model(translate),
            counted=request.counted,
            operation=operation,
        )

    async def admit(self, plan: Plan) -> Admission:
        """Rate limits, the server's cooldown, the queue, then the member's daily budget
        (charged now, in the database: the last check, so no other refusal follows a
        charge); ``Refusal`` when over. A plan already ``counted`` (its image was read on
        its behalf) is not counted twice."""
        if plan.counted:
            if plan.guild_id is not None:
                await self.check_cooldown(plan.user_id, plan.guild_id)
            await self.check_queue(plan.user_id)
        else:
            await self.count(plan.user_id, plan.guild_id)
        settings = await self.guild_settings(plan.guild_id)
        charge = await self.charge(plan, settings)
        try:
            ticket = self.take_place(plan)
        except BaseException:
            await self.budget.give_back(charge)
            raise
        if plan.guild_id is not None:
            cooldown = settings.cooldown_seconds if settings else 0.0
            self.cooldowns.start((plan.guild_id, plan.user_id), cooldown)
        return Admission(ticket, charge)

    async def charge(self, plan: Plan, settings: GuildSettings | None) -> Charge | None:
        """The plan's images taken from the member's day in this server (``Throttled`` when
        that would pass the server's daily limit); None when there is nothing to take."""
        limit = settings.daily_limit if settings else None
        images = images_of(plan.kind, plan.count)
        try:
            return await self.budget.charge(plan.guild_id, plan.user_id, limit, images)
        except OverBudget as over:
            raise Throttled(over.message()) from None

    def take_place(self, plan: Plan) -> Ticket:
        """The job's place in this process's queue."""
        try:
            return self.scheduler.submit(plan.user_id, 0)
        except (QueueFull, SchedulerBusy, SchedulerClosed) as exc:
            raise Throttled(message_of(exc)) from None

    async def _create_job(self, plan: Plan, charge: Charge | None, **extra):
        if charge is not None:  # the charge's day is the day of the job's creation
            extra.update(charged=charge.images, created_at=charge.at)
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
            kind=plan.kind,
            count=plan.count,
            negative=plan.negative,
            parent_id=plan.parent_id,
            image_index=plan.image_index,
            input_url=plan.input_url,
            input_sha256=plan.input.sha256 if plan.input is not None else None,
            input_channel_id=plan.input_channel_id,
            input_message_id=plan.input_message_id,
            language=plan.language.value,
            private=plan.private,
            nsfw=plan.nsfw,
            **(plan.operation.columns() if plan.operation is not None else {}),
            **extra,
        )

    async def launch(
        self, interaction: discord.Interaction, plan: Plan, admitted: Admission
    ) -> None:
        """Acknowledge at once (unless done already), then run the job in the interaction's
        own reply."""
        ticket = admitted.ticket
        try:
            job, reply = await self._acknowledged_job(interaction, plan, admitted.charge)
        except BaseException:
            self.scheduler.release(ticket)
            raise
        ticket.job_id = job.id
        self.runner.start(job, ticket, reply, plan.work())

    async def _create_job_or_give_back(self, plan: Plan, charge: Charge | None) -> JobRecord:
        """The job's row with its charge; the charge given back if no row could be made (once
        made, the job's ending gives it back)."""
        try:
            return await self._create_job(plan, charge)
        except BaseException:
            await self.budget.give_back(charge)
            raise

    async def _acknowledged_job(
        self, interaction: discord.Interaction, plan: Plan, charge: Charge | None
    ) -> tuple[JobRecord, InteractionReply]:
        """The interaction acknowledged ("thinking…"), the job logged with its token and its
        charge, and the reply that will show it. A charge no job could be made for is given
        back."""
        try:
            if interaction.response.is_done():
                message_id: int | None = (await interaction.original_response()).id
            else:
                response = await interaction.response.defer(thinking=True, ephemeral=plan.private)
                message_id = getattr(response, "message_id", None)
            job = await self._create_job(
                plan,
                charge,
                application_id=interaction.application_id,
                interaction_token=interaction.token,
                token_expires_at=interaction.created_at.timestamp() + 15 * 60,
                message_id=message_id,
            )
        except BaseException:
            await self.budget.give_back(charge)
            raise
        reply = InteractionReply(
            interaction,
            job,
            requester=plan.requester,
            message_id=message_id,
            offers=Offers.of(self.engine),
        )
        return job, reply

    async def launch_in_channel(
        self,
        channel: discord.abc.Messageable,
        plan: Plan,
        admitted: Admission,
        *,
        reference: discord.Message | None = None,
    ) -> None:
        """Run a job in a message the bot sends (DM prompts): one reply, then edits."""
        ticket = admitted.ticket
        job = None
        try:
            job = await self._create_job_or_give_back(plan, admitted.charge)
            reply = MessageReply(
                channel,
                job,
                requester=plan.requester,
                reference=reference,
                offers=Offers.of(self.engine),
            )
            message = await reply.open()
            await self.store.update_job(job.id, message_id=message.id)
        except BaseException:
            self.scheduler.release(ticket)
            if job is not None:
                await self.store.update_job(
                    job.id, state=JobState.FAILED, finished_at=time.time(), error="could not reply"
                )
                self.runner.metrics.job_ended(job, Outcome.FAILED)
            raise
        ticket.job_id = job.id
        self.runner.start(job, ticket, reply, plan.work())
