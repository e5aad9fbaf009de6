"""The engine as a program uses it for its whole life: one session, one token cache, one
table of backends with their health.

``generate`` draws images (from a prompt, or from a prompt and an input image for the models
that take one); ``describe`` turns an image into prompts; ``upscale`` redraws an image larger;
``fill`` paints a mask's white into an image, and ``zoom_out``, ``pan`` and ``vary_region``
build that image and mask for their buttons (``imagine.canvas``). All route a job through its
model's backends in order: a backend whose circuit
breaker is open is skipped; a transient failure or a quota refusal opens its breaker and the
job moves on to the next healthy backend at once; when the last one fails transiently, it is
retried once after a short backoff before the error is raised. Other errors (a refused prompt,
say) are raised as they are: another backend would not change them.

``translate_prompt`` asks a chat model for a prompt's English: one plain request, no route or
breaker (see ``imagine.translate``).

A job may bring a member's own Hugging Face token (``hf_token``): its ZeroGPU tokens then come
from that member's own cache (``zerogpu_tokens``), fetched with their token, never from the
bot's nor another member's.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol, cast

import aiohttp

from .backends import FILL, UPSCALE, Backend, BackendTable
from .canvas import Cell, Direction, check_cells, check_factor
from .errors import (
    BackendError,
    BackendTimeout,
    BadInput,
    ImagineError,
    QuotaExceeded,
    UnknownModel,
    message_of,
    reword,
)
from .fetch import FetchedImage, fetch_image
from .gradio import Limits
from .health import Breaker
from .http import new_session
from .i18n import Moment, Shown, Text, Verbatim, _, joined
from .logsafe import Redactor
from .media import check_media
from .providers.base import ImageProvider, ImageRequest, check_seed, clean_prompt
from .providers.chat import chat_completion
from .providers.describe import DescribeProvider
from .providers.horde import HordeWaiting
from .providers.openai import list_models as list_openai_models
from .providers.upscale import UPSCALE_FACTOR, check_upscale_factor
from .quota import BOT_ACCOUNT, QuotaRests, Rest, account_of
from .responses import Description, ImagePreview, ImageResponse, Notice, Reasoning, Response
from .retouch import (
    ImageInput,
    MaskInput,
    fill_images,
    outpaint_images,
    received,
    received_mask,
    region_images,
    upscale_image,
)
from .settings import Settings
from .translate import Translation, checked_answer, needs_translation, translation_payload
from .zerogpu import ZeroGPUTokens

log = logging.getLogger(__name__)

MEMBER_CACHES = 256
"""Members whose ZeroGPU tokens are kept (the least recently used are dropped first)."""
RETRY_BACKOFF = 1.5
"""Seconds before the one retry of a transient failure (when no other backend is left)."""
TRANSLATE_SECONDS = 30.0
"""The most a translation may take: it holds up a drawing, so it is given far less than a job."""

Item = Response | Description


class Attempt(StrEnum):
    """How one attempt at a backend went (``RouteObserver.backend_tried``)."""

    OK = "ok"  # it answered to the end
    ERROR = "error"  # it failed (refused, broke, went away)
    TIMEOUT = "timeout"  # it stopped answering (the watchdog) or ran out of time
    QUOTA = "quota"  # ZeroGPU refused the account: out of quota


class RouteObserver(Protocol):
    """Told what routing sees, for a program that measures it (the bot's metrics)."""

    def backend_tried(self, backend: str, outcome: str, seconds: float) -> None:
        """One attempt at ``backend`` (its name) ended after ``seconds``, as ``outcome``
        (an ``Attempt``)."""

    def horde_wait_announced(self, backend: str, seconds: float) -> None:
        """The AI Horde's first estimate of a job's wait (its ``wait_time``)."""


class Unobserved:
    """A ``RouteObserver`` that keeps nothing (the engine's default)."""

    def backend_tried(self, backend: str, outcome: str, seconds: float) -> None:
        pass

    def horde_wait_announced(self, backend: str, seconds: float) -> None:
        pass


def attempt_of(error: ImagineError) -> Attempt:
    if isinstance(error, QuotaExceeded):
        return Attempt.QUOTA
    if isinstance(error, BackendTimeout):
        return Attempt.TIMEOUT
    return Attempt.ERROR


InputImages = Sequence[tuple[bytes, str]]
"""Input images as gpt4free takes them: ``[(bytes, filename), ...]``."""


class Engine:
    """Draws images for many jobs at once over one ``aiohttp.ClientSession``.

    Use ``async with Engine() as engine`` (or ``start``/``close``); pass a session to share
    one the program already has.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        table: BackendTable | None = None,
        observer: RouteObserver | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.observer: RouteObserver = observer if observer is not None else Unobserved()
        """Told each backend attempt and the AI Horde's announced waits (the bot's metrics)."""
        self._session = session
        self._owns_session = session is None
        self.tokens = ZeroGPUTokens(self.settings.hf_endpoint, hf_token=self.settings.hf_token)
        self._member_tokens: OrderedDict[str, ZeroGPUTokens] = OrderedDict()
        self.table = table or BackendTable.build(self.settings)
        self.redact = self._redactor()
        self.health: dict[str, Breaker] = {}
        self.rests = QuotaRests()
        """ZeroGPU quota rests by (backend, account): nothing is sent to a resting pair."""
        self.endpoints: dict[Any, Any] = {}
        self.retry_backoff = RETRY_BACKOFF
        self.translate_timeout = TRANSLATE_SECONDS

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = new_session()
            self._owns_session = True
        return self._session

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def discover_models(self) -> list[str]:
        """Ask an OpenAI-compatible API which models it serves, when the settings do not say."""
        settings = self.settings
        if not settings.openai_base_url or settings.openai_image_models:
            return []
        try:
            models = await list_openai_models(
                self.session, settings.openai_base_url, settings.openai_api_key
            )
        except (ImagineError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("could not list the OpenAI-compatible API's models: %s", exc)
            return []
        self.table = BackendTable.build(settings, openai_models=models)
        self.redact = self._redactor()
        return models

    def zerogpu_tokens(self, hf_token: str | None) -> ZeroGPUTokens:
        """The ZeroGPU token cache of the account ``hf_token`` (a member's own), or the bot's
        when None: each member token's ZeroGPU tokens stay in a cache of their own."""
        if not hf_token:
            return self.tokens
        tokens = self._member_tokens.get(hf_token)
        if tokens is None:
            tokens = ZeroGPUTokens(self.settings.hf_endpoint, hf_token=hf_token, member=True)
            self._member_tokens[hf_token] = tokens
            while len(self._member_tokens) > MEMBER_CACHES:
                self._member_tokens.popitem(last=False)
        self._member_tokens.move_to_end(hf_token)
        return tokens

    def _redactor(self) -> Redactor:
        return Redactor(self.table.secrets(), addresses=self.table.addresses(), hide_urls=True)

    # -- models and health ------------------------------------------------------------

    def models(self, *, aliases: bool = False) -> list[str]:
        return self.table.models(aliases=aliases)

    def resolve_model(self, name: str | None) -> str:
        return self.table.resolve(name)

    def accepts_images(self, model: str | None) -> bool:
        """Can ``model`` start from an input image (``generate(..., images=...)``)? False for
        a model we do not serve."""
        return self.table.accepts_images(model or "")

    def requires_images(self, model: str | None) -> bool:
        """Does ``model`` only edit images (it draws nothing without one)?"""
        if not self.accepts_images(model):
            return False
        backends = self.table.backends_for(model or "", images=True)
        return all(image_provider(b).requires_images for b in backends)

    def image_models(self) -> list[str]:
        """The models that take an input image."""
        return self.table.image_models()

    def describe_models(self) -> list[str]:
        """The models ``describe`` takes (``janus-pro-7b`` first)."""
        return self.table.describe_models()

    def translation_models(self) -> list[str]:
        """The chat models a server may choose to translate prompts with, in table order:
        the vision chat models of the OpenAI-compatible backends (see
        ``BackendTable.chat_models``). Empty when none is configured."""
        return list(self.table.chat_models())

    def usable_translation_model(self, name: str | None) -> str | None:
        """``name`` (a server's ``translate`` setting) while it is a translation model here;
        None when unset or gone since it was chosen."""
        return name if name and name in self.table.chat_models() else None

    def breaker(self, backend: str) -> Breaker:
        breaker = self.health.get(backend)
        if breaker is None:
            breaker = self.health[backend] = Breaker(backend)
        return breaker

    def backend_health(self) -> list[tuple[Backend, Breaker]]:
        return [(b, self.breaker(b.name)) for b in self.table.backends.values()]

    def prepare(
        self,
        model: str | None,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        prompt: str | None = None,
        width: Any = 1024,
        height: Any = 1024,
        seed: Any = None,
        negative: Any = None,
        images: InputImages | None = None,
    ) -> ImageRequest:
        """Check a request as the model's first backend would; ``BadInput`` says what is wrong
        (an input image for a model that takes none names the models that do)."""
        name = self.resolve_model(model)
        media = check_media(images, max_bytes=self.settings.max_image_bytes)
        backends = self.table.backends_for(name, images=bool(media))
        if not backends:
            able = Verbatim(", ".join(self.image_models())) or _("none is configured")
            raise BadInput(
                _(
                    "{model} cannot start from an image. Models that can: {able}.",
                    model=name,
                    able=able,
                )
            )
        backend = backends[0]
        provider = image_provider(backend)
        request = provider.prepare(
            backend_model(backend, name), messages, prompt=prompt, width=width, height=height,
            seed=seed, negative=negative, media=media,
            max_image_bytes=self.settings.max_image_bytes,
        )  # fmt: skip
        return ImageRequest(
            name, request.prompt, request.width, request.height, request.seed, request.negative,
            request.images,
        )  # fmt: skip

    # -- drawing ----------------------------------------------------------------------

    def generate(
        self,
        model: str | None = None,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        prompt: str | None = None,
        width: Any = 1024,
        height: Any = 1024,
        seed: Any = None,
        negative: str | None = None,
        images: InputImages | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
        nsfw: bool = False,
        **options: Any,
    ) -> AsyncGenerator[Response, None]:
        """Statuses, maybe previews, then one ``ImageResponse`` (see the providers).

        ``negative`` is a negative prompt (a backend that cannot use it says so in
        ``ImageResponse.ignored``); ``images`` an input image as ``[(bytes, filename)]`` for
        the models that take one (``image_models()``): only their image-taking backends are
        tried. ``nsfw``: the image is for an age-restricted place (the AI Horde then lets
        workers draw adult content instead of censoring it); False everywhere else. The
        request is checked at once: ``BadInput`` is raised by this call, not later.
        ``avoid`` names backends this job must not use (they stalled earlier in it); the engine
        adds every backend that stalls now, so a caller trying another model passes it on.
        ``hf_token``: a member's own Hugging Face token, whose account's ZeroGPU quota the job
        spends (and whose quota rests it meets); None: the bot's.
        """
        request = self.prepare(
            model, messages, prompt=prompt, width=width, height=height, seed=seed,
            negative=negative, images=images,
        )  # fmt: skip
        job = dict(
            prompt=request.prompt, width=width, height=height, seed=seed, proxy=proxy,
            negative=request.negative, media=list(request.images), nsfw=nsfw,
            tokens=self.zerogpu_tokens(hf_token),
        )  # fmt: skip
        backends = self.table.backends_for(request.model, images=bool(request.images))
        avoid = set() if avoid is None else avoid
        account = account_of(hf_token)
        # Image routes hold image backends only, which yield nothing but ``Response`` items.
        return cast(
            AsyncGenerator[Response, None],
            self._route(request.model, {**job, **options}, avoid, backends, account),
        )

    def describing(
        self,
        image: tuple[bytes, str],
        *,
        count: int = 4,
        model: str | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
    ) -> AsyncGenerator[Reasoning | Description, None]:
        """Statuses, then one ``Description``: up to ``count`` prompts that would draw an
        image like ``image`` (``(bytes, filename)``). Checked at once, like ``generate``;
        ``hf_token`` as there."""
        name = self.table.resolve_describer(model)
        backends = self.table.describers_for(name)
        request = describe_provider(backends[0]).prepare(
            name, [image], count=count, max_image_bytes=self.settings.max_image_bytes
        )
        job = {
            "media": [request.image],
            "count": request.count,
            "proxy": proxy,
            "tokens": self.zerogpu_tokens(hf_token),
        }
        avoid = set() if avoid is None else avoid
        # Describe routes hold describe backends only: statuses and one Description.
        route = self._route(name, job, avoid, backends, account_of(hf_token))
        return cast(AsyncGenerator[Reasoning | Description, None], route)

    async def describe(
        self,
        image: tuple[bytes, str],
        *,
        count: int = 4,
        model: str | None = None,
        on_status: Callable[[Reasoning], object] | None = None,
        hf_token: str | None = None,
    ) -> Description:
        """``describing`` to its end: the ``Description``. ``on_status`` (optional, plain or
        async) is called with each status, failover notices included."""
        result: Description | None = None
        stream = self.describing(image, count=count, model=model, hf_token=hf_token)
        async with contextlib.aclosing(stream) as items:
            async for item in items:
                if isinstance(item, Description):
                    result = item
                elif on_status is not None:
                    called = on_status(item)
                    if inspect.isawaitable(called):
                        await called
        if result is None:
            raise BackendError("The backend finished without a description")
        return result

    # -- beyond the grid: upscale and fill --------------------------------------------

    def upscale_models(self) -> list[str]:
        """The upscale models (``upscale`` when its Space is configured)."""
        return self.table.task_models(UPSCALE)

    def fill_models(self) -> list[str]:
        """The fill models (``flux-fill-dev`` when its Space is configured)."""
        return self.table.task_models(FILL)

    def upscale(
        self,
        image: ImageInput,
        factor: float = UPSCALE_FACTOR,
        *,
        model: str | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
    ) -> AsyncGenerator[Response, None]:
        """The same picture ``factor`` times larger (the upscaler's own rule first brings a
        shorter side above 768 down to 768): statuses, then one ``ImageResponse`` whose size
        is left to read off the image. ``image`` is ``(bytes, filename)``; its pixels are sent
        as they are (decoded safely, as PNG; like every input image, one over 2048 pixels a
        side is first brought down to 2048). Checked at once like ``generate``: the model,
        the factor (1..4) and the image's bytes, type and pixel caps raise ``BadInput`` from
        this call. Routing, health, quota rests, ``avoid`` and ``hf_token`` as ``generate``."""
        name = self.table.resolve_task(UPSCALE, model)
        backends = self.table.task_backends(UPSCALE, name)
        factor = check_upscale_factor(factor)
        limit = self.settings.max_image_bytes
        given = received(image, max_bytes=limit)
        job = {"proxy": proxy, "upscale_factor": factor}
        return self._retouch(
            name, backends, lambda: [upscale_image(given, max_bytes=limit)], job, avoid, hf_token
        )

    def fill(
        self,
        image: ImageInput,
        mask: MaskInput,
        prompt: str | None = None,
        *,
        seed: Any = None,
        model: str | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
        **options: Any,
    ) -> AsyncGenerator[Response, None]:
        """``image`` with the white of ``mask`` (an image of its size, or a Pillow image such
        as ``canvas.region`` makes) painted in by the fill model, as ``prompt`` says (it may be
        empty): statuses, then one ``ImageResponse`` at the size the Space drew. Both are
        brought to a size the Space keeps (``canvas.fill_size``, about one megapixel) if they
        are not at one already. Checked at once: the model, prompt, seed and both images'
        bytes; a mask of another size, an empty mask or a shape wider than 16:9 (or taller
        than 9:16) once decoded, as the stream's first error, before anything is sent.
        ``options``: ``guidance_scale`` (1..30, default 30), ``num_inference_steps`` (28)."""
        limit = self.settings.max_image_bytes
        given = received(image, max_bytes=limit)
        painted = received_mask(mask, max_bytes=limit)
        return self._fill(
            lambda: fill_images(given, painted, max_bytes=limit).media(),
            prompt, seed, model, proxy, avoid, hf_token, options,
        )  # fmt: skip

    def zoom_out(
        self,
        image: ImageInput,
        prompt: str | None = None,
        *,
        factor: float = 2.0,
        seed: Any = None,
        model: str | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
        **options: Any,
    ) -> AsyncGenerator[Response, None]:
        """Zoom Out: ``image`` centred on a canvas ``factor`` (1.1..2) times its size, the new
        border painted in (``canvas.outpaint``); otherwise as ``fill``."""
        factor = check_factor(factor)
        limit = self.settings.max_image_bytes
        given = received(image, max_bytes=limit)
        return self._fill(
            lambda: outpaint_images(given, factor=factor, direction=None, max_bytes=limit).media(),
            prompt, seed, model, proxy, avoid, hf_token, options,
        )  # fmt: skip

    def pan(
        self,
        image: ImageInput,
        direction: Direction | str,
        prompt: str | None = None,
        *,
        seed: Any = None,
        model: str | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
        **options: Any,
    ) -> AsyncGenerator[Response, None]:
        """Pan: the canvas grown by half of ``image`` towards ``direction`` (``left``,
        ``right``, ``up``, ``down``), the image at the far side, the new part painted in;
        otherwise as ``fill``. A canvas wider than 16:9 (or taller than 9:16) is refused."""
        try:
            way = Direction(direction)
        except ValueError:
            raise BadInput(
                _(
                    "Pan goes {directions}; not {direction}.",
                    directions=", ".join(Direction),
                    direction=repr(direction),
                )
            ) from None
        limit = self.settings.max_image_bytes
        given = received(image, max_bytes=limit)
        return self._fill(
            lambda: outpaint_images(given, factor=None, direction=way, max_bytes=limit).media(),
            prompt, seed, model, proxy, avoid, hf_token, options,
        )  # fmt: skip

    def vary_region(
        self,
        image: ImageInput,
        cells: Iterable[Cell | str],
        prompt: str | None = None,
        *,
        seed: Any = None,
        model: str | None = None,
        proxy: str | None = None,
        avoid: set[str] | None = None,
        hf_token: str | None = None,
        **options: Any,
    ) -> AsyncGenerator[Response, None]:
        """Vary (Region): the chosen cells of ``image``'s 3×3 grid repainted as ``prompt``
        says (``canvas.region``); otherwise as ``fill``."""
        chosen = check_cells(cells)
        limit = self.settings.max_image_bytes
        given = received(image, max_bytes=limit)
        return self._fill(
            lambda: region_images(given, chosen, max_bytes=limit).media(),
            prompt, seed, model, proxy, avoid, hf_token, options,
        )  # fmt: skip

    def _fill(
        self,
        prepare: Callable[[], list[tuple[bytes, str]]],
        prompt: str | None,
        seed: Any,
        model: str | None,
        proxy: str | None,
        avoid: set[str] | None,
        hf_token: str | None,
        options: dict[str, Any],
    ) -> AsyncGenerator[Response, None]:
        name = self.table.resolve_task(FILL, model)
        backends = self.table.task_backends(FILL, name)
        text = clean_prompt(prompt) if prompt and prompt.strip() else ""
        job = {"prompt": text, "seed": check_seed(seed), "proxy": proxy, **options}
        return self._retouch(name, backends, prepare, job, avoid, hf_token)

    async def _retouch(
        self,
        model: str,
        backends: list[Backend],
        prepare: Callable[[], list[tuple[bytes, str]]],
        job: dict[str, Any],
        avoid: set[str] | None,
        hf_token: str | None,
    ) -> AsyncGenerator[Response, None]:
        """Make the images ready (in a thread: decoding is CPU work), then route the job as
        every other is routed (health, failover; ``hf_token``'s ZeroGPU tokens and quota
        rests)."""
        yield Reasoning(_("Preparing the image"))
        try:
            media = await asyncio.to_thread(prepare)
        except ImagineError as exc:
            raise self.public(exc) from None
        avoid = set() if avoid is None else avoid
        job = {**job, "media": media, "tokens": self.zerogpu_tokens(hf_token)}
        route = self._route(model, job, avoid, backends, account_of(hf_token))
        async with contextlib.aclosing(route) as items:
            async for item in items:
                # Upscale and fill routes hold image backends only: no Description here.
                yield cast(Response, item)

    # -- translating ------------------------------------------------------------------

    async def translate_prompt(self, prompt: str, model: str) -> Translation | None:
        """``prompt`` in English by the chat model ``model`` (one of ``translation_models()``),
        or None when it needs no translation: it has no letter outside ASCII (decided here,
        nothing is sent) or the model answered it unchanged.

        ``UnknownModel`` (before anything else) for a model no backend serves. A backend's
        failure is a ``BackendError`` (``BackendTimeout`` after ``translate_timeout``
        seconds), redacted as every error the engine raises; an empty answer, one much
        longer than the prompt or one with other ``--flags`` counts as a failure too. With
        several backends for the model, a transient failure moves on to the next one. No
        breaker is touched: a translation is not a drawing job.
        """
        name = (model or "").strip()
        backends = self.table.chat_models().get(name)
        if not backends:
            known = ", ".join(self.translation_models()) or "none is configured"
            raise UnknownModel(f"Unknown translation model {model!r}. Available: {known}.")
        if not needs_translation(prompt):
            return None
        payload = translation_payload(prompt, name)
        for index, backend in enumerate(backends):
            settings = backend.settings
            limits = Limits(
                total=self.translate_timeout,
                connect=min(settings.connect_timeout_seconds, self.translate_timeout),
                idle=self.translate_timeout,
            )
            try:
                answer = await chat_completion(
                    self.session, backend.url, payload, api_key=settings.openai_api_key,
                    limits=limits, label=backend.label,
                )  # fmt: skip
                english = checked_answer(prompt, answer, backend.label)
            except ImagineError as exc:
                error = self.public(exc)
                last = index == len(backends) - 1
                if last or not (isinstance(error, BackendError) and error.transient):
                    raise error from None
                log.warning("translation by %s failed, trying the next: %s", backend.label, error)
                continue
            if english is None:
                return None
            return Translation(prompt, english, name, backend.label)
        raise AssertionError("unreachable: the last backend returns or raises")

    async def _route(
        self,
        model: str,
        job: dict[str, Any],
        avoid: set[str],
        backends: list[Backend],
        account: str = BOT_ACCOUNT,
    ) -> AsyncGenerator[Item, None]:
        """Try the model's backends in order; see the module notes. A breaker is asked only
        right before its backend would be tried, so a backend this job never reaches does not
        take the one trial a recovering backend allows. A backend resting for ``account``'s
        quota is never sent anything: the job is told, and goes on with the next one."""
        errors: list[tuple[Backend, ImagineError]] = []
        backends = [b for b in backends if b.name not in avoid]
        queue = list(backends)
        tried = retried = False
        rested: Rest | None = None  # the first backend passed over for its quota rest
        while True:
            backend, resting = self._next_allowed(queue, account)
            rested = rested or resting
            if backend is None and not tried:
                backend = self._resting_soonest(backends, account)
            if backend is None and not retried:
                backend = retry_candidate(errors)
                if backend is not None:
                    retried = True
                    yield Notice(
                        _(
                            "{backend} stumbled ({error}); retrying in {seconds}s",
                            backend=backend.label,
                            error=short(error_of(backend, errors)),
                            seconds=f"{self.retry_backoff:g}",
                        )
                    )
                    await asyncio.sleep(self.retry_backoff)
            if backend is None:
                break
            if errors and errors[-1][0] is not backend:
                failed, error = errors[-1]
                rest = self.rests.resting(failed.name, account)
                if isinstance(error, QuotaExceeded) and rest is not None:
                    yield Notice(quota_notice(failed, rest, backend))
                else:
                    yield Notice(failover_notice(failed, error, backend))
            elif not errors and rested is not None and not tried:
                yield Notice(quota_notice(self.backend(rested.backend), rested, backend))
            tried = True
            breaker = self.breaker(backend.name)
            started = time.monotonic()
            announced = False
            try:
                async with contextlib.aclosing(self._start(backend, model, job)) as items:
                    async for item in items:
                        if not announced and isinstance(item, HordeWaiting):
                            announced = True
                            self.observer.horde_wait_announced(backend.name, item.wait_time)
                        yield tagged(item, model, backend)
                breaker.success()
                self.observer.backend_tried(backend.name, Attempt.OK, time.monotonic() - started)
                return
            except ImagineError as exc:
                error = self.public(exc)
                self.observer.backend_tried(
                    backend.name, attempt_of(error), time.monotonic() - started
                )
                if isinstance(error, BackendError):
                    error.backend = backend.label  # the backend by the name people know
                if isinstance(error, BackendTimeout):
                    avoid.add(backend.name)  # it already cost a watchdog period: not again
                if isinstance(error, QuotaExceeded):
                    breaker.release_probe()  # the backend works: this account's quota is out
                    self.rests.rest(backend.name, account, error.retry_after, short(error))
                elif isinstance(error, BackendError) and (error.transient or error.unavailable):
                    breaker.failure(short(error))
                else:
                    breaker.release_probe()
                    if not isinstance(error, BadInput):  # a backend that cannot take this
                        raise  # request (its seed range, say); others would not change it
                errors.append((backend, error))
            except BaseException:
                breaker.release_probe()
                raise
        raise combined(model, errors, backends, self, account)

    def _next_allowed(
        self, queue: list[Backend], account: str
    ) -> tuple[Backend | None, Rest | None]:
        """The next backend in line that is not resting for ``account``'s quota and whose
        breaker lets a job through now; and the first quota rest passed over."""
        passed: Rest | None = None
        while queue:
            backend = queue.pop(0)
            rest = self.rests.resting(backend.name, account)
            if rest is not None:
                passed = passed or rest
                continue
            if self.breaker(backend.name).allows():
                return backend, passed
        return None, passed

    def _resting_soonest(self, backends: list[Backend], account: str) -> Backend | None:
        """Every backend is resting: with nowhere else to go, the one back soonest gets a try
        anyway, unless a quota refusal said when it will work again."""
        unquota = [b for b in backends if self.rests.resting(b.name, account) is None]
        return min(unquota, key=lambda b: self.breaker(b.name).remaining(), default=None)

    def backend(self, name: str) -> Backend:
        return self.table.backends[name]

    def label(self, name: str) -> str:
        """A backend's name as people know it (its key when it is no longer configured)."""
        backend = self.table.backends.get(name)
        return backend.label if backend is not None else name

    def public(self, error: ImagineError) -> ImagineError:
        """The error as people may see it: no secret, and backends by name, not address."""
        text = message_of(error)
        clean = self.redact.shown(text)
        return error if clean == text else reword(error, clean)

    def _start(
        self, backend: Backend, model: str, job: dict[str, Any]
    ) -> AsyncGenerator[Item, None]:
        """One backend's own stream for this job (no wrapper: routing adds no layer per item).
        ZeroGPU tokens: the job's own cache (a member's), else the bot's."""
        return backend.provider.start(
            backend_model(backend, model),
            None,
            session=self.session,
            settings=backend.settings,
            endpoints=self.endpoints,
            **{"tokens": self.tokens, **job},
        )

    async def attempt(
        self, backend: Backend, model: str, job: dict[str, Any]
    ) -> AsyncGenerator[Item, None]:
        """One backend, bypassing routing and health (``--check --generate`` uses it)."""
        try:
            async with contextlib.aclosing(self._start(backend, model, job)) as items:
                async for item in items:
                    yield tagged(item, model, backend)
        except ImagineError as exc:
            raise self.public(exc) from None

    async def download(
        self, image: ImageResponse | ImagePreview, index: int = 0, *, filename: str | None = None
    ) -> FetchedImage:
        """The bytes of one result (or preview) image, fetched under ``imagine.fetch``'s rules:
        only from the origin of the backend that made it."""
        try:
            return await fetch_image(
                self.session,
                image.images[index],
                origin=image.origin,
                max_bytes=self.settings.max_image_bytes,
                time_limit=min(self.settings.job_timeout_seconds, 120.0),
                filename=filename,
            )
        except ImagineError as exc:
            raise self.public(exc) from None


def tagged(item: Item, model: str, backend: Backend) -> Item:
    """A result names the model asked for and the backend that drew it; a preview names the
    backend too (its ``origin`` is set where it is made)."""
    if isinstance(item, ImageResponse | Description):
        item.model = model
        item.backend = backend.label
    elif isinstance(item, ImagePreview):
        item.backend = backend.label
    return item


def image_provider(backend: Backend) -> type[ImageProvider]:
    provider = backend.provider
    if not issubclass(provider, ImageProvider):
        raise BadInput(f"{backend.name} does not draw images")
    return provider


def describe_provider(backend: Backend) -> type[DescribeProvider]:
    provider = backend.provider
    if not issubclass(provider, DescribeProvider):
        raise BadInput(f"{backend.name} does not describe images")
    return provider


def backend_model(backend: Backend, model: str) -> str:
    """The name a backend's provider knows ``model`` by (its own, for Space backends)."""
    provider = backend.provider
    if provider.models and model not in provider.models:
        return provider.default_model
    return model


def retry_candidate(errors: list[tuple[Backend, ImagineError]]) -> Backend | None:
    """The first backend whose failure may pass in a moment. Not one that stalled (it already
    cost a watchdog period) and not a quota refusal (it said when it will work again)."""
    for backend, error in errors:
        if (
            isinstance(error, BackendError)
            and error.transient
            and not isinstance(error, BackendTimeout | QuotaExceeded)
        ):
            return backend
    return None


def error_of(backend: Backend, errors: list[tuple[Backend, ImagineError]]) -> ImagineError:
    """The latest error of ``backend`` in this job."""
    return next(e for b, e in reversed(errors) if b is backend)


def failover_notice(failed: Backend, error: ImagineError, to: Backend) -> Text:
    names = {"failed": failed.label, "error": short(error), "other": to.label}
    if isinstance(error, BackendTimeout):
        return _("{failed} is not answering ({error}); trying {other}", **names)
    return _("{failed} is unavailable ({error}); trying {other}", **names)


def short(error: BaseException, limit: int = 160) -> Shown:
    """The error's text, a backend's long words cut to ``limit`` (a message of ours is kept
    whole: cutting it would make it English)."""
    text = message_of(error)
    if isinstance(text, Text) or len(text) <= limit:
        return text
    return Verbatim(text[: limit - 1] + "…")


def quota_notice(failed: Backend, rest: Rest, to: Backend) -> Text:
    """What a job is told when a backend's quota is out for its account."""
    return _(
        "{failed} is out of GPU quota until {when}; {other} draws instead",
        failed=failed.label,
        when=Moment(rest.until),
        other=to.label,
    )


def combined(
    model: str,
    errors: list[tuple[Backend, ImagineError]],
    backends: list[Backend],
    engine: Engine,
    account: str = BOT_ACCOUNT,
) -> ImagineError:
    """The error to raise once no backend could draw ``model``."""
    if not backends:  # each one already stalled earlier in this job
        return BackendTimeout(_("No backend for {model} is answering right now", model=model))
    if not errors:  # every backend rests for quota (a refusal a moment ago said until when)
        rests = [engine.rests.resting(b.name, account) for b in backends]
        soonest = min((r.until for r in rests if r is not None), default=time.time())
        return QuotaExceeded(
            _("Every backend for {model} is out of GPU quota for now", model=model),
            retry_after=max(0.0, soonest - time.time()),
        )
    unique: dict[str, tuple[Backend, ImagineError]] = {}
    for backend, error in errors:
        unique[backend.name] = (backend, error)  # the latest error of each backend
    if len(unique) == 1:
        return next(iter(unique.values()))[1]
    quotas = [e for _, e in unique.values() if isinstance(e, QuotaExceeded)]
    text = joined(
        "; ",
        (
            Text("{backend}: {error}", {"backend": b.label, "error": message_of(e)})
            for b, e in unique.values()
        ),
    )
    if len(quotas) == len(unique):
        waits = [q.retry_after for q in quotas if q.retry_after is not None]
        return QuotaExceeded(text, retry_after=min(waits) if waits else None)
    first = errors[0][1]
    return BackendError(
        text,
        status=getattr(first, "status", None),
        transient=any(isinstance(e, BackendError) and e.transient for _, e in unique.values()),
    )
