"""An OpenAI-compatible images API: ``POST {OPENAI_BASE_URL}/images/generations``, and
``POST {OPENAI_BASE_URL}/images/edits`` (multipart, the image as a file) when a job has an
input image.

This covers OpenAI itself, gpt4free's own API server and local servers that speak the same
API. Results come as ``b64_json`` (asked for; kept as a ``data:`` URL, decoded by
``imagine.fetch`` without any network) or as a ``url`` on the API's host. The key is sent as
``Authorization: Bearer`` and is a secret like the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from ..errors import BackendError
from ..gradio import translated_errors
from ..http import MAX_JSON_BYTES, raise_for_status, read_capped
from ..i18n import Number, _
from ..responses import ImageResponse, Reasoning, Response
from .base import Context, ImageProvider, ImageRequest, ticking

ANSWER_MARGIN = 1024 * 1024
"""Room in an images answer for the JSON around the base64 (``revised_prompt``, ...)."""


def answer_limit(max_image_bytes: int) -> int:
    """The most an images answer may weigh: one ``b64_json`` image of up to
    ``max_image_bytes`` (4/3 of that in base64) and its JSON; never less than other JSON."""
    return max(MAX_JSON_BYTES, -(-max_image_bytes * 4 // 3) + ANSWER_MARGIN)


class OpenAIImages(ImageProvider):
    label = "OpenAI-compatible API"
    side_range = (64, 2048)
    accepts_images = True  # through /images/edits; whether a model edits is the API's say

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Any name: which names this API serves is configuration (see ``backends``)."""
        name = (model or "").strip()
        if not name:
            raise BackendError("No model named for the OpenAI-compatible API")
        return name

    @classmethod
    async def generate(
        cls, context: Context, request: ImageRequest, **options: Any
    ) -> AsyncGenerator[Response, None]:
        settings = context.settings
        base = (settings.openai_base_url or "").rstrip("/")
        if not base:
            raise BackendError("OPENAI_BASE_URL is not set", backend=cls.label)
        width, height = cls.clamp(request.width), cls.clamp(request.height)
        payload = {
            "model": request.model,
            "prompt": request.prompt,
            "n": 1,
            "size": f"{width}x{height}",
            "response_format": "b64_json",
        }
        headers = {}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        started = time.monotonic()
        body: dict[str, Any] | aiohttp.FormData = payload
        url = f"{base}/images/generations"
        if request.images:
            url, body = f"{base}/images/edits", edit_form(payload, request)
        task = asyncio.ensure_future(cls._post(context, url, body, headers))
        async for status in ticking(task, started):
            yield status
        answer = task.result()
        images = []
        for item in answer.get("data") or ():
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                images.append(f"data:image/png;base64,{item['b64_json']}")
            elif isinstance(item, dict) and isinstance(item.get("url"), str):
                images.append(item["url"])
        if not images:
            raise BackendError(f"{cls.label} answered without an image", backend=cls.label)
        yield ImageResponse(
            images=images,
            alt=request.prompt,
            model=request.model,
            seed=None,
            width=width,
            height=height,
            origin=base,
            backend=cls.label,
            ignored=cls.ignored(request),
        )
        yield Reasoning(_("Finished {seconds}s", seconds=Number(context.elapsed(), 2)))

    @classmethod
    async def _post(
        cls,
        context: Context,
        url: str,
        body: dict[str, Any] | aiohttp.FormData,
        headers: dict[str, str],
    ) -> dict[str, Any]:
        """POST JSON (a dict) or a multipart form; the answer's JSON object."""
        limits = context.limits
        data, payload = (body, None) if isinstance(body, aiohttp.FormData) else (None, body)
        with translated_errors(cls.label, limits):
            async with context.session.post(
                url,
                json=payload,
                data=data,
                headers=headers,
                timeout=limits.client_timeout(),
                proxy=context.proxy,
            ) as response:
                await raise_for_status(response, backend=cls.label)
                limit = answer_limit(context.settings.max_image_bytes)
                raw = await read_capped(response, limit, backend=cls.label)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise BackendError(f"{cls.label} sent malformed data", backend=cls.label) from None
        if not isinstance(answer, dict):
            raise BackendError(f"{cls.label} sent malformed data", backend=cls.label)
        return answer


def edit_form(fields: dict[str, Any], request: ImageRequest) -> aiohttp.FormData:
    """``/images/edits``' multipart body: the text fields, then the image as a file."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, str(value))
    image = request.images[-1]
    form.add_field("image", image.data, filename=image.name, content_type=image.mime)
    return form


async def list_models(
    session: aiohttp.ClientSession,
    base_url: str,
    api_key: str | None,
    *,
    time_limit: float = 15,
    images_only: bool = True,
) -> list[str]:
    """The image models an OpenAI-compatible server lists at ``GET /models``.

    Entries flagged ``"image": true`` (gpt4free marks image models so) when any entry has the
    flag; otherwise every listed id. ``images_only=False``: every listed id.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with session.get(
        f"{base_url.rstrip('/')}/models",
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=time_limit),
    ) as response:
        await raise_for_status(response, backend=OpenAIImages.label)
        answer = json.loads(await read_capped(response, MAX_JSON_BYTES, backend=OpenAIImages.label))
    data = answer.get("data") if isinstance(answer, dict) else None
    entries = [e for e in (data or []) if isinstance(e, dict) and e.get("id")]
    if images_only and any(isinstance(e.get("image"), bool) for e in entries):
        entries = [e for e in entries if e.get("image") is True]
    return [str(e["id"]) for e in entries]
