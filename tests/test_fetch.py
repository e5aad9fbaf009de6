"""Downloading results: only images, only from the backend's own host, only so big."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imagine.errors import FetchError
from imagine.fetch import fetch_image, sniff_image
from imagine.responses import ImageResponse
from tests.fakes.space import NotAnImage, OtherHost, Oversize, RedirectOtherHost


async def result(engine, model="flux-dev", **kwargs) -> ImageResponse:
    async for item in engine.generate(model, prompt="a fox", **kwargs):
        if isinstance(item, ImageResponse):
            return item
    raise AssertionError("no image")


async def test_download_returns_the_exact_bytes_served(space, engine):
    image = await result(engine, width=512, height=256, seed=5)
    fetched = await engine.download(image)
    assert fetched.data == space.images_by_url[image.images[0]]
    assert fetched.mime == "image/png"
    assert fetched.filename.endswith(".png")
    assert Image.open(io.BytesIO(fetched.data)).size == (512, 256)


async def test_flux_predict_result_downloads_too(space, engine):
    image = await result(engine, "flux", width=64, height=64, seed=5)
    fetched = await engine.download(image, filename="imagine-5")
    assert fetched.filename == "imagine-5.png"
    assert Image.open(io.BytesIO(fetched.data)).size == (64, 64)


async def test_result_on_another_host_is_refused(space, engine):
    space.file_fault = OtherHost()
    image = await result(engine)
    assert image.images[0].startswith("http://localhost:")
    # The engine names the backend rather than its address (here every fake Space shares
    # 127.0.0.1, so the address is only hidden).
    with pytest.raises(FetchError, match=r"only \[address hidden\], the backend that made it"):
        await engine.download(image)
    assert space.served == []


async def test_redirect_to_another_host_is_refused(space, engine):
    space.file_fault = RedirectOtherHost()
    image = await result(engine)
    with pytest.raises(FetchError, match="from localhost"):
        await engine.download(image)
    assert space.served == []


async def test_bytes_that_are_not_an_image_are_refused(space, engine):
    space.file_fault = NotAnImage()
    image = await result(engine)
    with pytest.raises(FetchError, match="not an image"):
        await engine.download(image)


async def test_oversize_file_is_refused(space, engine):
    space.file_fault = Oversize(bytes=3 * 1024 * 1024)
    image = await result(engine)
    with pytest.raises(FetchError, match="larger than the 1 MiB download limit"):
        await fetch_image(
            engine.session, image.images[0], origin=image.origin, max_bytes=1024 * 1024
        )


async def test_oversize_is_caught_while_streaming_without_content_length(space, engine):
    """A server that sends no Content-Length is cut off once the cap is passed."""
    from aiohttp import web

    async def chunked(request):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 65536)
        return response

    app = web.Application()
    app.router.add_get("/big.png", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(FetchError, match="larger than"):
            await fetch_image(
                engine.session,
                f"http://127.0.0.1:{port}/big.png",
                origin=f"http://127.0.0.1:{port}",
                max_bytes=256 * 1024,
            )
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "javascript:alert(1)"]
)
async def test_only_http_urls(engine, url):
    with pytest.raises(FetchError, match="not http"):
        await fetch_image(engine.session, url, origin="http://127.0.0.1")


def test_sniffing():
    assert sniff_image(b"\x89PNG\r\n\x1a\n....") == ("image/png", "png")
    assert sniff_image(b"\xff\xd8\xff\xe0") == ("image/jpeg", "jpg")
    assert sniff_image(b"RIFF\0\0\0\0WEBPVP8 ") == ("image/webp", "webp")
    assert sniff_image(b"GIF89a") == ("image/gif", "gif")
    assert sniff_image(b"<svg") is None
