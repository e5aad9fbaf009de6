"""The queue stream against a small real server: places read in batches while others are
ahead (less often far back in a slow queue), the idle limit kept by one timer, JSON that
orjson refuses still read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from imagine import gradio
from imagine.errors import BackendTimeout
from imagine.gradio import Completed, Limits, run_queued
from imagine.i18n import Language, Text, texts
from imagine.responses import Reasoning

EVENT = "e1"


@asynccontextmanager
async def space(events: list[tuple[float, str]]) -> AsyncIterator[str]:
    """A Space whose stream sends ``events`` (seconds to wait first, raw JSON text), then
    stays silent until the client goes."""

    async def join(request: web.Request) -> web.Response:
        return web.json_response({"event_id": EVENT})

    async def data(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for wait, text in events:
            await asyncio.sleep(wait)
            await response.write(f"data: {text}\n\n".encode())
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_post("/gradio_api/queue/join", join)
    app.router.add_get("/gradio_api/queue/data", data)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def message(kind: str, **fields: object) -> str:
    return json.dumps({"msg": kind, "event_id": EVENT, **fields})


def place(rank: int) -> str:
    return message("estimation", rank=rank, queue_size=10, rank_eta=None)


DONE = message("process_completed", success=True, output={"data": ["/tmp/x.png", 7]})


async def run(base: str, limits: Limits | None = None) -> list[object]:
    async with aiohttp.ClientSession() as session:
        return [
            item
            async for item in run_queued(
                session, base, fn_index=2, trigger_id=4, data=[], headers={}, alt="a fox",
                backend="Space X", limits=limits or Limits(total=30),
            )
        ]  # fmt: skip


async def test_places_are_read_in_batches_and_the_latest_is_shown():
    events = [(0.0, place(5))] + [(0.02, place(r)) for r in (4, 3, 2, 1, 0)]
    events += [(0.02, message("process_starts")), (0.3, DONE)]
    async with space(events) as base:
        items = await run(base)
    statuses = [i.status for i in items if isinstance(i, Reasoning)]
    places = [s for s in statuses if s.startswith("Waiting for a GPU")]
    assert places[0] == "Waiting for a GPU: 6 of 10 in the Space's queue"
    assert places[-1] == "Waiting for a GPU: 1 of 10 in the Space's queue"
    assert len(places) < 6  # ranks 4..1 came within one pace: only the latest was told
    assert statuses[-1] == "Generating"
    assert isinstance(items[-1], Completed) and items[-1].data == ["/tmp/x.png", 7]


async def test_a_first_place_is_read_at_once():
    """At rank 0 the job may start any moment: its stream is read as messages arrive."""
    events = [(0.0, place(0)), (0.0, message("process_starts")), (0.0, DONE)]
    async with space(events) as base, aiohttp.ClientSession() as session:
        started = time.monotonic()
        async for item in run_queued(
            session, base, fn_index=2, trigger_id=4, data=[], headers={}, alt="a fox",
            backend="Space X", limits=Limits(total=30),
        ):  # fmt: skip
            if isinstance(item, Completed):
                break
    assert time.monotonic() - started < gradio.QUEUE_PACE_SECONDS


@pytest.mark.parametrize("rank", [0, 3])
async def test_silence_fails_the_job_after_the_idle_limit(rank):
    """Waiting in the queue or not, a Space that goes silent is given up on after
    ``Limits.idle`` (kept by one timer per stream, not by aiohttp's sock_read)."""
    async with space([(0.0, place(rank))]) as base:
        started = time.monotonic()
        with pytest.raises(BackendTimeout, match=r"Space X sent nothing for 0\.4s"):
            await run(base, Limits(total=30, idle=0.4))
    assert 0.35 < time.monotonic() - started < 3


async def test_a_busy_stream_is_not_idle():
    """Messages more often than the idle limit keep the job alive past it."""
    events = [(0.0, place(0)), (0.0, message("process_starts"))]
    events += [(0.15, message("heartbeat")) for _ in range(6)] + [(0.1, DONE)]
    async with space(events) as base:
        items = await run(base, Limits(total=30, idle=0.4))
    assert isinstance(items[-1], Completed)


async def test_json_that_orjson_refuses_is_still_read():
    """NaN is not JSON, but Python's json reads it (and Gradio servers have sent it)."""
    odd = '{"msg": "estimation", "event_id": "e1", "rank": 0, "queue_size": 1, "rank_eta": NaN}'
    async with space([(0.0, odd), (0.0, DONE)]) as base:
        items = await run(base)
    assert isinstance(items[-1], Completed)


def test_a_job_far_back_in_a_slow_queue_is_read_less_often():
    """Half the wait the queue's pace so far predicts, within 0.25 s to 1 s."""
    pace, longest = gradio.QUEUE_PACE_SECONDS, gradio.MAX_QUEUE_PACE_SECONDS
    assert gradio.queue_pace((10.0, 40), 10.0, 40) == pace  # the queue's pace is not known yet
    assert gradio.queue_pace((10.0, 40), 11.0, 40) == pace  # nor while it has not moved
    assert gradio.queue_pace((10.0, 40), 11.0, 20) == 0.5  # 20 a second: 1 s to go
    assert gradio.queue_pace((10.0, 40), 11.0, 36) == longest  # 4 a second: 9 s to go
    assert gradio.queue_pace((10.0, 40), 11.0, 4) == pace  # 36 a second: 0.1 s to go


def progress(desc: str | None, index: int | None = 3, length: int | None = 28) -> Reasoning:
    stream = gradio.GradioStream(base_url="http://space", alt="a fox", backend="Space X")
    unit = {"index": index, "length": length, "unit": "steps", "progress": None, "desc": desc}
    item = stream.handle({"msg": "progress", "progress_data": [unit]})
    assert isinstance(item, Reasoning)
    return item


def test_progress_without_words_of_the_space_is_ours_in_the_readers_language():
    """``gr.Progress(track_tqdm=True)`` sends no ``desc``: "Generating 3/28" is our message,
    read in Russian by a Russian member (an f-string made it English for everyone)."""
    russian = texts(Language.RU)
    for item, english in [
        (progress(None), "Generating 3/28"),
        (progress(""), "Generating 3/28"),
        (progress(None, length=None), "Generating 3"),
        (progress(None, index=None, length=None), "Generating"),
    ]:
        assert item.status == english and isinstance(item.status, Text)
        assert russian(item.status) != english and russian(item.status).endswith(english[10:])


def test_the_spaces_own_progress_words_are_shown_as_they_are():
    russian = texts(Language.RU)
    for item, words in [
        (progress("Sampling"), "Sampling 3/28"),
        (progress("Sampling", length=None), "Sampling 3"),
        (progress("Loading", index=None, length=None), "Loading"),
    ]:
        assert russian(item.status) == words and not isinstance(item.status, Text)
