"""What providers yield: progress (``Reasoning``), previews and the final image, and what a
describe job ends with (``Description``).

These mirror gpt4free's response types, so code written against G4F reads the same here.
``str()`` of each is what a terminal user wants to see: the status, the image URL(s), the prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .i18n import Shown


@dataclass(slots=True)
class Reasoning:
    """A human-readable progress status, e.g. ``Generating 1.20s``: a message of ours
    (``_()``), or a backend's own words said to be so (``Verbatim``); never a plain ``str``,
    which is how a message that lost its translation looks to the type checker."""

    status: Shown

    def __str__(self) -> str:
        return self.status


@dataclass(slots=True)
class Notice(Reasoning):
    """A status about the job's route (a failover, a retry): it stays worth showing under the
    progress statuses that follow it, which would otherwise replace it within milliseconds."""


@dataclass(slots=True)
class ImagePreview:
    """An intermediate image some Spaces stream while they work.

    ``origin`` and ``backend`` are filled as for ``ImageResponse``, so a preview is downloaded
    under the same rules (``Engine.download`` takes either).
    """

    images: list[str]
    alt: str
    origin: str = ""
    backend: str = ""

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
    ignored: tuple[str, ...] = ()
    """Options of the request this backend could not use (e.g. ``("negative prompt",)``), so
    the result can say so instead of silently dropping them."""

    def __str__(self) -> str:
        return "\n".join(self.images)


@dataclass(slots=True)
class Description:
    """Prompts that would draw an image like a given one (``Engine.describe``): 1 to
    ``count`` of them, each clean, distinct and at most 1000 characters."""

    prompts: list[str]
    backend: str = ""
    model: str = ""

    def __str__(self) -> str:
        return "\n".join(self.prompts)


Response = Reasoning | ImagePreview | ImageResponse
