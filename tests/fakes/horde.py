"""A fake AI Horde on 127.0.0.1: its async image API (``POST /api/v2/generate/async``, ``GET
/api/v2/generate/check/{id}``, ``GET`` and ``DELETE /api/v2/generate/status/{id}``) and the
status routes ``--check`` reads (``/api/v2/status/heartbeat``, ``/api/v2/status/models``).

It answers as the real Horde does: ``202 {"id", "kudos"}`` for a job, progress fields
(``done``, ``faulted``, ``is_possible``, ``queue_position``, ``wait_time``, ``waiting``,
``processing``, ``finished``, ``kudos``), ``generations`` with the image as base64 WebP
(``r2: false``; a URL on another host with ``r2: true``), errors as ``{"message", "rc"}``. It
enforces what the Horde enforces: the ``apikey`` header (``0000000000`` is anonymous; other keys
must be in ``keys``, else 401), sizes in multiples of 64, and kudos up front for anonymous
requests over 1024×1024 pixels or 50 steps (403 ``KudosUpfront``); a model no worker serves is
accepted and never possible (``is_possible: false``).

A job waits ``queue_places`` places in line, one every ``seconds_per_place``, then is drawn in
``generation_seconds``. ``fault`` makes the next job(s) (``fault_times``; None: all) end
otherwise: ``auth`` (401), ``rate`` (429 on submit), ``faulted``, ``censored``; ``r2_links``
sends a link (to another host) where the image was asked inline. Every request is
kept in ``requests`` (headers with lower-case names), each job's checks in ``jobs[id].checks``
(times), and a check of a job asked again within a second in ``too_fast``.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

ANONYMOUS = "0000000000"
FLUX_MODEL = "Flux.1-Schnell fp8 (Compact)"
FAULTS = ("auth", "rate", "faulted", "censored")


@dataclass(frozen=True)
class HordeRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any | None
    at: float  # time.monotonic()


@dataclass
class HordeJob:
    id: str
    body: dict[str, Any]
    created: float
    queue_end: float
    done_at: float
    kudos: float
    fault: str | None = None
    possible: bool = True
    deleted: bool = False
    checks: list[float] = field(default_factory=list)
    statuses: int = 0

    @property
    def params(self) -> dict[str, Any]:
        return self.body["params"]


def webp(width: int, height: int, seed: str, *, black: bool = False) -> bytes:
    """A plain image of the seed's colour (black for a censored one), as WebP."""
    number = int(seed) if seed.isdigit() else sum(seed.encode())
    colour = (0, 0, 0) if black else (number * 37 % 256, number * 91 % 256, number * 53 % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


def kudos_for(width: int, height: int, steps: int) -> float:
    """What the fake charges: more pixels and more steps cost more (like the Horde)."""
    return round(10 * width * height / 1024**2 * steps / 30, 2)


class FakeHorde:
    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("Deliberate", FLUX_MODEL),
        keys: tuple[str, ...] = ("registered-key-0123456789",),
        queue_places: int = 2,
        seconds_per_place: float = 0.6,
        generation_seconds: float = 0.6,
    ) -> None:
        self.models = list(models)
        self.keys = set(keys)
        self.queue_places = queue_places
        self.seconds_per_place = seconds_per_place
        self.generation_seconds = generation_seconds
        self.fault: str | None = None
        self.r2_links = False  # a link to another host even when the image was asked inline
        self.fault_times: int | None = None
        self.requests: list[HordeRequest] = []
        self.jobs: dict[str, HordeJob] = {}
        self.too_fast: list[tuple[str, float]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "HORDE_URL": self.url,
            "HORDE_MODELS": self.models[0],
            "HORDE_FLUX_MODEL": FLUX_MODEL,
            **extra,
        }

    def submits(self) -> list[HordeRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def deletes(self) -> list[HordeRequest]:
        return [r for r in self.requests if r.method == "DELETE"]

    def set_fault(self, fault: str | None, times: int | None = None) -> None:
        assert fault is None or fault in FAULTS, fault
        self.fault, self.fault_times = fault, times

    async def __aenter__(self) -> FakeHorde:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/api/v2/generate/async", self._submit)
        app.router.add_get("/api/v2/generate/check/{id}", self._check)
        app.router.add_get("/api/v2/generate/status/{id}", self._status)
        app.router.add_delete("/api/v2/generate/status/{id}", self._delete)
        app.router.add_get("/api/v2/status/heartbeat", self._heartbeat)
        app.router.add_get("/api/v2/status/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(
            HordeRequest(request.method, request.path, headers, body, time.monotonic())
        )
        return await handler(request)

    @staticmethod
    def _error(status: int, message: str, rc: str) -> web.Response:
        return web.json_response({"message": message, "rc": rc}, status=status)

    def _take_fault(self) -> str | None:
        fault = self.fault
        if fault is not None and self.fault_times is not None:
            self.fault_times -= 1
            if self.fault_times <= 0:
                self.fault = None
        return fault

    async def _submit(self, request: web.Request) -> web.Response:
        key = request.headers.get("apikey")
        if not key:
            return self._error(400, "Missing required parameter in the HTTP headers: apikey", "")
        fault = self._take_fault()
        if fault == "auth" or (key != ANONYMOUS and key not in self.keys):
            return self._error(401, "The API Key provided is not valid", "InvalidAPIKey")
        if fault == "rate":
            return self._error(429, "Too many requests from this IP", "TooManyRequests")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "Input payload validation failed", "")
        refusal = self._validate(body)
        if refusal is not None:
            return refusal
        params = body["params"]
        width, height, steps = params["width"], params["height"], params.get("steps", 30)
        kudos = kudos_for(width, height, steps)
        if key == ANONYMOUS and (width * height > 1024 * 1024 or steps > 50):
            return self._error(
                403,
                "Due to heavy demand, for requests over 1024x1024 or over 50 steps (25 for "
                "k_heun and k_dpm_2*), the client needs to already have the required kudos. "
                f"This request requires {kudos} kudos to fulfil.",
                "KudosUpfront",
            )
        now = time.monotonic()
        queue_end = now + self.queue_places * self.seconds_per_place
        job = HordeJob(
            id=str(uuid.uuid4()),
            body=body,
            created=now,
            queue_end=queue_end,
            done_at=queue_end + self.generation_seconds,
            kudos=kudos,
            fault=fault,
            possible=all(m in self.models for m in body["models"]),
        )
        self.jobs[job.id] = job
        return web.json_response({"id": job.id, "kudos": kudos}, status=202)

    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return self._error(400, "Missing prompt", "MissingPrompt")
        if not body["prompt"].strip():
            return self._error(400, "Missing prompt", "MissingPrompt")
        params = body.get("params")
        if not isinstance(params, dict):
            return self._error(400, "Input payload validation failed", "")
        for side in ("width", "height"):
            value = params.get(side)
            if not isinstance(value, int) or value % 64 or not 64 <= value <= 3072:
                return self._error(400, f"Invalid {side}: {value!r}", "InvalidSize")
        if "seed" in params and not isinstance(params["seed"], str):
            return self._error(400, "seed must be a string", "")
        if not isinstance(params.get("n", 1), int) or not 1 <= params.get("n", 1) <= 20:
            return self._error(400, "n must be 1..20", "")
        models = body.get("models")
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            return self._error(400, "models must be a list of names", "")
        for flag in ("nsfw", "censor_nsfw", "r2"):
            if flag in body and not isinstance(body[flag], bool):
                return self._error(400, f"{flag} must be a boolean", "")
        return None

    def _job(self, request: web.Request) -> HordeJob | web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None or job.deleted:
            return self._error(
                404, f"Request with ID {request.match_info['id']} not found", "RequestNotFound"
            )
        return job

    def _progress(self, job: HordeJob) -> dict[str, Any]:
        now = time.monotonic()
        faulted = job.fault == "faulted" and now >= job.queue_end
        queued = now < job.queue_end or not job.possible
        done = not queued and now >= job.done_at and not faulted
        processing = not queued and not done and not faulted
        place = math.ceil((job.queue_end - now) / self.seconds_per_place) if queued else 0
        return {
            "finished": 1 if done else 0,
            "processing": 1 if processing else 0,
            "restarted": 0,
            "waiting": 1 if queued else 0,
            "done": done or faulted,
            "faulted": faulted,
            "wait_time": 0 if done or faulted else math.ceil(job.done_at - now),
            "queue_position": max(place, 1) if queued and job.possible else 0,
            "kudos": job.kudos if done else 0.0,
            "is_possible": job.possible,
        }

    async def _check(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        now = time.monotonic()
        if job.checks and now - job.checks[-1] < 1.0:
            self.too_fast.append((job.id, now - job.checks[-1]))
        job.checks.append(now)
        return web.json_response(self._progress(job))

    async def _status(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        job.statuses += 1
        return web.json_response(self._status_body(job))

    def _status_body(self, job: HordeJob) -> dict[str, Any]:
        progress = self._progress(job)
        generations = []
        if progress["finished"]:
            params = job.params
            seed = params.get("seed") or "1234"
            censored = job.fault == "censored"
            data = webp(params["width"], params["height"], seed, black=censored)
            image = (
                "https://r2.example.invalid/generations/image.webp"
                if job.body.get("r2", True) or self.r2_links
                else base64.b64encode(data).decode()
            )
            generations.append(
                {
                    "img": image,
                    "seed": seed,
                    "id": str(uuid.uuid4()),
                    "censored": censored,
                    "gen_metadata": [{"type": "censorship", "value": "nsfw"}] if censored else [],
                    "worker_id": "00000000-0000-0000-0000-000000000001",
                    "worker_name": "Fake Dreamer",
                    "model": job.body["models"][0],
                    "state": "censored" if censored else "ok",
                }
            )
        return {**progress, "generations": generations, "shared": False}

    async def _delete(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        body = self._status_body(job)
        job.deleted = True
        return web.json_response(body)

    async def _heartbeat(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "OK", "version": "4.44.0"})

    async def _models(self, request: web.Request) -> web.Response:
        if request.query.get("type", "image") != "image":
            return web.json_response([])
        counter = itertools.count(3)
        return web.json_response(
            [
                {
                    "name": name,
                    "count": next(counter),
                    "performance": 1_000_000.0,
                    "queued": 0.0,
                    "jobs": 0.0,
                    "eta": 0,
                    "type": "image",
                }
                for name in self.models
            ]
        )
