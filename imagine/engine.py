"""The engine as a program uses it for its whole life: one session, one token cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp

from .fetch import FetchedImage, fetch_image
from .http import new_session
from .providers.registry import list_models, provider_for, resolve_model
from .responses import ImageResponse, Response
from .settings import Settings
from .zerogpu import ZeroGPUTokens


class Engine:
    """Draws images for many jobs at once over one ``aiohttp.ClientSession``.

    Use ``async with Engine() as engine`` (or ``start``/``close``); pass a session to share
    one the program already has.
    """

    def __init__(
        self, settings: Settings | None = None, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._session = session
        self._owns_session = session is None
        self.tokens = ZeroGPUTokens(self.settings.hf_endpoint, hf_token=self.settings.hf_token)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = new_session()
            self._owns_session = True
        return self._session

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    @staticmethod
    def models(*, aliases: bool = False) -> list[str]:
        return list_models(aliases=aliases)

    @staticmethod
    def resolve_model(name: str | None) -> str:
        return resolve_model(name)

    def generate(
        self,
        model: str | None = None,
        messages: Iterable[Mapping[str, Any]] | None = None,
        *,
        prompt: str | None = None,
        width: Any = 1024,
        height: Any = 1024,
        seed: Any = None,
        proxy: str | None = None,
        **options: Any,
    ) -> AsyncIterator[Response]:
        """Statuses, maybe previews, then one ``ImageResponse`` (see the providers).

        The request is checked at once: ``BadInput`` is raised by this call, not later.
        """
        name = resolve_model(model)
        return provider_for(name).start(
            name,
            messages,
            prompt=prompt,
            width=width,
            height=height,
            seed=seed,
            proxy=proxy,
            session=self.session,
            settings=self.settings,
            tokens=self.tokens,
            **options,
        )

    async def download(
        self, image: ImageResponse, index: int = 0, *, filename: str | None = None
    ) -> FetchedImage:
        """The bytes of one result image, fetched under ``imagine.fetch``'s rules."""
        return await fetch_image(
            self.session,
            image.images[index],
            origin=image.origin,
            max_bytes=self.settings.max_image_bytes,
            time_limit=min(self.settings.job_timeout_seconds, 120.0),
            filename=filename,
        )
