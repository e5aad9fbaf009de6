"""FLUX.1 Fill [dev] (``black-forest-labs/FLUX.1-Fill-dev``): paints the white of a mask into
an image, as its official ZeroGPU Space's ``/infer`` does.

Its app defines ``infer(edit_images, prompt, seed, randomize_seed, width, height,
guidance_scale, num_inference_steps)``, where ``edit_images`` is an ``ImageEditor`` value
``{"background": FileData, "layers": [FileData], "composite": FileData}``: the image, the mask
as the one layer (white = paint), and the image as the editor would show it (the app reads
only the first two; we send the background again). It answers ``[image, seed]``. It draws at a
size of its own, worked out from the background (``imagine.canvas.space_fill_size``); the
width and height sent are only checked against their sliders (256..2048). Guidance is as high
as its slider goes (30, which the model card advises); steps 28 (1..50).

Media are ``[image, mask]`` of one size. The prompt may be empty (the model then continues the
picture from itself, which suits Zoom Out and Pan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..canvas import fill_size, space_fill_size
from ..errors import BackendError, BadInput
from ..fetch import DEFAULT_MAX_BYTES
from ..gradio import Completed
from ..i18n import _
from ..inputs import UNREADABLE, header_size
from ..media import check_media
from ..messages import format_image_prompt
from ..responses import ImageResponse
from .base import ImageRequest, check_seed, clean_negative, clean_prompt
from .infer import GradioInferProvider, steps

MAX_GUIDANCE = 30.0


class FluxFill(GradioInferProvider):
    """black-forest-labs/FLUX.1-Fill-dev."""

    label = "FLUX.1 Fill [dev] (official Space)"
    default_model = "flux-fill-dev"
    models = ("flux-fill-dev",)
    url_setting = "fill_space_url"
    space_setting = "fill_space_id"
    parameters = (
        "edit_images", "prompt", "seed", "randomize_seed", "width", "height", "guidance_scale",
        "num_inference_steps",
    )  # fmt: skip
    accepts_images = True
    requires_images = True
    max_images = 2
    side_range = (256, 2048)  # the hidden Width and Height sliders
    guidance_scale = MAX_GUIDANCE
    num_inference_steps = 28
    max_steps = 50

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
        """The image and its mask (same size, a shape the Space draws unsqueezed), a prompt
        that may be empty, a seed; the size is the image's (``width`` and ``height`` are not
        used)."""
        canonical = cls.get_model(model)
        text = format_image_prompt(messages, prompt)
        text = clean_prompt(text) if text.strip() else ""
        images = check_media(media, max_bytes=max_image_bytes)
        if len(images) != 2:
            raise BadInput(_("{model} takes an image and its mask.", model=canonical))
        image, mask = (header_size(i.data, i.mime) for i in images)
        if image is None or mask is None:
            raise BadInput(UNREADABLE)
        if image != mask:
            raise BadInput(
                _(
                    "The mask must be the size of the image ({width}×{height}), "
                    "not {mask_width}×{mask_height}.",
                    width=image[0],
                    height=image[1],
                    mask_width=mask[0],
                    mask_height=mask[1],
                )
            )
        fill_size(*image)  # a shape the Space would squeeze is refused here
        return ImageRequest(
            model=canonical,
            prompt=text,
            width=image[0],
            height=image[1],
            seed=check_seed(seed),
            negative=clean_negative(negative),
            images=images,
        )

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
        background, mask = files
        guidance = options.get("guidance_scale", cls.guidance_scale)
        if isinstance(guidance, bool) or not isinstance(guidance, int | float):
            raise BackendError("guidance_scale must be a number from 1 to 30")
        if not 1 <= guidance <= MAX_GUIDANCE:
            raise BackendError("guidance_scale must be a number from 1 to 30")
        editor = {"background": background, "layers": [mask], "composite": background}
        return [
            editor,
            request.prompt,
            seed,
            False,  # randomize_seed: the seed shown is the seed used
            width,
            height,
            guidance,
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
        drawn = space_fill_size(request.width, request.height)
        return super().image_response(completed, request, seed, drawn, base_url)
