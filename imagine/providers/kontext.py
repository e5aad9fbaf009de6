"""FLUX.1 Kontext [dev]: edits an image as a prompt says (gpt4free's
``BlackForestLabs_Flux1KontextDev``), on the official ZeroGPU Space.

The image is uploaded first (``/gradio_api/upload``); the job's data is then
``[FileData, prompt, seed, randomize_seed, guidance_scale, steps]``, run by its API name
(``/infer``) after the Space's API description is checked, as for the other official Spaces.
The Space draws at about one megapixel in the input's proportions, so the size asked for is
not used and the size made is left for the caller to read from the image.
"""

from __future__ import annotations

from typing import Any

from ..gradio import Completed
from ..responses import ImageResponse
from .base import ImageRequest
from .infer import GradioInferProvider, steps


class FluxKontext(GradioInferProvider):
    """black-forest-labs/FLUX.1-Kontext-Dev."""

    label = "FLUX.1 Kontext [dev] (official Space)"
    default_model = "flux-kontext-dev"
    models = ("flux-kontext-dev",)
    url_setting = "kontext_space_url"
    space_setting = "kontext_space_id"
    parameters = ("input_image", "prompt", "seed", "randomize_seed", "guidance_scale", "steps")
    accepts_images = True
    requires_images = True
    guidance_scale = 2.5
    num_inference_steps = 28
    max_steps = 30  # the Space's Steps slider

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
            files[-1],
            request.prompt,
            seed,
            False,
            options.get("guidance_scale", cls.guidance_scale),
            steps(options, cls.num_inference_steps, cls.max_steps),
        ]

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
        image.width = image.height = None  # the input's proportions, not the size asked for
        return image
