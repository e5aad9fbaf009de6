"""Reading a Discord attachment: refused early on Discord's word, capped while downloading,
and stripped before anything else sees it. A local server stands in for Discord's CDN."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import discord
import pytest
from aiohttp import web
from discord.http import HTTPClient
from discord.state import ConnectionState
from PIL import ExifTags, Image

from discord_jobs import attachments
from discord_jobs.attachments import read_attachment
from imagine.errors import BadInput

MiB = 2**20
QUERY = "ex=6650f1a2&is=664fa022&hm=0123abcd"
"""Discord signs attachment URLs with these; the bot must ask for the URL as given."""


def gps_jpeg(size=(320, 200)) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (52.0, 31.0, 12.5), 3: "E"})
    buffer = io.BytesIO()
    Image.new("RGB", size, "orange").save(buffer, "JPEG", exif=exif, quality=90)
    return buffer.getvalue()


@dataclass
class FakeCDN:
    """Discord's CDN on 127.0.0.1: serves ``files``, records every request."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    streamed: int = 0
    stream_finished: bool = False
    redirect_to: str = ""
    base: str = ""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/attachments/{channel}/{id}/{name}", self.serve)
        app.router.add_get("/liar/{name}", self.endless)
        app.router.add_get("/moved/{name}", self.moved)
        app.router.add_get("/slow/{name}", self.slow)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(str(request.rel_url))
        data = self.files.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """Far more than the attachment's declared size, with no Content-Length to warn."""
        self.requests.append(str(request.rel_url))
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"\xff\xd8\xff\xe0" + b"\0" * (64 * 1024 - 4)
        try:
            for _ in range(64 * MiB // len(chunk)):
                await response.write(chunk)
                self.streamed += len(chunk)
            self.stream_finished = True
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    async def moved(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(str(request.rel_url))
        raise web.HTTPFound(self.redirect_to)

    async def slow(self, request: web.Request) -> web.StreamResponse:
        """Answers nothing until the test is over."""
        self.requests.append(str(request.rel_url))
        await self.released.wait()
        return web.Response(body=gps_jpeg())


async def serve(cdn: FakeCDN) -> AsyncIterator[FakeCDN]:
    runner = web.AppRunner(cdn.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    cdn.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield cdn
    finally:
        cdn.released.set()
        await runner.cleanup()


@pytest.fixture
async def cdn() -> AsyncIterator[FakeCDN]:
    async for running in serve(FakeCDN()):
        yield running


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeCDN]:
    """Another origin (same host, another port): where a redirect must not lead."""
    async for running in serve(FakeCDN()):
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def state() -> AsyncIterator[ConnectionState]:
    """The leaf of discord.py a real ``discord.Attachment`` needs; it makes no requests."""
    http = HTTPClient(asyncio.get_running_loop())
    yield ConnectionState(dispatch=lambda *args: None, handlers={}, hooks={}, http=http)
    await http.close()


def attachment(
    state: ConnectionState,
    url: str,
    *,
    filename: str = "holiday.jpg",
    size: int = 1000,
    content_type: str | None = "image/jpeg",
    width: int | None = None,
    height: int | None = None,
) -> discord.Attachment:
    """An attachment from the payload Discord sends (``resolved.attachments`` of a command)."""
    payload = {
        "id": "1234567890",
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url.replace("/attachments/", "/proxied/"),
    }
    if content_type is not None:
        payload["content_type"] = content_type
    if width is not None:
        payload["width"], payload["height"] = width, height
    return discord.Attachment(data=payload, state=state)


def cdn_url(cdn: FakeCDN, name: str) -> str:
    return f"{cdn.base}/attachments/111/222/{name}?{QUERY}"


# -- refused on Discord's word, before any download -------------------------------------------


async def test_a_30_mib_attachment_is_refused_without_a_request(cdn, session, state):
    cdn.files["big.jpg"] = gps_jpeg()
    big = attachment(state, cdn_url(cdn, "big.jpg"), size=30 * MiB)
    with pytest.raises(BadInput, match=r"^That image is 30 MiB; the limit is 10 MiB\.$"):
        await read_attachment(session, big)
    assert cdn.requests == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/pdf", "video/mp4"])
async def test_a_declared_non_image_is_refused_without_a_request(cdn, session, state, content_type):
    cdn.files["notes.jpg"] = gps_jpeg()
    notes = attachment(state, cdn_url(cdn, "notes.jpg"), content_type=content_type)
    with pytest.raises(BadInput, match=r"^That file is not an image \(PNG, JPEG, WebP or GIF\)"):
        await read_attachment(session, notes)
    assert cdn.requests == []


async def test_dimensions_discord_reports_over_the_cap_are_refused_without_a_request(
    cdn, session, state
):
    cdn.files["wide.jpg"] = gps_jpeg()
    wide = attachment(state, cdn_url(cdn, "wide.jpg"), width=20000, height=20000)
    with pytest.raises(BadInput, match=r"^That image is 20000×20000 pixels; the limit is 4096"):
        await read_attachment(session, wide)
    assert cdn.requests == []


# -- the download -----------------------------------------------------------------------------


async def test_a_good_jpeg_with_gps_comes_back_stripped(cdn, session, state):
    original = gps_jpeg()
    cdn.files["holiday.jpg"] = original
    photo = attachment(
        state,
        cdn_url(cdn, "holiday.jpg"),
        size=len(original),
        width=320,
        height=200,
        content_type="image/jpeg; charset=binary",
    )
    result = await read_attachment(session, photo)

    assert cdn.requests == [f"/attachments/111/222/holiday.jpg?{QUERY}"]  # the URL as given
    assert result.sha256 == hashlib.sha256(original).hexdigest()
    assert (result.filename, result.mime, result.width, result.height) == (
        "holiday.jpg",
        "image/jpeg",
        320,
        200,
    )
    output = Image.open(io.BytesIO(result.data))
    assert len(output.getexif()) == 0 and "exif" not in output.info
    assert b"Exif" not in result.data and b"SecretCam" not in result.data


async def test_an_attachment_without_a_declared_type_is_judged_by_its_bytes(cdn, session, state):
    cdn.files["old.jpg"] = gps_jpeg()
    old = attachment(state, cdn_url(cdn, "old.jpg"), content_type=None)
    assert (await read_attachment(session, old)).mime == "image/jpeg"
    cdn.files["fake.png"] = b"<html>not an image</html>"
    fake = attachment(state, cdn_url(cdn, "fake.png"), content_type="image/png")
    with pytest.raises(BadInput, match=r"^That file is not an image"):
        await read_attachment(session, fake)


async def test_a_server_sending_more_than_declared_is_cut_off_at_the_cap(cdn, session, state):
    liar = attachment(state, f"{cdn.base}/liar/small.jpg?{QUERY}", size=1000)
    with pytest.raises(BadInput, match=r"^That image is over the 10 MiB limit\.$"):
        await read_attachment(session, liar)
    await asyncio.sleep(0.2)  # let the server notice the closed connection
    assert len(cdn.requests) == 1
    assert not cdn.stream_finished
    assert cdn.streamed < 40 * MiB  # of 64: the client stopped reading near 10 MiB


async def test_a_lower_cap_applies_to_the_download_too(cdn, session, state):
    original = gps_jpeg((1200, 900))
    cdn.files["photo.jpg"] = original
    photo = attachment(state, cdn_url(cdn, "photo.jpg"), size=1000)  # declared: under the cap
    with pytest.raises(BadInput, match="over the 1 KiB limit"):
        await read_attachment(session, photo, max_bytes=1024)
    assert len(original) > 1024


async def test_a_redirect_to_another_origin_is_refused(cdn, elsewhere, session, state):
    elsewhere.files["x.jpg"] = gps_jpeg()
    cdn.redirect_to = cdn_url(elsewhere, "x.jpg")
    moved = attachment(state, f"{cdn.base}/moved/x.jpg?{QUERY}")
    with pytest.raises(BadInput, match="could not be downloaded from Discord"):
        await read_attachment(session, moved)
    assert elsewhere.requests == []


async def test_a_redirect_on_the_same_origin_is_followed(cdn, session, state):
    cdn.files["x.jpg"] = gps_jpeg()
    cdn.redirect_to = cdn_url(cdn, "x.jpg")
    moved = attachment(state, f"{cdn.base}/moved/x.jpg?{QUERY}")
    assert (await read_attachment(session, moved)).width == 320


async def test_a_missing_file_is_a_clear_error(cdn, session, state):
    gone = attachment(state, cdn_url(cdn, "gone.jpg"))
    with pytest.raises(BadInput, match=r"^That image could not be downloaded from Discord"):
        await read_attachment(session, gone)


async def test_a_silent_server_runs_into_the_time_limit(cdn, session, state):
    slow = attachment(state, f"{cdn.base}/slow/x.jpg")
    started = asyncio.get_running_loop().time()
    with pytest.raises(BadInput, match=r"took longer than 0\.3s"):
        await read_attachment(session, slow, time_limit=0.3)
    assert asyncio.get_running_loop().time() - started < 3


async def test_decoding_runs_off_the_event_loop(cdn, session, state, monkeypatch):
    threads = []
    real = attachments.prepare_input_image

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(attachments, "prepare_input_image", spy)
    cdn.files["a.jpg"] = gps_jpeg()
    await read_attachment(session, attachment(state, cdn_url(cdn, "a.jpg")))
    assert len(threads) == 1 and threads[0].startswith("input-image")
