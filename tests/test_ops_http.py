"""The pages' own rules, over real HTTP against ``OpsServer`` on 127.0.0.1 (the readiness
check and the shared queue's count are the leaves here, so they can hang or fail at will):
scrapes never pile work on the loop or queries on the database, a check that hangs or fails
makes ``/readyz`` a 503 within its time limit, and no error text leaks onto a page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from imagine.metrics import Metrics
from imagine.ops_http import READY_TIMEOUT, OpsServer, database_answers


class Renders(Collector):
    """Counts how often the registry is rendered."""

    def __init__(self) -> None:
        self.count = 0

    def collect(self) -> Iterator[Metric]:
        self.count += 1
        yield GaugeMetricFamily("test_renders", "renders so far", value=self.count)


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def test_scrapes_share_one_render_and_one_database_count_a_second():
    metrics = Metrics()
    renders = Renders()
    metrics.registry.register(renders)
    counted = 0

    async def shared_counts() -> tuple[int, int]:  # a slow database query
        nonlocal counted
        counted += 1
        await asyncio.sleep(0.2)
        return 3, 2

    async def ready() -> None:
        return None

    metrics.watch_shared_queue(shared_counts)
    server = OpsServer(metrics, ready, host="127.0.0.1", port=0)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            pages = await asyncio.gather(*(get(http, base + "/metrics") for _ in range(20)))
            assert {status for status, _ in pages} == {200}
            assert len({text for _, text in pages}) == 1  # one page for all twenty
            assert (counted, renders.count) == (1, 1)
            page = pages[0][1]
            assert "imagine_queue_waiting 3.0" in page and "imagine_jobs_running 2.0" in page
            assert "imagine_ready 1.0" in page
            for _ in range(5):  # within the second: the same page, nothing asked again
                assert (await get(http, base + "/metrics"))[1] == page
            assert (counted, renders.count) == (1, 1)
            await asyncio.sleep(1.05)
            assert (await get(http, base + "/metrics"))[0] == 200
            assert (counted, renders.count) == (2, 2)
    finally:
        await server.close()


async def test_readyz_is_503_within_its_time_limit_when_the_check_hangs():
    asked = 0

    async def hanging() -> str | None:  # a database that never answers
        nonlocal asked
        asked += 1
        await asyncio.sleep(60)
        return None

    server = OpsServer(Metrics(), hanging, host="127.0.0.1", port=0)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            probes = asyncio.gather(*(get(http, base + "/readyz") for _ in range(10)))
            assert await get(http, base + "/healthz") == (200, "ok\n")  # the loop runs
            answers = await probes
            took = time.monotonic() - started
            assert (
                answers == [(503, "not ready: the readiness check did not finish in time\n")] * 10
            )
            assert READY_TIMEOUT <= took < READY_TIMEOUT + 1.5
            assert asked == 1  # ten probes, one check
    finally:
        await server.close()


async def test_a_database_error_shows_its_kind_never_its_text():
    async def refused() -> None:
        raise OSError("connect to postgresql://imagine:hunter2@10.1.2.3/imagine refused")

    problem = await database_answers(refused)
    assert problem == "the database did not answer (OSError)"

    async def ready() -> str | None:
        return await database_answers(refused)

    server = OpsServer(Metrics(), ready, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.port}"
            assert await get(http, base + "/readyz") == (
                503,
                "not ready: the database did not answer (OSError)\n",
            )
            status, page = await get(http, base + "/metrics")
            assert status == 200 and "imagine_ready 0.0" in page and "hunter2" not in page
    finally:
        await server.close()
