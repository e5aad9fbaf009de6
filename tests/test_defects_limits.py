"""Defects 12 and 14-17 of the review: memory bounds, image headers, pixel caps, origins.

Every test talks real HTTP to small aiohttp servers on 127.0.0.1 (no mocks of the code under
test) or feeds real image bytes made by Pillow.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from imagine.errors import BackendError
from imagine.gradio import Limits, predict

MiB = 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: dict[tuple[str, str], Handler]) -> AsyncIterator[str]:
    """A local server with the given ``(method, path) -> handler`` routes; yields its base URL."""
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Flood:
    """A handler streaming ``total`` bytes made of ``piece`` (after an optional ``head``),
    counting what it managed to send before the client hung up."""

    def __init__(
        self,
        piece: bytes,
        total: int,
        *,
        head: bytes = b"",
        status: int = 200,
        content_type: str = "application/json",
    ) -> None:
        self.piece, self.total, self.head = piece, total, head
        self.status, self.content_type = status, content_type
        self.sent = 0
        self.finished = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=self.status)
        response.content_type = self.content_type
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(self.head)
            self.sent += len(self.head)
            while self.sent < self.total:
                await response.write(self.piece)
                self.sent += len(self.piece)
            await response.write_eof()
            self.finished = True
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response


# -- 12: connection errors do not reveal private backends' addresses ------------------------


async def test_item12_connection_error_hides_host_and_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(BackendError) as caught:
            await predict(
                session,
                f"http://127.0.0.1:{port}/run/predict",
                payload={},
                headers={},
                backend="G4F flux",
                limits=Limits(total=10),
            )
    message = str(caught.value)
    assert message == "Could not connect to G4F flux"
    assert "127.0.0.1" not in message
    assert str(port) not in message
    assert caught.value.transient
