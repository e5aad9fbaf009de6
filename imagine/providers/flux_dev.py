"""FLUX.1-dev on a ZeroGPU Space, through the Gradio queue (gpt4free's ``FluxDev``)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..gradio import file_url
from .base import INT32_MAX, GradioQueueProvider, ImageRequest, integer_or_none


class FluxDev(GradioQueueProvider):
    label = "FLUX.1-dev"
    default_model = "flux-dev"
    models = ("flux-dev",)
    side_range = (256, 2048)  # the Space's own sliders
    max_seed = INT32_MAX  # the Space's MAX_SEED (numpy int32)
    url_setting = "flux_dev_space_url"
    space_setting = "flux_dev_space_id"
    fn_index: ClassVar[int] = 2
    trigger_id: ClassVar[int | None] = 4
    guidance_scale: ClassVar[float] = 3.5
    num_inference_steps: ClassVar[int] = 28

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
        # randomize_seed is false so that the seed we show is the seed that was used.
        return [
            request.prompt,
            seed,
            False,
            width,
            height,
            options.get("guidance_scale", cls.guidance_scale),
            options.get("num_inference_steps", cls.num_inference_steps),
        ]

    @classmethod
    def parse(
        cls, data: list[Any], base_url: str
    ) -> tuple[list[str], int | None, tuple[int, int] | None]:
        url = file_url(base_url, data[0]) if data else None
        seed = integer_or_none(data[1]) if len(data) > 1 else None
        return ([url] if url else []), seed, None
