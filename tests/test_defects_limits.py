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
from imagine.engine import Engine
from imagine.errors import BackendError, FetchError
from imagine.fetch import FetchedImage, fetch_image
from imagine.gradio import Limits, describe_endpoint, predict, run_queued
from imagine.http import raise_for_status
from imagine.images import fit_image, image_size
from imagine.providers.openai import list_models
from imagine.responses import ImageResponse
from imagine.settings import Settings
from imagine.sse import SSEDecoder, SSEError
from imagine.zerogpu import ZeroGPUTokens

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


# -- 14: memory bounds against a misbehaving backend ----------------------------------------


def test_item14_sse_event_data_is_capped():
    """Many short ``data:`` lines without a blank line may not pile up into one huge event."""
    decoder = SSEDecoder(max_line=1024, max_event=64 * 1024)
    line = b"data: " + b"x" * 500 + b"\n"
    with pytest.raises(SSEError, match="more than 64 KiB"):
        for _ in range(1000):  # ~500 KB in all, each line far under max_line
            decoder.feed(line)
    # Events under the cap still come through, and the count starts afresh for each event.
    decoder = SSEDecoder(max_line=1024, max_event=64 * 1024)
    for _ in range(3):
        (event,) = decoder.feed(line * 100 + b"\n")
        assert len(event.data) == 100 * 500 + 99


async def test_item14_endless_event_fails_the_job_with_a_clear_error():
    """A Space streaming one endless event: the job fails early, not when memory runs out."""
    flood = Flood(
        b"data: " + b"x" * (64 * 1024 - 7) + b"\n", 48 * MiB, content_type="text/event-stream"
    )

    async def join(request: web.Request) -> web.Response:
        return web.json_response({"event_id": "e1"})

    routes = {
        ("POST", "/gradio_api/queue/join"): join,
        ("GET", "/gradio_api/queue/data"): flood.handle,
    }
    async with serve(routes) as base, aiohttp.ClientSession() as session:
        with pytest.raises(BackendError, match=r"^Space X sent an event of more than 16 MiB"):
            async for _ in run_queued(
                session,
                base,
                fn_index=0,
                trigger_id=None,
                data=[],
                headers={},
                alt="a fox",
                backend="Space X",
                limits=Limits(total=30),
            ):
                pass
    assert not flood.finished
    assert flood.sent < 40 * MiB


async def huge_json(name: str, base: str, session: aiohttp.ClientSession) -> None:
    limits = Limits(total=30)
    if name == "predict":
        await predict(
            session, f"{base}/run/predict", payload={}, headers={}, backend="B", limits=limits
        )
    elif name == "queue/join":
        async for _ in run_queued(
            session, base, fn_index=0, trigger_id=None, data=[], headers={}, alt="",
            backend="B", limits=limits,
        ):  # fmt: skip
            pass
    elif name == "info":
        await describe_endpoint(session, base, "/infer", backend="B", limits=limits)
    elif name == "models":
        await list_models(session, base, None)
    elif name == "space page":
        await ZeroGPUTokens(base).get(session, "owner/space")
    elif name == "jwt":
        await ZeroGPUTokens(base, hf_token="hf_x")._from_account(session, "owner/space")


@pytest.mark.parametrize(
    ("name", "method", "path", "limit"),
    [
        ("predict", "POST", "/run/predict", "8 MiB"),
        ("queue/join", "POST", "/gradio_api/queue/join", "8 MiB"),
        ("info", "GET", "/gradio_api/info", "8 MiB"),
        ("models", "GET", "/models", "8 MiB"),
        ("space page", "GET", "/spaces/owner/space", "8 MiB"),
        ("jwt", "GET", "/api/spaces/owner/space/jwt", "8 MiB"),
    ],
)
async def test_item14_huge_json_body_is_refused(name, method, path, limit):
    """JSON answers (and the Space page) are read up to a cap, not to the end."""
    flood = Flood(b" " * (64 * 1024), 48 * MiB, head=b'{"data": [1], "x": "')
    async with serve({(method, path): flood.handle}) as base, aiohttp.ClientSession() as session:
        with pytest.raises(BackendError, match=f"answered with more than {limit}"):
            await huge_json(name, base, session)
    assert not flood.finished
    assert flood.sent < 40 * MiB


async def test_item14_huge_error_body_is_read_as_a_prefix():
    """An error answer is read only as far as its message needs, and still reported."""
    flood = Flood(
        b"overloaded " * 6000, 48 * MiB, status=503, content_type="text/plain", head=b"Busy: "
    )
    async with (
        serve({("GET", "/x"): flood.handle}) as base,
        aiohttp.ClientSession() as session,
        session.get(f"{base}/x") as response,
    ):
        with pytest.raises(BackendError, match=r"^Response 503: Busy: overloaded") as caught:
            await raise_for_status(response, backend="B")
    assert caught.value.transient
    assert not flood.finished
    assert flood.sent < 40 * MiB


async def test_item14_openai_answer_cap_follows_max_image_bytes():
    """A b64_json answer may be as big as an allowed image in base64, and no bigger."""
    sizes = iter([14 * MiB, 20 * MiB])

    async def complete(request: web.Request) -> web.StreamResponse:
        size = next(sizes)
        response = web.StreamResponse()
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b'{"data": [{"b64_json": "')
            for _ in range(size // (64 * 1024)):
                await response.write(b"A" * (64 * 1024))
            await response.write(b'"}]}')
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    async with serve({("POST", "/v1/images/generations"): complete}) as base:
        settings = Settings.from_env(
            {
                "OPENAI_BASE_URL": f"{base}/v1",
                "OPENAI_IMAGE_MODELS": "big",
                "MAX_IMAGE_BYTES": str(12 * MiB),
            }
        )
        async with Engine(settings) as engine:
            items = [item async for item in engine.generate("big", prompt="a fox")]
            (image,) = [i for i in items if isinstance(i, ImageResponse)]
            assert len(image.images[0]) > 14 * MiB  # above the plain JSON cap: allowed
            with pytest.raises(BackendError, match="answered with more than 17 MiB"):
                async for _ in engine.generate("big", prompt="a fox"):
                    pass


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
