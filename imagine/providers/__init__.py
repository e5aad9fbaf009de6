"""Image providers: ``G4F`` (the seed's entry point), ``FluxDev``, ``JanusPro7B``, the official
Spaces (``FluxSchnell``, ``FluxDevOfficial``, ``StableDiffusion35Large``) and ``OpenAIImages``.

Which models exist, their aliases and which backends draw each live in ``imagine.backends``.
"""

from .base import ImageProvider, ImageRequest
from .flux_dev import FluxDev
from .g4f import G4F
from .infer import FluxDevOfficial, FluxSchnell, StableDiffusion35Large
from .janus import JanusPro7B
from .openai import OpenAIImages

__all__ = [
    "G4F",
    "FluxDev",
    "FluxDevOfficial",
    "FluxSchnell",
    "ImageProvider",
    "ImageRequest",
    "JanusPro7B",
    "OpenAIImages",
    "StableDiffusion35Large",
]
