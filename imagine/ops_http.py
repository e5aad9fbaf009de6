"""``/metrics``, ``/healthz`` and ``/readyz`` for one process, on ``METRICS_HOST:METRICS_PORT``.

Served by aiohttp's own web server on the process's event loop (no thread, no second
loop): every handler is a coroutine. Rendering a page is prometheus-client's
``generate_latest`` on the process's own registry, on the loop: plain Python at roughly
10 µs a line, a few milliseconds for a busy bot's few hundred lines. So a page is rendered at
most once per ``PAGE_FRESH`` seconds, by one scrape at a time, after ``Metrics.refresh`` (at
most one database query a second, bounded; see ``imagine.metrics``) and an up-to-date
``imagine_ready``; a scrape within that second gets the same page. Prometheus scrapes every
15 s or so and always gets a fresh one; a scraper gone wild costs the loop one render a
second, however fast it asks.

- ``/metrics``: the Prometheus text format (OpenMetrics when the scraper asks for it, as
  prometheus-client's own handlers decide by the ``Accept`` header).
- ``/healthz``: 200 ``ok`` whenever it answers at all: the event loop runs.
- ``/readyz``: 200 ``ready``, or 503 with one line saying what is not ready, from the
  ``ready`` check the process passes in (the gateway: connected to Discord and the database
  answers; a worker: the database). Concurrent calls share one check in flight.

Nothing secret is ever on these pages: metric labels are model and backend names and HTTP
statuses; a reason names what failed and the kind of error, never an address or a URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from prometheus_client.exposition import choose_encoder

from .metrics import Cached, Metrics

log = logging.getLogger(__name__)

READY_TIMEOUT = 2.0
"""The most a readiness check may take (a database that does not answer by then is not)."""
READY_FRESH = 1.0
"""Scrapes reuse a readiness answer this recent (``/readyz`` itself always asks anew)."""
PAGE_FRESH = 1.0
"""A ``/metrics`` page is rendered at most this often (per format); scrapes in between get it."""
PAGE_TIMEOUT = READY_TIMEOUT + 3.0

Ready = Callable[[], Awaitable[str | None]]
"""A readiness check: None when ready, else one line saying what is not."""


async def database_answers(ping: Callable[[], Awaitable[object]]) -> str | None:
    """``ping()`` (a ``SELECT 1``) as a readiness check: the kind of error, never its text
    (a driver's message may carry the database's address)."""
    try:
        await ping()
    except TimeoutError:
        return "the database did not answer in time"
    except Exception as exc:
        return f"the database did not answer ({type(exc).__name__})"
    return None


class OpsServer:
    """The three pages of one process; ``start`` in its set-up, ``close`` in its close."""

    def __init__(self, metrics: Metrics, ready: Ready, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        """The port asked for; once started, the one listened on (0 asks for any free one)."""
        self.readiness: Cached[str | None] = Cached(ready, timeout=READY_TIMEOUT)
        self.recent: Cached[str | None] = Cached(ready, timeout=READY_TIMEOUT, fresh=READY_FRESH)
        self._pages: dict[str, Cached[bytes]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        log.info("metrics, health and readiness on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def problem(self) -> str | None:
        """What is not ready now (None: ready); a check that fails or hangs says so."""
        return await self._ask(self.readiness)

    async def _ask(self, check: Cached[str | None]) -> str | None:
        try:
            return await check.get()
        except TimeoutError:
            return "the readiness check did not finish in time"
        except Exception as exc:
            log.warning("the readiness check failed (%s)", type(exc).__name__)
            return f"the readiness check failed ({type(exc).__name__})"

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        page = self._pages.get(content_type)
        if page is None:

            async def render() -> bytes:
                problem, _ = await asyncio.gather(self._ask(self.recent), self.metrics.refresh())
                self.metrics.ready.set(0 if problem else 1)
                return encoder(self.metrics.registry)

            page = self._pages[content_type] = Cached(
                render, timeout=PAGE_TIMEOUT, fresh=PAGE_FRESH
            )
        body = await page.get()
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        problem = await self.problem()
        if problem is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {problem}\n")


async def serve(metrics: Metrics, ready: Ready, *, host: str, port: int | None) -> OpsServer | None:
    """Start the pages when ``METRICS_PORT`` is set (None: not served)."""
    if port is None:
        return None
    server = OpsServer(metrics, ready, host=host, port=port)
    await server.start()
    return server
