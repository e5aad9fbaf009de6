"""What providers yield: progress (``Reasoning``), previews and the final image.

These mirror gpt4free's response types, so code written against G4F reads the same here.
``str()`` of each is what a terminal user wants to see: the status, or the image URL(s).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Reasoning:
    """A human-readable progress status, e.g. ``Generating 1.20s``."""

    status: str

    def __str__(self) -> str:
        return self.status


@dataclass(slots=True)
class Notice(Reasoning):
    """A status about the job's route (a failover, a retry): it stays worth showing under the
    progress statuses that follow it, which would otherwise replace it within milliseconds."""


@dataclass(slots=True)
class ImagePreview:
    """An intermediate image some Spaces stream while they work."""

    images: list[str]
    alt: str

    def __str__(self) -> str:
        return "\n".join(self.images)


@dataclass(slots=True)
class ImageResponse:
    """The finished image(s), plus what was actually used to make them.

    ``origin`` is the endpoint that produced the URLs: downloads are allowed from its host only.
    """

    images: list[str]
    alt: str
    model: str = ""
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    origin: str = ""
    backend: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return "\n".join(self.images)


Response = Reasoning | ImagePreview | ImageResponse
