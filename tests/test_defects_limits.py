"""Defects 12 and 14-17 of the review: memory bounds, image headers, pixel caps, origins.

Every test talks real HTTP to small aiohttp servers on 127.0.0.1 (no mocks of the code under
test) or feeds real image bytes made by Pillow.
"""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from imagine.errors import BackendError, FetchError
from imagine.fetch import fetch_image
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


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


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


# -- 17: downloads only from the backend's origin -------------------------------------------


class Files:
    """Serves one PNG at ``/img.png`` and counts the requests it answers."""

    def __init__(self) -> None:
        self.hits = 0
        self.data = png_bytes(8, 8)

    async def image(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(body=self.data, content_type="image/png")


async def test_item17_redirect_to_another_port_of_the_same_host_is_refused():
    other = Files()
    async with serve({("GET", "/img.png"): other.image}) as b:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{b}/img.png")

        async with (
            serve({("GET", "/img.png"): redirect}) as a,
            aiohttp.ClientSession() as session,
        ):
            with pytest.raises(FetchError, match="another port or scheme"):
                await fetch_image(session, f"{a}/img.png", origin=a)
    assert other.hits == 0


async def test_item17_redirect_within_the_same_origin_still_works():
    files = Files()

    async def relative(request: web.Request) -> web.Response:
        raise web.HTTPFound("/img.png")

    async def absolute(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://{request.host}/img.png")

    routes = {("GET", "/img.png"): files.image, ("GET", "/a"): relative, ("GET", "/b"): absolute}
    async with serve(routes) as a, aiohttp.ClientSession() as session:
        for path in ("/a", "/b", "/img.png"):
            fetched = await fetch_image(session, f"{a}{path}", origin=f"{a}/gradio_api")
            assert fetched.data == files.data
    assert files.hits == 3


async def test_item17_first_url_on_another_port_or_scheme_is_refused():
    files = Files()
    async with (
        serve({("GET", "/img.png"): files.image}) as a,
        serve({("GET", "/img.png"): files.image}) as b,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(FetchError, match="another port or scheme"):
            await fetch_image(session, f"{b}/img.png", origin=a)
        port = a.rsplit(":", 1)[1]
        with pytest.raises(FetchError, match="another port or scheme"):
            await fetch_image(session, f"{a}/img.png", origin=f"https://127.0.0.1:{port}")
        with pytest.raises(FetchError, match="another port or scheme"):
            await fetch_image(session, "http://127.0.0.1/img.png", origin="https://127.0.0.1")
    assert files.hits == 0


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
