"""Image to prompts ("describe"): Janus-Pro-7B's image understanding, or an OpenAI-compatible
vision chat model.

Backends, in the order the engine tries them for ``janus-pro-7b``:

- ``JanusDescribe``: the Janus Space at ``JANUS_SPACE_URL`` (gpt4free's
  ``DeepseekAI_JanusPro7b`` with an image): the image is uploaded, then queue/join
  ``fn_index`` 2, ``trigger_id`` 10, data ``[FileData, question, seed, top_p, temperature]``;
  the answer is ``output.data[0]``, text.
- ``JanusOfficialDescribe``: the official ``deepseek-ai/Janus-Pro-7B`` Space, whose
  ``multimodal_understanding(image, question, seed, top_p, temperature)`` is looked up by API
  name and checked against its API description at first use.
- ``OpenAIVision``: ``POST {OPENAI_BASE_URL}/chat/completions`` with the image as a ``data:``
  URL, model ``OPENAI_VISION_MODEL``.

Each streams ``Reasoning`` statuses and ends with one ``Description``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from ..errors import BackendError, BadInput, UnknownModel
from ..gradio import (
    Completed,
    new_session_hash,
    run_queued,
    translated_errors,
    upload_files,
)
from ..http import MAX_JSON_BYTES, raise_for_status, read_capped, session_scope
from ..i18n import Number, _
from ..media import InputImage, check_media
from ..messages import message_text
from ..responses import Description, Reasoning
from ..settings import Settings
from ..zerogpu import ZeroGPUTokens
from .answers import MAX_DESCRIBE_COUNT, parse_prompts, question_for
from .base import (
    Context,
    forget_rejected_token,
    gpu_headers,
    job_context,
    random_seed,
    shared_tokens,
    ticking,
)
from .infer import checked_endpoint

DESCRIBE_MODEL = "janus-pro-7b"

DescribeItem = Reasoning | Description


@dataclass(frozen=True, slots=True)
class DescribeRequest:
    """A checked describe request: the model, the image, how many prompts, the question."""

    model: str
    image: InputImage
    count: int
    question: str


def check_count(count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise BadInput(f"count must be a whole number, not {count!r}.")
    if not 1 <= count <= MAX_DESCRIBE_COUNT:
        raise BadInput(f"count must be from 1 to {MAX_DESCRIBE_COUNT}, not {count}.")
    return count


def prompts_or_error(answer: Any, count: int, label: str) -> list[str]:
    """The prompts in a model's answer; an answer with none is the backend's failure (another
    backend may well do better, so the job moves on)."""
    prompts = parse_prompts(answer if isinstance(answer, str) else "", count)
    if not prompts:
        raise BackendError(f"{label} answered without a description", transient=True, backend=label)
    return prompts


class DescribeProvider:
    """A backend that turns an image into prompts; subclasses set ``describe``."""

    label: ClassVar[str] = ""
    default_model: ClassVar[str] = DESCRIBE_MODEL
    models: ClassVar[tuple[str, ...]] = (DESCRIBE_MODEL,)
    accepts_images: ClassVar[bool] = True
    requires_images: ClassVar[bool] = True
    takes_negative: ClassVar[bool] = False

    @classmethod
    def get_model(cls, model: str | None) -> str:
        name = (model or cls.default_model).strip().lower()
        if cls.models and name not in cls.models:
            raise UnknownModel(
                f"Unknown model {model!r}. Available models: {', '.join(cls.models)}."
            )
        return name

    @classmethod
    def prepare(
        cls, model: str | None, media: Any, *, count: Any = 4, max_image_bytes: int
    ) -> DescribeRequest:
        """Check the request before any byte is sent: one image, a sensible count."""
        images = check_media(media, max_bytes=max_image_bytes)
        if len(images) != 1:
            raise BadInput(f"Describe takes one image, not {len(images)}.")
        count = check_count(count)
        return DescribeRequest(cls.get_model(model), images[0], count, question_for(count))

    @classmethod
    def start(
        cls,
        model: str,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        session: aiohttp.ClientSession,
        settings: Settings,
        tokens: ZeroGPUTokens,
        media: Any = None,
        count: Any = 4,
        proxy: str | None = None,
        api_key: str | None = None,
        zerogpu_uuid: str | None = None,
        endpoints: dict[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncGenerator[DescribeItem, None]:
        """Check the request now (``BadInput`` before any I/O); the job's stream of statuses
        ending with one ``Description``. ``messages`` are not used (the question is ours)."""
        request = cls.prepare(model, media, count=count, max_image_bytes=settings.max_image_bytes)
        context = job_context(
            session, settings, tokens, proxy=proxy, api_key=api_key,
            zerogpu_uuid=zerogpu_uuid, endpoints=endpoints,
        )  # fmt: skip
        return cls.describe(context, request)

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        media: Any,
        session: aiohttp.ClientSession | None = None,
        settings: Settings | None = None,
        tokens: ZeroGPUTokens | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[DescribeItem, None]:
        """gpt4free's entry point: ``media=[(bytes, filename)]``, ``count=4``; yields
        statuses and one ``Description``."""
        settings = settings or Settings.from_env()
        tokens = tokens or shared_tokens(settings)
        async with session_scope(session) as http:
            job = cls.start(
                model, messages, session=http, settings=settings, tokens=tokens, media=media,
                **kwargs,
            )  # fmt: skip
            async with contextlib.aclosing(job) as items:
                async for item in items:
                    yield item

    @classmethod
    def describe(
        cls, context: Context, request: DescribeRequest
    ) -> AsyncGenerator[DescribeItem, None]:
        raise NotImplementedError


class JanusDescribe(DescribeProvider):
    """Janus-Pro-7B's multimodal understanding on the Space at ``JANUS_SPACE_URL``."""

    label = "Janus-Pro-7B"
    url_setting: ClassVar[str] = "janus_space_url"
    space_setting: ClassVar[str] = "janus_space_id"
    fn_index: ClassVar[int] = 2
    trigger_id: ClassVar[int | None] = 10
    api_name: ClassVar[str | None] = None
    parameters: ClassVar[tuple[str, ...]] = ()
    top_p: ClassVar[float] = 0.95
    temperature: ClassVar[float] = 0.1

    @classmethod
    def space_url(cls, settings: Settings) -> str:
        return getattr(settings, cls.url_setting)

    @classmethod
    def space_id(cls, settings: Settings) -> str:
        return getattr(settings, cls.space_setting)

    @classmethod
    async def endpoint(cls, context: Context, base_url: str) -> tuple[int, int | None]:
        if cls.api_name is None:
            return cls.fn_index, cls.trigger_id
        endpoint = await checked_endpoint(
            context, base_url, cls.api_name, cls.parameters, cls.label
        )
        return endpoint.fn_index, endpoint.trigger_id

    @classmethod
    async def describe(
        cls, context: Context, request: DescribeRequest
    ) -> AsyncGenerator[DescribeItem, None]:
        settings = context.settings
        base_url = cls.space_url(settings).rstrip("/")
        space = cls.space_id(settings)
        fn_index, trigger_id = await cls.endpoint(context, base_url)
        headers = gpu_headers(context, space)
        if headers is None:
            yield Reasoning(_("Acquiring GPU Token"))
            headers = (await context.tokens.get(context.session, space)).headers()
        session_hash = new_session_hash()
        delivered = False
        try:
            yield Reasoning(_("Uploading the image"))
            (file,) = await upload_files(
                context.session, base_url, [request.image], upload_id=session_hash,
                headers=headers, backend=cls.label, limits=context.limits, proxy=context.proxy,
            )  # fmt: skip
            data = [file, request.question, random_seed(), cls.top_p, cls.temperature]
            stream = run_queued(
                context.session, base_url, fn_index=fn_index, trigger_id=trigger_id, data=data,
                headers=headers, alt=request.question, backend=cls.label, limits=context.limits,
                proxy=context.proxy, session_hash=session_hash, previews=False,
            )  # fmt: skip
            async with contextlib.aclosing(stream) as items:
                async for item in items:
                    if isinstance(item, Completed):
                        answer = item.data[0] if item.data else None
                        prompts = prompts_or_error(answer, request.count, cls.label)
                        # Handed on at once; the stream's tail is read after the caller has it.
                        yield Description(prompts, backend=cls.label, model=request.model)
                        delivered = True
                    elif isinstance(item, Reasoning):
                        yield item
        except BackendError as exc:
            forget_rejected_token(context, space, exc)
            raise
        assert delivered
        yield Reasoning(_("Finished {seconds}s", seconds=Number(context.elapsed(), 2)))


class JanusOfficialDescribe(JanusDescribe):
    """The official deepseek-ai/Janus-Pro-7B Space, by API name."""

    label = "Janus-Pro-7B (official Space)"
    url_setting = "janus_official_space_url"
    space_setting = "janus_official_space_id"
    api_name = "multimodal_understanding"
    parameters = ("image", "question", "seed", "top_p", "temperature")


class OpenAIVision(DescribeProvider):
    """An OpenAI-compatible vision chat model (``OPENAI_VISION_MODEL``)."""

    label = "OpenAI-compatible API"
    models = ()
    max_tokens: ClassVar[int] = 800

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Any name: the model actually asked is ``OPENAI_VISION_MODEL``."""
        return (model or cls.default_model).strip()

    @classmethod
    async def describe(
        cls, context: Context, request: DescribeRequest
    ) -> AsyncGenerator[DescribeItem, None]:
        settings = context.settings
        base = (settings.openai_base_url or "").rstrip("/")
        model = settings.openai_vision_model
        if not base or not model:
            raise BackendError(
                "OPENAI_BASE_URL and OPENAI_VISION_MODEL must both be set", backend=cls.label
            )
        image = request.image
        data_url = f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"
        payload = {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.question},
                        {"type": "image_url", "image_url": {"url": data_url}},
                    ],
                }
            ],
            "max_tokens": cls.max_tokens,
            "temperature": 0.7,
        }
        headers = {}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        started = time.monotonic()
        task = asyncio.ensure_future(
            cls._chat(context, f"{base}/chat/completions", payload, headers)
        )
        async with contextlib.aclosing(ticking(task, started)) as statuses:
            async for status in statuses:
                yield status
        prompts = prompts_or_error(task.result(), request.count, cls.label)
        yield Description(prompts, backend=cls.label, model=request.model)
        yield Reasoning(_("Finished {seconds}s", seconds=Number(context.elapsed(), 2)))

    @classmethod
    async def _chat(
        cls, context: Context, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> str:
        """The text of the first choice's message."""
        limits = context.limits
        with translated_errors(cls.label, limits):
            async with context.session.post(
                url,
                json=payload,
                headers=headers,
                timeout=limits.client_timeout(),
                proxy=context.proxy,
            ) as response:
                await raise_for_status(response, backend=cls.label)
                body = await read_capped(response, MAX_JSON_BYTES, backend=cls.label)
        try:
            answer = json.loads(body)
            content = answer["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(f"{cls.label} sent malformed data", backend=cls.label) from None
        return message_text(content)


DESCRIBE_PROVIDERS: tuple[type[DescribeProvider], ...] = (
    JanusDescribe,
    JanusOfficialDescribe,
    OpenAIVision,
)
