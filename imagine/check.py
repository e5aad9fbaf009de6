"""``python -m imagine --check``: is every configured backend up, and does it still fit?

For each backend (image and describe ones alike): its page or API is reachable, its API
description still matches the payload we send (Spaces reached by API name: the ``/infer``
Spaces, FLUX.1 Kontext, the official Janus-Pro-7B), an OpenAI-compatible API still lists the
models we use, the AI Horde answers its heartbeat and has workers for each model we offer on
it, and, with ``--generate``, a tiny image really comes back (an edit of a tiny image for the
models that edit; prompts for a tiny image for describe backends; a tiny image upscaled, or its
right half filled). Prints a
table; the exit status is non-zero when a configured backend is down. With workers
(PostgreSQL), it also lists the workers alive, and fails when none is; and the ZeroGPU
quota rests the bot's processes met.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
from PIL import Image

from .backends import DESCRIBE, FILL, UPSCALE, Backend
from .engine import Engine
from .errors import ImagineError
from .gradio import Limits, describe_endpoint, translated_errors
from .horde import HordeClient
from .http import MAX_PAGE_BYTES, raise_for_status, read_capped
from .i18n import Verbatim
from .providers.horde import horde_model
from .providers.openai import list_models
from .responses import Description, ImageResponse
from .settings import Settings, sqlite_path


@dataclass
class Probe:
    backend: Backend
    reachable: bool = False
    api: str = "-"
    generated: str = "-"
    error: str = ""
    latency_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reachable and not self.error


def _root(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path
    for suffix in ("/run/predict", "/api/predict"):
        path = path.removesuffix(suffix)
    return f"{parts.scheme}://{parts.netloc}{path}".rstrip("/")


async def _get_ok(session: aiohttp.ClientSession, url: str, backend: str, **kwargs) -> None:
    limits = Limits(total=30, connect=10, idle=30)
    with translated_errors(backend, limits):
        async with session.get(url, timeout=limits.client_timeout(), **kwargs) as response:
            await raise_for_status(response, backend=backend)
            await read_capped(response, MAX_PAGE_BYTES, backend=backend)


async def probe(engine: Engine, backend: Backend, *, generate: bool = False) -> Probe:
    result = Probe(backend)
    session = engine.session
    started = time.monotonic()
    try:
        if backend.kind in ("openai", "openai-vision"):
            vision = backend.kind == "openai-vision"
            models = await list_models(
                session, backend.url, backend.settings.openai_api_key, images_only=not vision
            )
            result.reachable = True
            wanted = [backend.settings.openai_vision_model or ""] if vision else backend.models
            missing = [m for m in wanted if m not in models]
            result.api = f"missing {', '.join(missing)}" if missing else "ok"
        elif backend.kind == "horde":
            await _probe_horde(engine, backend, result)
        else:
            if backend.space:
                page = f"{engine.settings.hf_endpoint.rstrip('/')}/spaces/{backend.space}"
                await _get_ok(session, page, "the hub")
            provider = backend.provider
            api_name: str | None = getattr(provider, "api_name", None)
            parameters: tuple[str, ...] = getattr(provider, "parameters", ())
            if api_name and parameters:
                endpoint = await describe_endpoint(
                    session, _root(backend.url), api_name, backend=backend.label,
                    limits=Limits(total=30, connect=10, idle=30),
                )  # fmt: skip
                result.reachable = True
                if endpoint.parameters == parameters:
                    result.api = "ok"
                else:
                    result.api = "changed"
                    result.error = (
                        f"inputs are now ({', '.join(endpoint.parameters)}), "
                        f"expected ({', '.join(parameters)})"
                    )
            else:
                await _get_ok(session, f"{_root(backend.url)}/config", backend.label)
                result.reachable = True
                result.api = "n/a"
        if generate and not result.error:
            if backend.task == DESCRIBE:
                result.generated = await _tiny_description(engine, backend)
            else:
                result.generated = await _tiny_image(engine, backend)
    except ImagineError as exc:
        result.error = str(exc)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.latency_ms = (time.monotonic() - started) * 1000
    return result


async def _probe_horde(engine: Engine, backend: Backend, result: Probe) -> None:
    """The Horde's heartbeat, then its image models: each Horde model we offer (``horde:…``,
    and the one behind ``flux``) must have a worker, or its jobs could not be drawn."""
    settings = backend.settings
    client = HordeClient(
        engine.session, settings.horde_url, settings.horde_api_key,
        limits=Limits(total=30, connect=10, idle=30), max_image_bytes=settings.max_image_bytes,
    )  # fmt: skip
    await client.heartbeat()
    served = await client.models()
    result.reachable = True
    wanted = dict.fromkeys(horde_model(model, settings) for model in backend.models)
    missing = [name for name in wanted if served.get(name, 0) < 1]
    result.api = f"missing {', '.join(missing)}" if missing else "ok"
    if missing:
        result.error = f"no worker serves {', '.join(missing)}"


@functools.cache
def tiny_png() -> bytes:
    """A 64x64 red square: the input of a checking edit, description, upscale or fill."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@functools.cache
def tiny_mask() -> bytes:
    """The checking fill's mask: the right half of ``tiny_png`` (white = paint)."""
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


async def _tiny_description(engine: Engine, backend: Backend) -> str:
    job = {"media": [(tiny_png(), "check.png")], "count": 1, "proxy": None}
    found: Description | None = None
    attempt = engine.attempt(backend, backend.models[0], job)
    async with contextlib.aclosing(attempt) as items:
        async for item in items:
            if isinstance(item, Description):
                found = item
    if found is None:
        raise ImagineError("finished without a description")
    return f"ok ({len(found.prompts)} prompt{'s' if len(found.prompts) != 1 else ''})"


async def _tiny_image(engine: Engine, backend: Backend) -> str:
    model = backend.models[0]
    job: dict[str, Any] = {
        "prompt": "a small red circle", "width": 64, "height": 64, "seed": 1, "proxy": None,
    }  # fmt: skip
    if backend.task == UPSCALE:
        job["media"] = [(tiny_png(), "check.png")]
        job["prompt"] = None  # the upscaler's own quality words
    elif backend.task == FILL:
        job["media"] = [(tiny_png(), "check.png"), (tiny_mask(), "check-mask.png")]
        job["prompt"] = "a blue square"
    elif backend.provider.requires_images:
        job["media"] = [(tiny_png(), "check.png")]
        job["prompt"] = "make the square blue"
    image: ImageResponse | None = None
    attempt = engine.attempt(backend, model, job)
    async with contextlib.aclosing(attempt) as items:
        async for item in items:
            if isinstance(item, ImageResponse):
                image = item
    if image is None:
        raise ImagineError("finished without an image")
    fetched = await engine.download(image)
    return f"ok ({len(fetched.data) // 1024} KiB {fetched.mime})"


def print_table(probes: list[Probe], engine: Engine, out: TextIO) -> None:
    rows = [("backend", "models", "reachable", "api", "image", "health", "latency", "last error")]
    for p in probes:
        breaker = engine.breaker(p.backend.name)
        rows.append(
            (
                p.backend.name,
                ",".join(p.backend.models),
                "yes" if p.reachable else "NO",
                p.api,
                p.generated,
                breaker.describe() if p.ok else "down",
                f"{p.latency_ms:.0f} ms",
                (p.error or "")[:80],
            )
        )
    _write_rows(rows, out)


async def check(engine: Engine, out: TextIO, *, generate: bool = False) -> int:
    """Probe every configured backend; 0 when all are up, 1 otherwise."""
    await engine.discover_models()
    probes = []
    for backend in engine.table.backends.values():
        result = await probe(engine, backend, generate=generate)
        if not result.ok:
            engine.breaker(backend.name).failure(Verbatim(result.error or "unreachable"))
        probes.append(result)
    print_table(probes, engine, out)
    return 0 if all(p.ok for p in probes) else 1


async def check_job_service(settings: Settings, out: TextIO) -> int:
    """What the bot's database knows (when it has one): the ZeroGPU quota rests its
    processes met (which Space rests for whose account, until when), and with workers
    (``DATABASE_URL=postgresql://…``) the workers seen alive, with the jobs each runs and the
    jobs waiting. 1 when workers are expected and none is alive (every job would wait for
    ever), 0 otherwise."""
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        return 0  # no bot has run here: nothing to read (and nothing to make)
    from .roster import Roster  # the database layer: only for this part of the check
    from .shared import SharedScheduler
    from .store import Store

    store = await Store.open(settings.database_url)
    try:
        rests = await store.quota_rests()
        if settings.uses_workers:
            alive = await Roster(store).alive(settings.job_lease_seconds)
            queue = SharedScheduler.from_settings(store, settings)
            waiting, running = await queue.counts()
            owners = await queue.owners()
    finally:
        await store.close()
    out.write(f"\nGPU quota rests: {len(rests)}\n")
    if rests:
        now = time.time()
        rows = [("backend", "account", "until", "in")]
        rows += [
            (
                rest.backend,
                "the bot's" if rest.mine else "a member's",
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rest.until)),
                f"{(rest.until - now) / 60:.0f} min",
            )
            for rest in rests
        ]
        _write_rows(rows, out)
    if not settings.uses_workers:
        return 0
    out.write(f"\nworkers: {len(alive)} alive; jobs: {running} running, {waiting} waiting\n")
    if not alive:
        out.write("NO WORKER IS RUNNING: queued jobs wait until one starts (python worker.py)\n")
        return 1
    rows = [("worker", "concurrency", "seen", "running")]
    rows += [
        (w.name, str(w.concurrency), f"{w.seen_ago:.0f} s ago", str(owners.get(w.name, 0)))
        for w in alive
    ]
    _write_rows(rows, out)
    return 0


def _write_rows(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
