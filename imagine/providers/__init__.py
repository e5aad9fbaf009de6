"""Image providers: ``G4F`` (the seed's entry point), ``FluxDev``, ``JanusPro7B``."""

from .base import ImageProvider, ImageRequest
from .flux_dev import FluxDev
from .g4f import G4F
from .janus import JanusPro7B
from .registry import list_models, provider_for, resolve_model

__all__ = [
    "G4F",
    "FluxDev",
    "ImageProvider",
    "ImageRequest",
    "JanusPro7B",
    "list_models",
    "provider_for",
    "resolve_model",
]
