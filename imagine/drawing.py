"""The work of one job once its turn has come: its images drawn (one, or a grid's several at
once), each through the job's model and then its fallback, downloaded and fitted under the
upload limit; or its operation (Upscale, Zoom Out, Pan, Vary (Region)) done on its input
image, delivered the same way; or an image described.

A grid's images are independent: one that fails is reported beside the others, and only a
job with no image at all fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .engine import Engine
from .errors import BackendError, BadInput, FetchError, ImagineError, UnknownModel, naming
from .fetch import FetchedImage
from .i18n import Shown, _
from .images import fit_image, image_size, pixel_cap
from .operations import Route, operation_of
from .outcomes import Delivery, Described, Picture
from .progress import GridProgress, JobStatus
from .responses import ImagePreview, ImageResponse, Notice, Reasoning, Response
from .store import JobRecord

log = logging.getLogger(__name__)

InputImage = tuple[bytes, str]
"""An input image as the engine takes it (gpt4free's ``media`` item): bytes and a file name."""
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_SEED = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Work:
    """What a job needs besides its record."""

    fallback: str | None = None  # the model to try when the job's own fails
    images: tuple[InputImage, ...] = ()  # input images (image to image, /describe)
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    translate: str | None = None  # the chat model that puts a non-English prompt in English
    hf_token: str | None = field(default=None, repr=False)
    """The requester's own Hugging Face token (their ZeroGPU quota), opened when the job's
    turn came; None: the bot's. Never in ``repr``: a Work may be logged."""


def image_seed(seed: int | None, index: int) -> int | None:
    """A grid's images get new seeds: the asked seed counted up (so a grid can be redrawn
    exactly), or random ones."""
    return None if seed is None else (seed + index) % (MAX_SEED + 1)


class Drawing:
    """Draws one job's images."""

    def __init__(self, engine: Engine, job: JobRecord, work: Work, status: JobStatus) -> None:
        self.engine = engine
        self.job = job
        self.work = work
        self.status = status
        self.grid = GridProgress(status, max(1, job.count))
        self.avoid: set[str] = set()  # backends that stalled in this job: no image retries them
        self.started = time.monotonic()
        self.prompt = job.prompt  # what is drawn: the prompt, or its English translation
        self.operation = operation_of(job)  # None: a drawing
        self.models = [job.model]
        backup = None if self.operation is not None else self._fallback_model()
        if backup is not None:
            self.models.append(backup)

    def _fallback_model(self) -> str | None:
        """The fallback model, if it is one we can draw and not the job's own. One that went
        away (a backends file changed, an API stopped listing it) is ignored, not fatal."""
        fallback = self.work.fallback
        if not fallback:
            return None
        try:
            model = self.engine.resolve_model(fallback)
        except UnknownModel:
            log.warning("job %s: fallback model %r is unknown; not using it", self.job.id, fallback)
            return None
        return None if model == self.job.model else model

    async def translate(self) -> None:
        """The prompt in English, when the server asked for translation and it is not
        English already; the job keeps both. A failed translation is said, and the prompt is
        drawn as written."""
        model = self.work.translate
        if not model or (self.operation is not None and not self.operation.paints):
            return
        self.status.progress(_("Translating the prompt"))
        try:
            translation = await self.engine.translate_prompt(self.job.prompt, model)
        except ImagineError as exc:
            log.info("job %s: prompt not translated: %s", self.job.id, exc)
            self.status.notice(
                _(
                    "The prompt could not be translated ({error}); drawing it as written",
                    error=naming(exc),
                )
            )
            return
        if translation is not None:
            self.prompt = translation.english
            self.job.translated_prompt = translation.english

    async def run(self) -> Delivery:
        await self.translate()
        count = max(1, self.job.count)
        outcomes = await asyncio.gather(
            *(self._picture(index) for index in range(count)), return_exceptions=True
        )
        pictures: list[Picture] = []
        failed: list[Shown] = []
        errors: list[BaseException] = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, Picture):
                pictures.append(outcome)
            else:
                errors.append(outcome)
                failed.append(_("image {n}: {error}", n=index + 1, error=naming_any(outcome)))
        if not pictures:
            raise errors[0]
        for error in errors:
            if not isinstance(error, ImagineError):
                log.error("job %s: an image failed unexpectedly", self.job.id, exc_info=error)
        return Delivery(
            job=self.job,
            pictures=tuple(pictures),
            elapsed=time.monotonic() - self.started,
            failed=tuple(failed),
        )

    async def _picture(self, index: int) -> Picture:
        """One image: the job's model, then the fallback model."""
        error: ImagineError | None = None
        for attempt, model in enumerate(self.models):
            if attempt:
                self.status.notice(
                    _(
                        "{model} failed ({error}); trying {other}",
                        model=self.models[0],
                        error=naming(error),
                        other=model,
                    )
                )
            try:
                picture = await self._attempt(index, model)
            except ImagineError as exc:  # the engine already retried and failed over
                self._spent(getattr(exc, "kudos", None))
                error = exc
                continue
            self._spent(picture.kudos)
            self.grid.finished()
            if attempt:
                return replace(picture, fallback_from=self.models[0], fallback_reason=naming(error))
            return picture
        assert error is not None
        raise error

    def _spent(self, kudos: float | None) -> None:
        """Count what the AI Horde charged for one attempt into the job (the log keeps it)."""
        if kudos is not None:
            self.job.kudos = (self.job.kudos or 0.0) + kudos

    def _generation_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"nsfw": self.job.nsfw}
        if self.work.images:
            options["images"] = list(self.work.images)
        if self.job.negative:
            options["negative"] = self.job.negative
        return options

    def _stream(self, index: int, model: str) -> AsyncGenerator[Response, None]:
        """The engine's stream for one image: the job's operation on its input image, or a
        drawing. The one place that picks the engine's method for a job."""
        job = self.job
        seed = image_seed(job.seed, index)
        if self.operation is not None:
            if not self.work.images:
                raise BadInput(_("This job has lost the image it started from."))
            route = Route(model, seed, self.avoid, self.work.hf_token)
            return self.operation.run(self.engine, self.work.images[0], self.prompt, route)
        return self.engine.generate(
            model,
            prompt=self.prompt,
            width=job.width,
            height=job.height,
            seed=seed,
            avoid=self.avoid,
            hf_token=self.work.hf_token,
            **self._generation_options(),
        )

    async def _attempt(self, index: int, model: str) -> Picture:
        job = self.job
        result: ImageResponse | None = None
        download: asyncio.Task[tuple[tuple[int, int], FetchedImage | None, bool]] | None = None
        try:
            generation = self._stream(index, model)
            async with contextlib.aclosing(generation) as items:
                async for item in items:
                    if isinstance(item, Notice):
                        self.status.notice(item.status)
                    elif isinstance(item, Reasoning):
                        if result is None:
                            self.grid.image(item.status)
                    elif isinstance(item, ImagePreview):
                        if result is None and job.count <= 1:
                            self.status.preview(item)
                    elif isinstance(item, ImageResponse) and result is None:
                        result = item
                        self.grid.result_in(index)
                        # Download while the backend's stream winds down.
                        download = asyncio.get_running_loop().create_task(
                            self._download(item, index)
                        )
            if result is None or download is None:
                raise BackendError(_("The backend finished without an image."))
            (width, height), image, reencoded = await download
        finally:
            if download is not None and not download.done():
                download.cancel()
        return Picture(
            index=index,
            image=image,
            link=None if image is not None else result.images[0],
            model=result.model or model,
            seed=result.seed,
            width=width,
            height=height,
            backend=result.backend,
            reencoded=reencoded,
            ignored=tuple(getattr(result, "ignored", ()) or ()),
            kudos=kudos_of(result),
        )

    async def _download(
        self, result: ImageResponse, index: int
    ) -> tuple[tuple[int, int], FetchedImage | None, bool]:
        """``(size, image to upload, re-encoded)``; no image when even re-encoding cannot
        bring it under the upload limit (a link is sent instead)."""
        job = self.job
        suffix = f"-{index + 1}" if job.count > 1 else ""
        image = await self.engine.download(result, filename=f"imagine-{job.id}{suffix}")
        limit = self.work.upload_limit // max(1, job.count)  # a grid shares one message
        try:
            # The header only; refuses an image far larger than the job asked for (a bomb).
            cap = pixel_cap(job.width, job.height)
            size = image_size(image, max_pixels=cap)
            if image.size <= limit:
                return size, image, False
            try:
                fitted, _ = await asyncio.to_thread(fit_image, image, limit, max_pixels=cap)
            except FetchError as exc:
                log.info("job %s: %s; sending a link instead", job.id, exc)
                return size, None, False
        except BaseException:
            image.close()
            raise
        image.close()
        return size, fitted, True


async def describe_image(
    engine: Engine,
    job: JobRecord,
    images: Sequence[InputImage],
    status: JobStatus,
    hf_token: str | None = None,
) -> Described:
    """Prompts read off the job's input image (on the requester's quota with ``hf_token``)."""
    status.progress(_("Looking at the image"))
    started = time.monotonic()
    description = await engine.describe(images[0], count=4, hf_token=hf_token)
    return Described(
        job=job,
        prompts=tuple(description.prompts),
        backend=description.backend,
        elapsed=time.monotonic() - started,
    )


def kudos_of(result: ImageResponse) -> float | None:
    """What the AI Horde charged for the image (its results carry ``extra["kudos"]``)."""
    kudos = result.extra.get("kudos")
    return float(kudos) if isinstance(kudos, int | float) else None


def naming_any(error: BaseException) -> Shown:
    if isinstance(error, ImagineError):
        return naming(error)
    return _("something went wrong on our side")
