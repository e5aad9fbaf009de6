"""Image providers: ``G4F`` (the seed's entry point), ``FluxDev``, ``JanusPro7B``, the official
Spaces (``FluxSchnell``, ``FluxDevOfficial``, ``StableDiffusion35Large``), ``FluxKontext``
(image in) and ``OpenAIImages``; describe providers (image to prompts): ``JanusDescribe``,
``JanusOfficialDescribe`` and ``OpenAIVision``; the upscaler ``FinegrainUpscaler`` and the
fill model ``FluxFill`` (Zoom Out, Pan, Vary (Region)).

Which models exist, their aliases and which backends draw each live in ``imagine.backends``.
"""

from .base import ImageProvider, ImageRequest
from .describe import DescribeProvider, JanusDescribe, JanusOfficialDescribe, OpenAIVision
from .fill import FluxFill
from .flux_dev import FluxDev
from .g4f import G4F
from .infer import FluxDevOfficial, FluxSchnell, StableDiffusion35Large
from .janus import JanusPro7B
from .kontext import FluxKontext
from .openai import OpenAIImages
from .upscale import FinegrainUpscaler

__all__ = [
    "G4F",
    "DescribeProvider",
    "FinegrainUpscaler",
    "FluxDev",
    "FluxDevOfficial",
    "FluxFill",
    "FluxKontext",
    "FluxSchnell",
    "ImageProvider",
    "ImageRequest",
    "JanusDescribe",
    "JanusOfficialDescribe",
    "JanusPro7B",
    "OpenAIImages",
    "OpenAIVision",
    "StableDiffusion35Large",
]
