"""A small client for the AI Horde's REST API (``https://aihorde.net/api``), on the engine's one
session and under its HTTP discipline: time limits on every request, capped reads, transport
trouble and refusals as ``BackendError``s a person can read.

Why not ``horde-sdk`` (the Horde's own client, 0.18.0): it is AGPL-3.0 (this project is MIT
and runs as a network service); its async client reads every answer with ``response.json()``,
so a ``status`` answer with inline images is buffered without a cap, under whatever time
limits the session has; it loads ``.env`` and sets up loguru when imported (logs our redacting
filter never sees); and it brings pydantic, requests, loguru and the Horde's model reference
along for the five requests needed here.

The protocol (DESIGN.md, "Free GPU that lasts"): ``POST /v2/generate/async`` with the headers
``apikey`` and ``Client-Agent`` → 202 ``{"id", "kudos"}``; ``GET /v2/generate/check/{id}`` for
progress (the Horde caches it for a second: never asked more often); ``GET
/v2/generate/status/{id}`` once, for the images (inline base64 WebP with ``r2: false``);
``DELETE /v2/generate/status/{id}`` to cancel. Errors are JSON ``{"message", "rc"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from . import __version__
from .errors import BackendError
from .gradio import Limits, translated_errors
from .http import (
    MAX_ERROR_BYTES,
    MAX_JSON_BYTES,
    backend_error,
    decode_text,
    read_capped,
    read_prefix,
)
from .i18n import Verbatim, _

log = logging.getLogger(__name__)

LABEL = "AI Horde"
CLIENT_AGENT = f"imagine-bot:{__version__}:unknown"
"""``name:version:contact``, as the Horde asks every client to say who it is (``unknown`` is
the Horde's own word for a part not given: the project has no public address yet)."""
REQUEST_SECONDS = 60.0
"""The longest one request to the Horde may take (the job's own limit bounds the polling)."""
CANCEL_SECONDS = 5.0
"""The longest a cancelling ``DELETE`` may take; it runs on after the job has stopped."""
ANSWER_MARGIN = 1024 * 1024
"""Room in a ``status`` answer for the JSON around the base64 image."""


def status_limit(max_image_bytes: int) -> int:
    """The most a ``status`` answer may weigh: one image of up to ``max_image_bytes`` (4/3 of
    that in base64) and its JSON; never less than other JSON."""
    return max(MAX_JSON_BYTES, -(-max_image_bytes * 4 // 3) + ANSWER_MARGIN)


@dataclass(frozen=True, slots=True)
class Progress:
    """A request's progress, as ``check`` (and ``status``) tell it."""

    done: bool = False
    faulted: bool = False
    is_possible: bool = True
    queue_position: int = 0
    wait_time: int = 0
    waiting: int = 0
    processing: int = 0
    finished: int = 0
    kudos: float | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Progress:
        return cls(
            done=data.get("done") is True,
            faulted=data.get("faulted") is True,
            is_possible=data.get("is_possible") is not False,
            queue_position=_whole(data.get("queue_position")),
            wait_time=_whole(data.get("wait_time")),
            waiting=_whole(data.get("waiting")),
            processing=_whole(data.get("processing")),
            finished=_whole(data.get("finished")),
            kudos=_number(data.get("kudos")),
        )


@dataclass(frozen=True, slots=True)
class Generation:
    """One finished image of a request: ``img`` is base64 WebP (``r2: false``), or a URL when
    the Horde ignored that."""

    img: str
    seed: str | None
    model: str | None
    worker_name: str | None
    censored: bool


@dataclass(frozen=True, slots=True)
class Submitted:
    id: str
    kudos: float | None


class HordeClient:
    """The Horde's endpoints this bot uses, on the caller's session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        limits: Limits,
        max_image_bytes: int,
        proxy: str | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.headers = {"apikey": api_key, "Client-Agent": CLIENT_AGENT}
        self.limits = Limits(
            total=min(limits.total, REQUEST_SECONDS),
            connect=limits.connect,
            idle=min(limits.idle, REQUEST_SECONDS),
        )
        self.max_image_bytes = max_image_bytes
        self.proxy = proxy

    async def submit(self, payload: Mapping[str, Any]) -> Submitted:
        """``POST /v2/generate/async``: the request's id and what the Horde charges for it."""
        answer = await self._json("POST", "/v2/generate/async", body=payload)
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise BackendError(f"{LABEL} did not queue the job", transient=True, backend=LABEL)
        warnings = answer.get("warnings")
        if warnings:
            log.info("the AI Horde warned about request %s: %s", job_id, warnings)
        return Submitted(job_id, _number(answer.get("kudos")))

    async def check(self, job_id: str) -> Progress:
        """``GET /v2/generate/check/{id}``: progress without images."""
        answer = await self._json("GET", f"/v2/generate/check/{job_id}")
        return Progress.of(answer if isinstance(answer, dict) else {})

    async def status(self, job_id: str) -> tuple[Progress, list[Generation]]:
        """``GET /v2/generate/status/{id}``: progress and the finished images."""
        limit = status_limit(self.max_image_bytes)
        answer = await self._json("GET", f"/v2/generate/status/{job_id}", limit=limit)
        data = answer if isinstance(answer, dict) else {}
        generations = [
            Generation(
                img=item["img"],
                seed=None if item.get("seed") is None else str(item["seed"]),
                model=_text(item.get("model")),
                worker_name=_text(item.get("worker_name")),
                censored=item.get("censored") is True,
            )
            for item in data.get("generations") or ()
            if isinstance(item, dict) and isinstance(item.get("img"), str) and item["img"]
        ]
        return Progress.of(data), generations

    async def cancel(self, job_id: str) -> None:
        """``DELETE /v2/generate/status/{id}``: best effort, within ``CANCEL_SECONDS``; a
        failure is logged, never raised (the request then expires on the Horde's side)."""
        limits = Limits(total=CANCEL_SECONDS, connect=CANCEL_SECONDS, idle=CANCEL_SECONDS)
        try:  # the answer is the request's status: finished images included
            await self._json(
                "DELETE",
                f"/v2/generate/status/{job_id}",
                limit=status_limit(self.max_image_bytes),
                limits=limits,
            )
        except BackendError as exc:
            log.info("could not cancel AI Horde request %s: %s", job_id, exc)

    async def heartbeat(self) -> None:
        """``GET /v2/status/heartbeat``: the Horde answers."""
        await self._json("GET", "/v2/status/heartbeat")

    async def models(self) -> dict[str, int]:
        """``GET /v2/status/models?type=image``: each image model served now, with how many
        workers serve it."""
        answer = await self._json("GET", "/v2/status/models", params={"type": "image"})
        return {
            item["name"]: _whole(item.get("count"))
            for item in (answer if isinstance(answer, list) else ())
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        }

    async def _json(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        limit: int = MAX_JSON_BYTES,
        limits: Limits | None = None,
    ) -> Any:
        limits = limits or self.limits
        with translated_errors(LABEL, limits):
            async with self.session.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                params=params,
                headers=self.headers,
                timeout=limits.client_timeout(),
                proxy=self.proxy,
            ) as response:
                await raise_for_horde(response)
                raw = await read_capped(response, limit, backend=LABEL)
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise BackendError(f"{LABEL} sent malformed data", backend=LABEL) from None


async def raise_for_horde(response: aiohttp.ClientResponse) -> None:
    """A ``BackendError`` that says what the Horde's refusal means, unless the answer is 2xx:
    a bad key (401), kudos asked up front (403 ``KudosUpfront``), too many requests (429);
    anything else in the Horde's own words (``Response 400: …``; 5xx transient)."""
    if response.ok:
        return
    try:
        body = decode_text(response, await read_prefix(response, MAX_ERROR_BYTES))
    except aiohttp.ClientError:
        body = ""
    message, code = horde_message(body)
    status = response.status
    if status == 401:
        raise BackendError(
            _(
                "The AI Horde refused the API key (HORDE_API_KEY): {message}",
                message=Verbatim(message or "invalid key"),
            ),
            status=status,
            unavailable=True,  # no job can pass with this key: the breaker rests the Horde
            backend=LABEL,
        )
    if status == 403 and code == "KudosUpfront":
        raise BackendError(
            _(
                "The AI Horde asks for kudos up front for a request this large (anonymous use "
                "is limited to about 1024×1024 pixels and 50 steps). Ask for a smaller image, "
                "or set HORDE_API_KEY to an account with kudos."
            ),
            status=status,
            backend=LABEL,
        )
    if status == 429:
        raise BackendError(
            _("The AI Horde is limiting how often we may ask (429); try again in a moment."),
            status=status,
            transient=True,
            backend=LABEL,
        )
    text = f"{message} ({code})" if message and code else message or body or "empty answer"
    raise backend_error(status, text, backend=LABEL)


def horde_message(body: str) -> tuple[str | None, str | None]:
    """The ``message`` and return code ``rc`` of a Horde error body (None when absent)."""
    with contextlib.suppress(ValueError):
        data = json.loads(body)
        if isinstance(data, dict):
            return _text(data.get("message")), _text(data.get("rc"))
    return None, None


async def cancel_soon(client: HordeClient, job_id: str, *, wait: float) -> None:
    """Cancel ``job_id`` without holding up whoever stopped the job for more than ``wait``
    seconds: the ``DELETE`` runs in a task of its own and finishes (or gives up, within
    ``CANCEL_SECONDS``) on its own time."""
    task = asyncio.get_running_loop().create_task(client.cancel(job_id))
    _cancelling.add(task)
    task.add_done_callback(_cancelling.discard)
    await asyncio.wait((task,), timeout=wait)


_cancelling: set[asyncio.Task[None]] = set()
"""``DELETE``s still on their way (held so that they are not garbage-collected)."""


def _whole(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
