"""The AI Horde as an image backend: a community cluster of volunteer GPUs (anonymous use is
free, and slowest when the Horde is busy).

One request per image (``n`` = 1: a grid runs one job per image), submitted, then its progress
asked at most once a second (the Horde caches ``check`` for a second and rate-limits it) and
shown as its place in the Horde's queue and the wait it expects; the finished image is fetched
once, inline (``r2: false``: no second host to trust), and handed on as a ``data:`` URL, which
``imagine.fetch`` decodes locally under the same size and type checks as any download. A job
stopped before its image was fetched (Cancel, a failure, the time limit) is cancelled on the
Horde too (``DELETE``), without holding up the stop.

Models: ``horde:<name>`` is the Horde model ``<name>``; any other model this backend draws
(``flux``, ``flux-dev``) is the Horde model of ``HORDE_FLUX_MODEL``. ``nsfw`` is true only for
a job from an age-restricted channel (``censor_nsfw`` the opposite); an image a worker's safety
filter censored is told, never shown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import BackendError, BackendTimeout
from ..horde import LABEL, Generation, HordeClient, Progress, cancel_soon
from ..i18n import Number, Text, _
from ..responses import ImageResponse, Reasoning, Response
from ..settings import MAX_SIDE, Settings
from .base import MAX_SEED, Context, ImageProvider, ImageRequest

PREFIX = "horde:"
"""How the bot names a Horde model: ``horde:<the Horde's name>``."""
SIDE_STEP = 64
"""The Horde takes sizes in multiples of 64."""
CANCEL_WAIT = 1.0
"""The most a stopping job waits for its ``DELETE`` (which runs on after that)."""


@dataclass(slots=True)
class HordeWaiting(Reasoning):
    """A status while the AI Horde has the job, with the numbers it came from: the place in
    its queue and the wait it announced (``wait_time``, seconds), which the engine passes to
    its observer (the bot's metrics). Shown like any status."""

    wait_time: int = 0
    queue_position: int = 0


@dataclass(frozen=True, slots=True)
class Recipe:
    """Sampler settings for a family of models."""

    steps: int
    cfg_scale: float
    sampler_name: str


STABLE_DIFFUSION = Recipe(steps=30, cfg_scale=7.0, sampler_name="k_euler_a")
FLUX_SCHNELL = Recipe(steps=4, cfg_scale=1.0, sampler_name="k_euler")
FLUX = Recipe(steps=20, cfg_scale=1.0, sampler_name="k_euler")


def recipe_for(name: str) -> Recipe:
    """FLUX.1-schnell draws in 4 steps without guidance, other FLUX models in 20; the Horde's
    Stable Diffusion models (most of it) take the usual 30 steps at CFG 7. All stay within
    what anonymous use may ask without kudos up front (50 steps)."""
    folded = name.casefold()
    if "flux" in folded:
        return FLUX_SCHNELL if "schnell" in folded else FLUX
    return STABLE_DIFFUSION


def horde_model(model: str, settings: Settings) -> str:
    """The Horde's name for ``model``: ``horde:<name>`` is ``<name>``; the others this backend
    draws (``flux``, ``flux-dev``) are ``HORDE_FLUX_MODEL``."""
    if model.startswith(PREFIX):
        return model.removeprefix(PREFIX)
    if not settings.horde_flux_model:
        raise BackendError(
            f"HORDE_FLUX_MODEL is not set: the AI Horde cannot draw {model}", backend=LABEL
        )
    return settings.horde_flux_model


def horde_models(settings: Settings) -> tuple[str, ...]:
    """The models the AI Horde backend offers: each of ``HORDE_MODELS`` as ``horde:<name>``,
    then ``flux`` and ``flux-dev`` when ``HORDE_FLUX_MODEL`` names the model behind them."""
    names = [n.strip() for n in (settings.horde_models or "").split(",") if n.strip()]
    models = [f"{PREFIX}{name}" for name in dict.fromkeys(names)]
    if settings.horde_flux_model:
        models += ["flux", "flux-dev"]
    return tuple(models)


def client_for(context: Context) -> HordeClient:
    settings = context.settings
    return HordeClient(
        context.session,
        settings.horde_url,
        settings.horde_api_key,
        limits=context.limits,
        max_image_bytes=settings.max_image_bytes,
        proxy=context.proxy,
    )


class Horde(ImageProvider):
    label = LABEL
    side_range = (SIDE_STEP, MAX_SIDE)
    side_step = SIDE_STEP
    max_seed = MAX_SEED
    takes_negative = True  # as "<prompt> ### <negative>", the Horde's way
    poll_seconds: ClassVar[float] = 1.0
    """``check`` is asked at most this often per job (the Horde caches it for a second)."""

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Any name: which models the Horde serves is configuration (``HORDE_MODELS``)."""
        name = (model or "").strip()
        if not name:
            raise BackendError("No model named for the AI Horde", backend=LABEL)
        return name

    @classmethod
    def clamp(cls, side: int) -> int:
        """The nearest multiple of 64 within the range (the embed shows the size drawn)."""
        low, high = cls.side_range
        return min(max(round(side / SIDE_STEP) * SIDE_STEP, low), high)

    @classmethod
    def payload(
        cls,
        request: ImageRequest,
        name: str,
        *,
        seed: int,
        width: int,
        height: int,
        nsfw: bool,
    ) -> dict[str, Any]:
        """The body of ``POST /v2/generate/async`` for one image."""
        recipe = recipe_for(name)
        prompt = request.prompt
        if request.negative:
            prompt = f"{prompt} ### {request.negative}"
        return {
            "prompt": prompt,
            "params": {
                "width": width,
                "height": height,
                "seed": str(seed),
                "steps": recipe.steps,
                "n": 1,
                "sampler_name": recipe.sampler_name,
                "cfg_scale": recipe.cfg_scale,
            },
            "models": [name],
            "nsfw": nsfw,
            "censor_nsfw": not nsfw,
            "r2": False,
        }

    @classmethod
    async def generate(
        cls, context: Context, request: ImageRequest, *, nsfw: bool = False, **options: Any
    ) -> AsyncGenerator[Response, None]:
        name = horde_model(request.model, context.settings)
        width, height = cls.clamp(request.width), cls.clamp(request.height)
        seed = cls.seed_for(request)
        client = client_for(context)
        body = cls.payload(request, name, seed=seed, width=width, height=height, nsfw=nsfw)
        yield Reasoning(_("Sending the job to the AI Horde"))
        submitted = await client.submit(body)
        kudos = submitted.kudos
        fetched = False
        try:
            statuses = cls._progress(client, submitted.id, context)
            async with contextlib.aclosing(statuses) as items:
                async for status in items:
                    if isinstance(status, Progress):
                        kudos = status.kudos if status.kudos is not None else kudos
                        continue
                    yield status
            yield Reasoning(_("Fetching the image from the AI Horde"))
            progress, generations = await client.status(submitted.id)
            fetched = True
        finally:
            if not fetched:  # stopped, failed or given up: the Horde need not draw it
                await cancel_soon(client, submitted.id, wait=CANCEL_WAIT)
        kudos = progress.kudos if progress.kudos is not None else kudos
        image = cls._image(generations, kudos)
        yield ImageResponse(
            images=[f"data:image/webp;base64,{image.img}"],
            alt=request.prompt,
            model=request.model,
            seed=_seed(image.seed, seed),
            width=width,
            height=height,
            origin=context.settings.horde_url,
            backend=LABEL,
            extra={"kudos": kudos, "horde_model": image.model or name},
            ignored=cls.ignored(request),
        )
        yield Reasoning(_("Finished {seconds}s", seconds=Number(context.elapsed(), 2)))

    @classmethod
    async def _progress(
        cls, client: HordeClient, job_id: str, context: Context
    ) -> AsyncGenerator[Reasoning | Progress, None]:
        """The request's statuses until it is done (``check`` at most once per
        ``poll_seconds``), each ``Progress`` too (for its kudos); a fault, a request no
        worker can take, or the job's time limit ends it with a ``BackendError``."""
        loop = asyncio.get_running_loop()
        limit = context.limits.total
        while True:
            asked = loop.time()
            pause = cls.poll_seconds
            try:
                progress = await client.check(job_id)
            except BackendError as exc:
                if exc.status != 429:
                    raise
                pause *= 2  # asked too often (other jobs share our address): back off
            else:
                yield progress
                if progress.faulted:
                    raise BackendError(
                        _("The AI Horde's worker failed to draw the image (the job faulted)."),
                        transient=True,
                        backend=LABEL,
                    )
                if not progress.is_possible:
                    raise BackendError(
                        _(
                            "No AI Horde worker can draw this now (no worker serves the model "
                            "at this size). Try another model or a smaller image."
                        ),
                        backend=LABEL,
                    )
                if progress.done:
                    return
                yield HordeWaiting(
                    waiting_status(progress),
                    wait_time=progress.wait_time,
                    queue_position=progress.queue_position,
                )
            if context.elapsed() + pause > limit:
                raise BackendTimeout(f"{LABEL} did not finish within {limit:g}s", backend=LABEL)
            await asyncio.sleep(max(0.0, asked + pause - loop.time()))

    @classmethod
    def _image(cls, generations: list[Generation], kudos: float | None) -> Generation:
        """The one image of the request; a censored one is an error (told, never shown)."""
        if not generations:
            raise BackendError(
                f"{LABEL} finished without an image", transient=True, backend=LABEL, kudos=kudos
            )
        image = generations[0]
        if image.censored:
            raise BackendError(
                _(
                    "The AI Horde's worker censored the image (its safety filter flagged it), "
                    "so there is nothing to show. Try another prompt."
                ),
                backend=LABEL,
                kudos=kudos,
            )
        if image.img.startswith(("http://", "https://")):
            # Asked inline (r2: false): a link would be a second host to trust.
            raise BackendError(
                f"{LABEL} sent a link instead of the image", backend=LABEL, kudos=kudos
            )
        return image


def waiting_status(progress: Progress) -> Text:
    """The request's place in the Horde's queue and the wait it expects; once a worker has
    it, that it is being drawn."""
    seconds = progress.wait_time
    if progress.processing > 0:
        if seconds > 0:
            return _("The AI Horde is drawing it, ~{seconds}s left", seconds=seconds)
        return _("The AI Horde is drawing it")
    if progress.queue_position > 0:
        if seconds > 0:
            return _(
                "Waiting for a GPU: #{place} in the AI Horde's queue, ~{seconds}s",
                place=progress.queue_position,
                seconds=seconds,
            )
        return _(
            "Waiting for a GPU: #{place} in the AI Horde's queue", place=progress.queue_position
        )
    return _("Waiting for an AI Horde worker")


def _seed(reported: str | None, sent: int) -> int:
    """The seed the worker says it used, when it is a number we can show; else the one sent."""
    if reported is not None and reported.isdigit() and int(reported) <= MAX_SEED:
        return int(reported)
    return sent
