"""Janus-Pro-7B's image generation on a ZeroGPU Space (gpt4free's ``DeepseekAI_JanusPro7b``).

It draws a gallery of 384x384 images whatever size is asked; the response says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..gradio import file_url
from .base import GradioQueueProvider, ImageRequest

JANUS_SIDE = 384


class JanusPro7B(GradioQueueProvider):
    label = "Janus-Pro-7B"
    default_model = "janus-pro-7b-image"
    models: ClassVar[tuple[str, ...]] = ("janus-pro-7b-image",)
    url_setting = "janus_space_url"
    space_setting = "janus_space_id"
    fn_index: ClassVar[int] = 3
    trigger_id: ClassVar[int | None] = 20
    guidance: ClassVar[float] = 5
    temperature: ClassVar[float] = 1

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
        return [
            request.prompt,
            seed,
            options.get("guidance", cls.guidance),
            options.get("temperature", cls.temperature),
        ]

    @classmethod
    def parse(
        cls, data: list[Any], base_url: str
    ) -> tuple[list[str], int | None, tuple[int, int] | None]:
        gallery = data[0] if data and isinstance(data[0], list) else []
        urls = []
        for entry in gallery:
            image = entry.get("image") if isinstance(entry, Mapping) else entry
            url = file_url(base_url, image)
            if url:
                urls.append(url)
        return urls, None, (JANUS_SIDE, JANUS_SIDE)
