"""What one process tells Prometheus: its jobs and their times, the queue, the backends.

Each process (the one-process bot, a gateway, each worker) keeps its own ``Metrics`` on a
registry of its own (never prometheus-client's global one, so several bots in one test
process do not collide), and serves it on ``/metrics`` (``imagine.ops_http``).

Recorded as they happen: a job's ending (``job_ended``, once per job, wherever its ending is
shown), its wait in the queue (``job_started``), each backend attempt (``backend_tried``) and
the wait the AI Horde announced (``horde_wait``), the last two through the engine, which is
handed this object as its ``RouteObserver`` and knows nothing else of it.

Read when scraped (``StateCollector``): the queue (``imagine_queue_waiting``,
``imagine_jobs_running``), each backend's state from its circuit breaker and quota rests
(``imagine_backend_state``: 0 healthy, 1 resting, 2 down) and the quota rests running
(``imagine_quota_rests``). The in-memory scheduler is read as it is; the shared queue (a
database query) only through ``refresh``, at most once per ``REFRESH_SECONDS`` and bounded
by a timeout, so scrapes never pile queries up on the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .outcomes import Outcome
from .quota import BOT_ACCOUNT
from .store import JobKind, JobRecord

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_BACKEND = "none"
"""The ``backend`` label of a job that ended without a backend to name (cancelled while it
waited, lost, interrupted, or failed on every backend at once)."""
REFRESH_SECONDS = 1.0
"""Readings that cost a database query are taken at most this often, however often scraped."""
REFRESH_TIMEOUT = 1.0
"""The most a scrape waits for such a reading; past it the last one known is served."""

JOB_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
"""A job from its acknowledgement to its ending: seconds on the Spaces, minutes on the Horde."""
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
BACKEND_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class BackendState:
    """``imagine_backend_state``'s values."""

    HEALTHY = 0
    RESTING = 1  # the bot's own quota rest on it: nothing is sent to it until the time it named
    DOWN = 2  # its circuit breaker is open (or on trial): it failed and has not worked since


class Cached(Generic[T]):
    """An async reading shared by everyone who asks: one in flight at a time (a caller who
    gives up does not cancel it), bounded by ``timeout``, kept for ``fresh`` seconds."""

    def __init__(
        self,
        read: Callable[[], Awaitable[T]],
        *,
        timeout: float,
        fresh: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.timeout = timeout
        self.fresh = fresh
        self.clock = clock
        self.value: T | None = None
        self.error: BaseException | None = None
        self.at = -float("inf")
        self._task: asyncio.Task[T] | None = None

    async def get(self) -> T:
        """The value read within ``fresh`` seconds, or a new one; raises what the reading
        raised (``TimeoutError`` past ``timeout``)."""
        if self._task is None and self.clock() - self.at >= self.fresh:
            self._task = asyncio.get_running_loop().create_task(self._read())
        if self._task is not None:
            await asyncio.shield(self._task)
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # read once, without an error

    async def _read(self) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                self.value = await self.read()
            self.error = None
        except Exception as exc:
            self.error = exc
        finally:
            self.at = self.clock()
            self._task = None
        return self.value  # type: ignore[return-value]


class Metrics:
    """One process's metrics; ``registry`` is what ``/metrics`` renders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "imagine_jobs",
            "Jobs ended, by the model asked for, the backend that drew the image (or whose "
            "error ended the job; none otherwise) and how the job ended.",
            ("model", "backend", "outcome"),
            registry=r,
        )
        self.job_seconds = Histogram(
            "imagine_job_seconds",
            "Seconds from a job's acknowledgement to its ending, by how it ended.",
            ("outcome",),
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "imagine_queue_wait_seconds",
            "Seconds a job waited in the bot's queue before it started.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.backend_attempts = Counter(
            "imagine_backend_attempts",
            "Attempts at a backend, by how they went (ok, error, timeout, quota).",
            ("backend", "outcome"),
            registry=r,
        )
        self.backend_seconds = Histogram(
            "imagine_backend_seconds",
            "Seconds of an attempt at a backend that answered to the end (ok), from the request "
            "to its last answer.",
            ("backend",),
            buckets=BACKEND_BUCKETS,
            registry=r,
        )
        self.horde_wait = Histogram(
            "imagine_horde_wait_seconds",
            "The wait the AI Horde announced (its wait_time) at a job's first check.",
            ("backend",),
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "imagine_ready",
            "1 when this process is ready (what /readyz says), else 0.",
            registry=r,
        )
        self.state = StateCollector()
        r.register(self.state)
        ProcessCollector(registry=r)  # CPU, memory, open files of this process
        self._shared_counts: Cached[tuple[int, int]] | None = None

    # -- what the engine and the job service report ---------------------------------------

    def watch_engine(self, engine: Engine) -> None:
        """Read backend states and quota rests from ``engine`` when scraped (its backend names
        also label jobs)."""
        self.state.engine = engine

    def watch_queue(self, counts: Callable[[], tuple[int, int]]) -> None:
        """The in-memory queue: ``counts()`` is ``(waiting, running)``, read when scraped."""
        self.state.counts = counts

    def watch_shared_queue(self, counts: Callable[[], Awaitable[tuple[int, int]]]) -> None:
        """The shared queue: ``counts()`` (a database query) is awaited by ``refresh`` at most
        once per ``REFRESH_SECONDS``; scrapes serve the last value read."""
        cached = Cached(counts, timeout=REFRESH_TIMEOUT, fresh=REFRESH_SECONDS)
        self._shared_counts = cached

        def last() -> tuple[int, int] | None:
            return cached.value

        self.state.counts = last

    async def refresh(self) -> None:
        """Before a scrape: the readings that cost a query, if they are due."""
        if self._shared_counts is None:
            return
        try:
            await self._shared_counts.get()
        except Exception as exc:
            log.debug("metrics: the shared queue was not counted (%s)", type(exc).__name__)

    def job_started(self, job: JobRecord, now: float | None = None) -> None:
        """The job's turn came: how long it waited since its acknowledgement."""
        started = job.started_at if job.started_at is not None else (now or time.time())
        self.queue_wait.observe(max(0.0, started - job.created_at))

    def job_ended(
        self,
        job: JobRecord,
        outcome: Outcome,
        backend: str | None = None,
        now: float | None = None,
    ) -> None:
        """Once per job, where its ending was shown. ``backend``: the label the engine gave
        the backend (a result's ``backend``, an error's); None for none. A pick (U1..U4)
        draws nothing and is not counted."""
        if job.kind == JobKind.PICK:
            return
        key = self.state.backend_key(backend) if backend else NO_BACKEND
        self.jobs.labels(job.model, key, outcome.value).inc()
        ended = now if now is not None else time.time()
        self.job_seconds.labels(outcome.value).observe(max(0.0, ended - job.created_at))

    # -- the engine's RouteObserver -------------------------------------------------------

    def backend_tried(self, backend: str, outcome: str, seconds: float) -> None:
        self.backend_attempts.labels(backend, outcome).inc()
        if outcome == "ok":
            self.backend_seconds.labels(backend).observe(seconds)

    def horde_wait_announced(self, backend: str, seconds: float) -> None:
        self.horde_wait.labels(backend).observe(seconds)


class StateCollector(Collector):
    """Gauges read at scrape time from what the process already holds in memory."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.counts: Callable[[], tuple[int, int] | None] | None = None

    def backend_key(self, label: str) -> str:
        """The backend's name (its key, as ``IMAGINE_BACKENDS`` and ``imagine_backend_state``
        name it) for the label people know it by."""
        if self.engine is not None:
            for backend in self.engine.table.backends.values():
                if backend.label == label:
                    return backend.name
        return label

    def collect(self) -> Iterator[Metric]:
        counts = self.counts() if self.counts is not None else None
        if counts is not None:
            waiting, running = counts
            yield GaugeMetricFamily(
                "imagine_queue_waiting", "Jobs waiting for their turn.", value=waiting
            )
            yield GaugeMetricFamily(
                "imagine_jobs_running",
                "Jobs running (drawing, downloading, replying).",
                value=running,
            )
        if self.engine is not None:
            yield from self._backends(self.engine)

    @staticmethod
    def _backends(engine: Engine) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "imagine_backend_state",
            "Each backend as this process sees it: 0 healthy, 1 resting (the bot's quota ran "
            "out there), 2 down (its circuit breaker is open or on trial).",
            labels=("backend",),
        )
        rests = GaugeMetricFamily(
            "imagine_quota_rests",
            "ZeroGPU quota rests running, by backend and whose account (bot or member).",
            labels=("backend", "account"),
        )
        running: dict[tuple[str, str], int] = {}
        for rest in engine.rests.current():
            whose = "bot" if rest.account == BOT_ACCOUNT else "member"
            running[(rest.backend, whose)] = running.get((rest.backend, whose), 0) + 1
        for name in engine.table.backends:
            breaker = engine.health.get(name)
            if breaker is not None and breaker.failures:
                value = BackendState.DOWN
            elif (name, "bot") in running:
                value = BackendState.RESTING
            else:
                value = BackendState.HEALTHY
            state.add_metric((name,), value)
            for whose in ("bot", "member"):
                rests.add_metric((name, whose), running.get((name, whose), 0))
        yield state
        yield rests
