"""The models we serve, their aliases, and the provider that draws each."""

from __future__ import annotations

from .base import ImageProvider
from .g4f import G4F

PROVIDERS: dict[str, type[ImageProvider]] = {model: G4F for model in G4F.models}
ALIASES: dict[str, str] = dict(G4F.model_aliases)


def list_models(*, aliases: bool = False) -> list[str]:
    """Model names in a stable order (canonical names, then aliases when asked)."""
    names = list(PROVIDERS)
    if aliases:
        names += [alias for alias in ALIASES if alias not in PROVIDERS]
    return names


def resolve_model(name: str | None) -> str:
    """The canonical model for ``name`` (default ``flux``); ``UnknownModel`` lists the models."""
    return G4F.get_model(name)


def provider_for(model: str) -> type[ImageProvider]:
    return PROVIDERS[resolve_model(model)]
