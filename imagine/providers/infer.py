"""The official model Spaces, reached by their ``/infer`` API on the same Gradio client.

Their function numbering is not ours to pin, so the ``fn_index`` is looked up by API name,
and the Space's own API description (``/gradio_api/info``) is checked at first use: a Space
that changed its inputs gets a clear error instead of a request that would not fit.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import BackendError
from ..gradio import Endpoint, describe_endpoint, file_url
from .base import INT32_MAX, Context, GradioQueueProvider, ImageRequest, integer_or_none


async def checked_endpoint(
    context: Context, base_url: str, api_name: str, parameters: tuple[str, ...], label: str
) -> Endpoint:
    """The Space's ``api_name`` function, once its API description says it still takes
    ``parameters``; looked up once per program (``context.endpoints``)."""
    key = (base_url, api_name)
    endpoint = context.endpoints.get(key)
    if endpoint is None:
        endpoint = await describe_endpoint(
            context.session, base_url, api_name, backend=label, limits=context.limits
        )
        if endpoint.parameters != parameters:
            raise BackendError(
                f"{label} changed its inputs: it now takes "
                f"({', '.join(endpoint.parameters) or 'nothing'}) instead of "
                f"({', '.join(parameters)}); not sending a request that would not fit",
                unavailable=True,
                backend=label,
            )
        context.endpoints[key] = endpoint
    return endpoint


class GradioInferProvider(GradioQueueProvider):
    """A Space whose ``/infer`` takes a known list of inputs and returns ``[image, seed]``."""

    api_name: ClassVar[str] = "infer"
    parameters: ClassVar[tuple[str, ...]] = ()
    side_step = 32
    max_seed = INT32_MAX

    @classmethod
    async def endpoint(cls, context: Context, base_url: str) -> tuple[int, int | None]:
        endpoint = await checked_endpoint(
            context, base_url, cls.api_name, cls.parameters, cls.label
        )
        return endpoint.fn_index, endpoint.trigger_id

    @classmethod
    def parse(
        cls, data: list[Any], base_url: str
    ) -> tuple[list[str], int | None, tuple[int, int] | None]:
        url = file_url(base_url, data[0]) if data else None
        seed = integer_or_none(data[1]) if len(data) > 1 else None
        return ([url] if url else []), seed, None


def steps(options: dict[str, Any], default: int, maximum: int = 50) -> int:
    value = options.get("num_inference_steps", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise BackendError(f"num_inference_steps must be a whole number from 1 to {maximum}")
    return value


class FluxSchnell(GradioInferProvider):
    """black-forest-labs/FLUX.1-schnell: 4 steps, fast."""

    label = "FLUX.1-schnell (official Space)"
    default_model = "flux"
    models = ("flux",)
    side_range = (256, 2048)
    url_setting = "flux_schnell_space_url"
    space_setting = "flux_schnell_space_id"
    parameters = ("prompt", "seed", "randomize_seed", "width", "height", "num_inference_steps")

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
        return [request.prompt, seed, False, width, height, steps(options, 4)]


class FluxDevOfficial(GradioInferProvider):
    """black-forest-labs/FLUX.1-dev."""

    label = "FLUX.1-dev (official Space)"
    default_model = "flux-dev"
    models = ("flux-dev",)
    side_range = (256, 2048)
    url_setting = "flux_dev_official_space_url"
    space_setting = "flux_dev_official_space_id"
    parameters = (
        "prompt", "seed", "randomize_seed", "width", "height", "guidance_scale",
        "num_inference_steps",
    )  # fmt: skip

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
        guidance = options.get("guidance_scale", 3.5)
        return [request.prompt, seed, False, width, height, guidance, steps(options, 28)]


class StableDiffusion35Large(GradioInferProvider):
    """stabilityai/stable-diffusion-3.5-large."""

    label = "Stable Diffusion 3.5 Large"
    default_model = "sd-3.5-large"
    models = ("sd-3.5-large",)
    side_range = (512, 1440)
    url_setting = "sd35_space_url"
    space_setting = "sd35_space_id"
    takes_negative = True
    parameters = (
        "prompt", "negative_prompt", "seed", "randomize_seed", "width", "height",
        "guidance_scale", "num_inference_steps",
    )  # fmt: skip

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
            request.negative or "",
            seed,
            False,
            width,
            height,
            options.get("guidance_scale", 4.5),
            steps(options, 40),
        ]


INFER_PROVIDERS: tuple[type[GradioInferProvider], ...] = (
    FluxSchnell,
    FluxDevOfficial,
    StableDiffusion35Large,
)
