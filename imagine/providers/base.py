"""What every image provider shares: checking a request, the job context, token headers.

A request is checked completely before anything is sent: a bad prompt, negative prompt, size,
seed, input image or model is a ``BadInput`` naming the problem, and no Space ever sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from ..errors import BackendError, BadInput, UnknownModel
from ..fetch import DEFAULT_MAX_BYTES
from ..gradio import Completed, Limits, new_session_hash, run_queued, upload_files
from ..http import session_scope
from ..i18n import Number, _
from ..media import InputImage, check_media
from ..messages import format_image_prompt
from ..responses import ImageResponse, Reasoning, Response
from ..settings import MAX_SIDE, Settings
from ..wordfilter import clean_text
from ..zerogpu import ZeroGPUTokens

MAX_SEED = 2**32 - 1
"""The largest seed anyone may ask for; a Space may accept less (FLUX.1-dev: 2**31 - 1)."""
INT32_MAX = 2**31 - 1
MAX_PROMPT_CHARS = 2000
MAX_NEGATIVE_CHARS = 1000
NEGATIVE_PROMPT = _("negative prompt")
"""How ``ImageResponse.ignored`` names a negative prompt a backend could not use."""


def clean_prompt(text: str) -> str:
    """The prompt through ``clean_text``, so the model gets the text blocked words were
    checked on; refuses empty and over-long prompts."""
    text = clean_text(text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not text:
        raise BadInput(_("Nothing to draw: the prompt is empty. Describe the image you want."))
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInput(
            _(
                "The prompt is {length} characters long; the limit is {limit}.",
                length=len(text),
                limit=MAX_PROMPT_CHARS,
            )
        )
    return text


def clean_negative(text: Any) -> str | None:
    """A negative prompt cleaned as prompts are (``clean_text``); None when there is none."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise BadInput(f"The negative prompt must be text, not {text!r}.")
    text = clean_text(text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(text) > MAX_NEGATIVE_CHARS:
        raise BadInput(
            _(
                "The negative prompt is {length} characters long; the limit is {limit}.",
                length=len(text),
                limit=MAX_NEGATIVE_CHARS,
            )
        )
    return text or None


def check_side(name: str, value: Any) -> int:
    """A requested width or height: a whole number in 1..MAX_SIDE."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be a whole number of pixels, not {value!r}.")
    if value <= 0:
        raise BadInput(f"{name} must be greater than 0, not {value}.")
    if value > MAX_SIDE:
        raise BadInput(f"{name} must be at most {MAX_SIDE} pixels, not {value}.")
    return value


def round_side(value: int) -> int:
    """The seed's size rule: a multiple of 8, at least 32."""
    return max(32, value - value % 8)


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadInput(f"seed must be a whole number, not {seed!r}.")
    if not 0 <= seed <= MAX_SEED:
        raise BadInput(f"seed must be between 0 and {MAX_SEED}, not {seed}.")
    return seed


def random_seed(maximum: int = INT32_MAX) -> int:
    """A fresh seed: random, so jobs started in the same second never share one."""
    return secrets.randbelow(maximum + 1)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """A checked request: a clean prompt, sizes after the size rule, a seed or None, a clean
    negative prompt or None, and the checked input images (most jobs have none)."""

    model: str
    prompt: str
    width: int
    height: int
    seed: int | None
    negative: str | None = None
    images: tuple[InputImage, ...] = ()


@dataclass(slots=True)
class Context:
    """Everything a running job needs besides its request."""

    session: aiohttp.ClientSession
    settings: Settings
    tokens: ZeroGPUTokens
    limits: Limits
    proxy: str | None = None
    api_key: str | None = None
    zerogpu_uuid: str | None = None
    started: float = 0.0
    endpoints: dict[Any, Any] = field(default_factory=dict)
    """API descriptions of Spaces, looked up once per program (see ``infer.py``)."""

    def elapsed(self) -> float:
        return time.monotonic() - self.started


_shared_tokens: dict[tuple[str, str | None], ZeroGPUTokens] = {}
_shared_endpoints: dict[Any, Any] = {}


def shared_tokens(settings: Settings) -> ZeroGPUTokens:
    """The process-wide token cache for these hub settings (used when none is passed)."""
    key = (settings.hf_endpoint, settings.hf_token)
    tokens = _shared_tokens.get(key)
    if tokens is None:
        tokens = _shared_tokens[key] = ZeroGPUTokens(
            settings.hf_endpoint, hf_token=settings.hf_token
        )
    return tokens


def job_context(
    session: aiohttp.ClientSession,
    settings: Settings,
    tokens: ZeroGPUTokens,
    *,
    proxy: str | None = None,
    api_key: str | None = None,
    zerogpu_uuid: str | None = None,
    endpoints: dict[Any, Any] | None = None,
) -> Context:
    """What a job needs besides its request, starting its clock now (image and describe
    jobs alike)."""
    return Context(
        session=session,
        settings=settings,
        tokens=tokens,
        limits=limits_from(settings),
        proxy=proxy,
        api_key=api_key,
        zerogpu_uuid=zerogpu_uuid,
        started=time.monotonic(),
        endpoints=_shared_endpoints if endpoints is None else endpoints,
    )


def limits_from(settings: Settings) -> Limits:
    return Limits(
        total=settings.job_timeout_seconds,
        connect=settings.connect_timeout_seconds,
        idle=settings.job_watchdog_seconds,
    )


class ImageProvider:
    """A backend that draws images; subclasses set the class attributes and ``generate``."""

    label: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    models: ClassVar[tuple[str, ...]] = ()
    model_aliases: ClassVar[Mapping[str, str]] = {}
    side_range: ClassVar[tuple[int, int]] = (32, MAX_SIDE)
    side_step: ClassVar[int] = 1
    """Sizes are rounded down to a multiple of this (a Space's slider step) before clamping."""
    max_seed: ClassVar[int] = INT32_MAX
    accepts_images: ClassVar[bool] = False
    """Takes an input image (``media=``): image-to-image."""
    requires_images: ClassVar[bool] = False
    """Draws nothing without one (an editing model)."""
    max_images: ClassVar[int] = 1
    takes_negative: ClassVar[bool] = False
    """Uses a negative prompt; others report it in ``ImageResponse.ignored``."""

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """The canonical name of ``model`` (aliases resolved), or ``UnknownModel``."""
        name = (model or cls.default_model).strip().lower()
        name = cls.model_aliases.get(name, name)
        if name not in cls.models:
            known = ", ".join(sorted({*cls.models, *cls.model_aliases}))
            raise UnknownModel(f"Unknown model {model!r}. Available models: {known}.")
        return name

    @classmethod
    def prepare(
        cls,
        model: str | None,
        messages: Iterable[Mapping[str, Any]] | None,
        *,
        prompt: str | None = None,
        width: Any = 1024,
        height: Any = 1024,
        seed: Any = None,
        negative: Any = None,
        media: Any = None,
        max_image_bytes: int = DEFAULT_MAX_BYTES,
    ) -> ImageRequest:
        """Check everything about a request before any byte is sent."""
        canonical = cls.get_model(model)
        text = clean_prompt(format_image_prompt(messages, prompt))
        images = check_media(media, max_bytes=max_image_bytes)
        if images and not cls.accepts_images:
            raise BadInput(f"{canonical} does not take an input image.")
        if len(images) > cls.max_images:
            raise BadInput(f"{canonical} takes one input image, not {len(images)}.")
        if cls.requires_images and not images:
            raise BadInput(f"{canonical} edits an image: give it one to start from.")
        return ImageRequest(
            model=canonical,
            prompt=text,
            width=round_side(check_side("width", width)),
            height=round_side(check_side("height", height)),
            seed=check_seed(seed),
            negative=clean_negative(negative),
            images=images,
        )

    @classmethod
    def ignored(cls, request: ImageRequest) -> tuple[str, ...]:
        """What of ``request`` this provider cannot use (``ImageResponse.ignored``)."""
        return (NEGATIVE_PROMPT,) if request.negative and not cls.takes_negative else ()

    @classmethod
    def start(
        cls,
        model: str,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        session: aiohttp.ClientSession,
        settings: Settings,
        tokens: ZeroGPUTokens,
        prompt: str | None = None,
        width: Any = 1024,
        height: Any = 1024,
        seed: Any = None,
        negative: Any = None,
        media: Any = None,
        proxy: str | None = None,
        api_key: str | None = None,
        zerogpu_uuid: str | None = None,
        endpoints: dict[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncGenerator[Response, None]:
        """Check the request now (``BadInput`` is raised here, before any I/O) and return
        the job's stream of responses, running on the caller's session.

        ``media`` is gpt4free's ``[(bytes, filename), ...]``; ``negative`` a negative prompt
        (gpt4free's ``negative_prompt`` is taken too).
        """
        if negative is None:
            negative = options.pop("negative_prompt", None)
        else:
            options.pop("negative_prompt", None)
        request = cls.prepare(
            model, messages, prompt=prompt, width=width, height=height, seed=seed,
            negative=negative, media=media, max_image_bytes=settings.max_image_bytes,
        )  # fmt: skip
        context = job_context(
            session, settings, tokens, proxy=proxy, api_key=api_key,
            zerogpu_uuid=zerogpu_uuid, endpoints=endpoints,
        )  # fmt: skip
        return cls.generate(context, request, **options)

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        settings: Settings | None = None,
        tokens: ZeroGPUTokens | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Response, None]:
        """Draw an image: yields ``Reasoning`` statuses, maybe previews, one ``ImageResponse``.

        The seed's entry point (gpt4free's signature): ``prompt``, ``width``, ``height``,
        ``seed``, ``negative``, ``media`` (``[(bytes, filename), ...]``, for models that take
        an image), ``proxy``, ``api_key`` and ``zerogpu_uuid`` are keyword options. Pass
        ``session`` to use one ``aiohttp.ClientSession`` of your own (the bot does, for its
        whole life); without it the running event loop's shared session is used (opened on
        first use, closed when ``asyncio.run`` ends the loop: see ``imagine.http.loop_session``),
        so calls reuse its connections as gpt4free's share one connector.
        """
        settings = settings or Settings.from_env()
        tokens = tokens or shared_tokens(settings)
        async with session_scope(session) as http:
            job = cls.start(
                model, messages, session=http, settings=settings, tokens=tokens, **kwargs
            )
            async with contextlib.aclosing(job) as items:
                async for item in items:
                    yield item

    @classmethod
    def generate(
        cls, context: Context, request: ImageRequest, **options: Any
    ) -> AsyncGenerator[Response, None]:
        raise NotImplementedError

    @classmethod
    def clamp(cls, side: int) -> int:
        low, high = cls.side_range
        return min(max(side - side % cls.side_step, low), high)

    @classmethod
    def seed_for(cls, request: ImageRequest) -> int:
        if request.seed is None:
            return random_seed(cls.max_seed)
        if request.seed > cls.max_seed:
            raise BadInput(
                f"{request.model} accepts seeds from 0 to {cls.max_seed}, not {request.seed}."
            )
        return request.seed


class GradioQueueProvider(ImageProvider):
    """A provider on a queued Gradio function: token, join, stream, parse the output."""

    fn_index: ClassVar[int]
    trigger_id: ClassVar[int | None]
    url_setting: ClassVar[str]
    """The ``Settings`` field holding the Space's URL (a backend may point it elsewhere)."""
    space_setting: ClassVar[str]
    """The ``Settings`` field holding the hub id whose page hands out its ZeroGPU tokens."""

    @classmethod
    def space_url(cls, settings: Settings) -> str:
        return getattr(settings, cls.url_setting)

    @classmethod
    def space_id(cls, settings: Settings) -> str:
        return getattr(settings, cls.space_setting)

    @classmethod
    async def endpoint(cls, context: Context, base_url: str) -> tuple[int, int | None]:
        """``(fn_index, trigger_id)`` of the function to run (fixed here; looked up by
        ``api_name`` for Spaces whose numbering we do not pin)."""
        return cls.fn_index, cls.trigger_id

    @classmethod
    def payload(
        cls,
        request: ImageRequest,
        seed: int,
        width: int,
        height: int,
        options: dict[str, Any],
        files: list[dict[str, Any]],
    ) -> list[Any]:
        """The job's data; ``files`` are the input images as uploaded (``FileData``)."""
        raise NotImplementedError

    @classmethod
    def parse(
        cls, data: list[Any], base_url: str
    ) -> tuple[list[str], int | None, tuple[int, int] | None]:
        """Image URLs, the seed the Space reports (if any), the size it made (if known)."""
        raise NotImplementedError

    @classmethod
    async def generate(
        cls, context: Context, request: ImageRequest, **options: Any
    ) -> AsyncGenerator[Response, None]:
        settings = context.settings
        base_url = cls.space_url(settings).rstrip("/")
        space = cls.space_id(settings)
        seed = cls.seed_for(request)
        width, height = cls.clamp(request.width), cls.clamp(request.height)
        fn_index, trigger_id = await cls.endpoint(context, base_url)
        headers = gpu_headers(context, space)
        if headers is None:
            yield Reasoning(_("Acquiring GPU Token"))
            headers = (await context.tokens.get(context.session, space)).headers()
        session_hash = new_session_hash()
        delivered = False
        try:
            files: list[dict[str, Any]] = []
            if request.images:
                yield Reasoning(_("Uploading the image"))
                files = await upload_files(
                    context.session, base_url, request.images, upload_id=session_hash,
                    headers=headers, backend=cls.label, limits=context.limits,
                    proxy=context.proxy,
                )  # fmt: skip
            data = cls.payload(request, seed, width, height, options, files)
            stream = run_queued(
                context.session,
                base_url,
                fn_index=fn_index,
                trigger_id=trigger_id,
                data=data,
                headers=headers,
                alt=request.prompt,
                backend=cls.label,
                limits=context.limits,
                proxy=context.proxy,
                session_hash=session_hash,
            )
            async with contextlib.aclosing(stream) as items:
                async for item in items:
                    if isinstance(item, Completed):
                        # Handed on at once; the stream's tail is read after the caller has it.
                        yield cls.image_response(item, request, seed, (width, height), base_url)
                        delivered = True
                    else:
                        yield item
        except BackendError as exc:
            forget_rejected_token(context, space, exc)
            raise
        assert delivered
        yield Reasoning(_("Finished {seconds}s", seconds=Number(context.elapsed(), 2)))

    @classmethod
    def image_response(
        cls,
        completed: Completed,
        request: ImageRequest,
        seed: int,
        size: tuple[int, int],
        base_url: str,
    ) -> ImageResponse:
        urls, reported_seed, produced = cls.parse(completed.data, base_url)
        if not urls:
            raise BackendError(f"{cls.label} finished without an image", backend=cls.label)
        width, height = produced or size
        return ImageResponse(
            images=urls,
            alt=request.prompt,
            model=request.model,
            seed=reported_seed if reported_seed is not None else seed,
            width=width,
            height=height,
            origin=base_url,
            backend=cls.label,
            ignored=cls.ignored(request),
        )


def gpu_headers(context: Context, space: str) -> dict[str, str] | None:
    """ZeroGPU headers without I/O: the caller's key, or a cached token; None means fetch."""
    if context.api_key is not None:
        headers = {"x-zerogpu-token": context.api_key}
        if context.zerogpu_uuid:
            headers["x-zerogpu-uuid"] = context.zerogpu_uuid
        return headers
    token = context.tokens.cached(space)
    return None if token is None else token.headers()


def forget_rejected_token(context: Context, space: str, error: BackendError) -> None:
    """A Space that refuses our token makes the next job fetch a new one."""
    text = error.message.lower()
    if error.status in (401, 403) or ("token" in text and ("expired" in text or "invalid" in text)):
        context.tokens.invalidate(space)


def integer_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


TICK_SECONDS = 0.2


async def ticking(task: asyncio.Future[Any], started: float) -> AsyncGenerator[Reasoning, None]:
    """``Generating 1.20s`` every 0.2 s while ``task`` runs (the seed's flux statuses).

    If the caller stops listening, the task (the backend request) is cancelled with it.
    """
    try:
        while not task.done():
            yield Reasoning(
                _("Generating {seconds}s", seconds=Number(time.monotonic() - started, 2))
            )
            await asyncio.wait((task,), timeout=TICK_SECONDS)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
