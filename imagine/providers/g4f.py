"""The seed's ``G4F`` provider: one entry point that routes each model to its Space.

``flux-dev`` goes to FluxDev; a model containing ``flux`` (``flux``, alias ``flux-schnell``)
is a direct ``POST`` to the G4F flux endpoint, with ``Generating 1.20s`` ticks every 0.2 s
while it runs; everything else goes to the parent, Janus-Pro-7B.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..errors import BackendError
from ..gradio import file_url, new_session_hash, predict
from ..i18n import Number, _
from ..responses import ImageResponse, Reasoning, Response
from .base import (
    Context,
    ImageRequest,
    forget_rejected_token,
    gpu_headers,
    integer_or_none,
    ticking,
)
from .flux_dev import FluxDev
from .janus import JanusPro7B


class G4F(JanusPro7B):
    label = "G4F flux"
    default_model = "flux"
    model_aliases: ClassVar[dict[str, str]] = {"flux-schnell": "flux"}
    models: ClassVar[tuple[str, ...]] = ("flux", "flux-dev", *JanusPro7B.models)
    flux_fn_index: ClassVar[int] = 3
    flux_trigger_id: ClassVar[int] = 10

    @classmethod
    def generate(
        cls, context: Context, request: ImageRequest, **options: Any
    ) -> AsyncGenerator[Response, None]:
        """The routed provider's own generator, returned as is (no extra layer per item)."""
        if request.model == "flux-dev":
            return FluxDev.generate(context, request, **options)
        if cls.default_model in request.model:
            return cls._flux(context, request)
        # Explicitly the parent's class, not ``super()``: G4F's own constants (label,
        # fn_index…) describe the flux endpoint and must not leak into Janus jobs.
        return JanusPro7B.generate(context, request, **options)

    @classmethod
    async def _flux(cls, context: Context, request: ImageRequest) -> AsyncGenerator[Response, None]:
        settings = context.settings
        url = settings.g4f_flux_url
        space = settings.g4f_flux_space_id
        seed = cls.seed_for(request)
        headers = gpu_headers(context, space)
        if headers is None:
            yield Reasoning(_("Acquiring GPU Token"))
            headers = (await context.tokens.get(context.session, space)).headers()
        payload = {
            "data": [request.prompt, seed, request.width, request.height, True, 1],
            "event_data": None,
            "fn_index": cls.flux_fn_index,
            "trigger_id": cls.flux_trigger_id,
            "session_hash": new_session_hash(),
        }
        started = time.monotonic()
        task = asyncio.ensure_future(
            predict(
                context.session,
                url,
                payload=payload,
                headers=headers,
                backend=cls.label,
                limits=context.limits,
                proxy=context.proxy,
            )
        )
        try:
            async with contextlib.aclosing(ticking(task, started)) as statuses:
                async for status in statuses:
                    yield status
            data = task.result()
        except BackendError as exc:
            forget_rejected_token(context, space, exc)
            raise
        root = _space_root(url)
        image = file_url(root, data[0], prefix="")
        if image is None:
            raise BackendError(f"{cls.label} answered without an image", backend=cls.label)
        reported = integer_or_none(data[1]) if len(data) > 1 else None
        yield ImageResponse(
            images=[image],
            alt=request.prompt,
            model=request.model,
            seed=reported if reported is not None else seed,
            width=request.width,
            height=request.height,
            origin=url,
            backend=cls.label,
            ignored=cls.ignored(request),
        )
        yield Reasoning(_("Finished {seconds}s", seconds=Number(context.elapsed(), 2)))


def _space_root(predict_url: str) -> str:
    """``https://x.hf.space/run/predict`` → ``https://x.hf.space`` (where ``file=`` lives)."""
    parts = urlsplit(predict_url)
    path = parts.path
    for suffix in ("/run/predict", "/api/predict"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"
