"""The upscaler: finegrain's Image Enhancer (``finegrain/finegrain-image-enhancer``), a ZeroGPU
Space whose ``/process`` redraws an image larger (ESRGAN, then Stable Diffusion 1.5 tiles with
a tile ControlNet, as ``refiners`` does it).

Its app defines ``process(input_image, prompt, negative_prompt, seed, upscale_factor,
controlnet_scale, controlnet_decay, condition_scale, tile_width, tile_height,
denoise_strength, num_inference_steps, solver)`` and answers an ``ImageSlider``: the pair
(before, after), of which the second is the result. We send the app's own defaults (its
quality prompt and negative prompt, seed 42, the knobs' default values) and the factor asked
for. The Space first brings a shorter side above 768 down to 768, so a 1024² image comes back
1536² at factor 2; the size made is left for the caller to read from the image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import BadInput
from ..gradio import Completed, file_url
from ..i18n import _
from ..responses import ImageResponse
from .base import ImageRequest
from .infer import GradioInferProvider

UPSCALE_FACTOR = 2.0
MIN_FACTOR, MAX_FACTOR = 1.0, 4.0
"""The Space's Upscale Factor slider."""


def check_upscale_factor(factor: object) -> float:
    """An upscale factor the Space takes: a number from 1 to 4."""
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise BadInput(_("The upscale factor must be a number from 1 to 4."))
    if not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise BadInput(
            _(
                "The upscale factor must be a number from 1 to 4, not {factor}.",
                factor=f"{factor:g}",
            )
        )
    return float(factor)


class FinegrainUpscaler(GradioInferProvider):
    """finegrain/finegrain-image-enhancer."""

    label = "Finegrain Image Enhancer"
    default_model = "upscale"
    models = ("upscale",)
    api_name = "process"
    url_setting = "upscale_space_url"
    space_setting = "upscale_space_id"
    parameters = (
        "input_image", "prompt", "negative_prompt", "seed", "upscale_factor",
        "controlnet_scale", "controlnet_decay", "condition_scale", "tile_width", "tile_height",
        "denoise_strength", "num_inference_steps", "solver",
    )  # fmt: skip
    accepts_images = True
    requires_images = True
    takes_negative = True
    max_seed = 10_000  # the Space's Seed slider
    quality_prompt = "masterpiece, best quality, highres"
    quality_negative = "worst quality, low quality, normal quality"
    default_seed = 42
    knobs: tuple[Any, ...] = (0.6, 1.0, 6, 112, 144, 0.35, 18, "DDIM")
    """controlnet_scale, controlnet_decay, condition_scale, tile_width, tile_height,
    denoise_strength, num_inference_steps, solver: the app's defaults."""

    @classmethod
    def prepare(
        cls,
        model: str | None,
        messages: Iterable[Mapping[str, Any]] | None,
        *,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> ImageRequest:
        """As every provider checks a request; without a prompt, the app's quality words."""
        if prompt is None and not messages:
            prompt = cls.quality_prompt
        return super().prepare(model, messages, prompt=prompt, **kwargs)

    @classmethod
    def seed_for(cls, request: ImageRequest) -> int:
        """The app's seed unless one is asked for: the same image upscales the same way."""
        return cls.default_seed if request.seed is None else super().seed_for(request)

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
        factor = check_upscale_factor(options.get("upscale_factor", UPSCALE_FACTOR))
        negative = request.negative or cls.quality_negative
        return [files[0], request.prompt, negative, seed, factor, *cls.knobs]

    @classmethod
    def parse(
        cls, data: list[Any], base_url: str
    ) -> tuple[list[str], int | None, tuple[int, int] | None]:
        """The slider's second image (after); a plain image is taken as it is."""
        value = data[0] if data else None
        if isinstance(value, list | tuple):
            value = value[-1] if value else None
        url = file_url(base_url, value)
        return ([url] if url else []), None, None

    @classmethod
    def image_response(
        cls,
        completed: Completed,
        request: ImageRequest,
        seed: int,
        size: tuple[int, int],
        base_url: str,
    ) -> ImageResponse:
        image = super().image_response(completed, request, seed, size, base_url)
        image.width = image.height = None  # the Space's own rule decides: read it off the image
        return image
