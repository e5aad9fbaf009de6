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

from imagine import images
from imagine.errors import BackendError, FetchError
from imagine.fetch import FetchedImage, fetch_image
from imagine.gradio import Limits, predict
from imagine.images import fit_image, image_size

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


# -- 15: a JPEG whose size marker comes late ------------------------------------------------


def test_item15_jpeg_with_a_large_icc_profile_before_sof_is_read():
    """The size marker after a 200 KB ICC profile is found by reading further."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 20, 30)).save(buffer, "JPEG", icc_profile=b"x" * 200_000)
    data = buffer.getvalue()
    assert data.index(b"\xff\xc0") > 64 * 1024  # SOF0 really comes after the first 64 KiB
    image = FetchedImage.from_bytes(data, "image/jpeg", "late-sof.jpg")
    assert image_size(image) == (640, 480)
    assert image_size(data) == (640, 480)


def test_item15_truncated_image_is_still_refused():
    """Reading further does not make a broken file readable."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 20, 30)).save(buffer, "JPEG", icc_profile=b"x" * 200_000)
    image = FetchedImage.from_bytes(buffer.getvalue()[:150_000], "image/jpeg", "cut.jpg")
    with pytest.raises(FetchError, match="could not be read"):
        image_size(image)


# -- 16: a decompression-bomb cap near what was asked ---------------------------------------


def gradient_jpeg(width: int, height: int) -> bytes:
    ramp = Image.linear_gradient("L").resize((width, height))
    picture = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90), ramp))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_item16_pixel_cap_is_near_the_request():
    assert images.pixel_cap(2048, 2048) == 4096 * 4096
    assert images.pixel_cap(2048, 512) == 4096 * 4096
    assert images.pixel_cap(512, 512) == 2048 * 2048  # the floor
    assert images.pixel_cap(32, 32) >= 1024 * 1024  # a tiny request still takes a backend's 1024²
    assert images.pixel_cap(32, 32) >= 384 * 384


def test_item16_image_size_refuses_images_far_beyond_the_request():
    """A 3000x3000 header is 9 Mpx: refused for a 512x512 job (cap 4 Mpx), fine otherwise."""
    data = png_bytes(3000, 3000)
    image = FetchedImage.from_bytes(data, "image/png", "big.png")
    with pytest.raises(FetchError, match="decompression bomb"):
        image_size(image, max_pixels=images.pixel_cap(512, 512))
    with pytest.raises(FetchError, match="decompression bomb"):
        image_size(data, max_pixels=images.pixel_cap(512, 512))
    assert image_size(image) == (3000, 3000)
    assert image_size(image, max_pixels=images.pixel_cap(2048, 2048)) == (3000, 3000)
    assert image_size(png_bytes(1024, 1024), max_pixels=images.pixel_cap(32, 32)) == (1024, 1024)


def test_item16_fit_image_refuses_images_beyond_the_cap():
    data = gradient_jpeg(3000, 3000)
    image = FetchedImage.from_bytes(data, "image/jpeg", "big.jpg")
    with pytest.raises(FetchError, match="decompression bomb"):
        fit_image(image, len(data) - 1, max_pixels=images.pixel_cap(512, 512))
    fitted, reencoded = fit_image(image, len(data) - 1)
    assert reencoded
    assert image_size(fitted) == (3000, 3000)


def test_item16_fit_image_decodes_a_large_jpeg_at_reduced_scale():
    """A JPEG twice the asked size on each side is decoded at half scale (``draft``)."""
    data = gradient_jpeg(2048, 2048)
    image = FetchedImage.from_bytes(data, "image/jpeg", "big.jpg")
    cap = images.pixel_cap(1024, 1024)
    fitted, reencoded = fit_image(image, len(data) - 1, max_pixels=cap)
    assert reencoded
    assert image_size(fitted) == (1024, 1024)
    # Without a request to go by, a picture that fits at full size keeps it.
    fitted, _ = fit_image(image, len(data) - 1)
    assert image_size(fitted) == (2048, 2048)


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
