"""One client for Gradio's APIs, shared by every Space backend.

Two ways in (and one for files): the queue (``POST …/gradio_api/queue/join`` then an SSE stream from
``GET …/gradio_api/queue/data``), which Spaces require for queued functions, and the old direct
``POST …/run/predict``. Stream messages become engine responses: ``estimation`` → queue position,
``progress`` → ``"{desc} {index}/{length}"``, ``log`` → its text, ``heartbeat`` → ``Generating…``,
``process_generating`` → a preview (later ones are diffs applied to the first),
``process_completed`` → the output or an error. Unknown messages are ignored. Input files
(an image to edit or describe) go first to ``POST …/gradio_api/upload`` and travel in the
job's data as Gradio ``FileData``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from .errors import BackendError, BackendTimeout
from .http import MAX_JSON_BYTES, backend_error, raise_for_status, read_capped
from .i18n import Verbatim, _
from .media import InputImage
from .responses import ImagePreview, Reasoning
from .sse import SSEDecoder, SSEError


@dataclass(slots=True)
class Completed:
    """The final output of a Gradio function (``output.data``)."""

    data: list[Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Time limits of one job: the whole job, connecting, and silence on the wire."""

    total: float = 600.0
    connect: float = 15.0
    idle: float = 120.0

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, sock_read=self.idle
        )


GENERATING = _("Generating")
"""What a job shows once the Space runs it, until the Space says more."""
DRAIN_SECONDS = 0.5
"""How long to wait for a finished stream's tail (it normally follows at once)."""

QUEUE_PACE_SECONDS = 0.25
"""While others are ahead of our job in the Space's queue, read its stream at most this often.

A Space tells every waiting job its place each time the queue moves: with 100 jobs queued,
~40 ``estimation`` messages per job, each a wake-up of ours. Until the job can start (rank 0),
nothing but its place can arrive, so its stream is read in batches and only the latest place
of a batch is handled and reported; from rank 0 on, every message is read as it arrives. The
reads fall on the ticks of a grid of this step on the loop's clock, so that the waiting jobs
wake together: half a step to a step and a half apart (one on average), or further apart far
back in a queue that moves slowly (``queue_pace``: half the wait its pace so far predicts,
at most ``MAX_QUEUE_PACE_SECONDS``)."""


MAX_QUEUE_PACE_SECONDS = 1.0
"""The longest a waiting job's stream is left unread (far back in a queue that moves slowly:
``queue_pace``); the bot shows a job's place at most once a second."""


def new_session_hash() -> str:
    return secrets.token_hex(6)


def file_url(base_url: str, value: Any, *, prefix: str = "/gradio_api") -> str | None:
    """The URL of a Gradio ``FileData`` (or a bare URL/path string)."""
    if isinstance(value, Mapping):
        url = value.get("url")
        if isinstance(url, str) and url:
            return url
        value = value.get("path") or value.get("name")
    if isinstance(value, str) and value:
        if value.startswith(("http://", "https://")):
            return value
        return f"{base_url}{prefix}/file={value}"
    return None


def apply_diff(value: Any, diff: list[Any]) -> Any:
    """Apply Gradio's streaming diff (``[op, path, value]`` triples) to an output value."""
    if not isinstance(diff, list):
        return value
    for edit in diff:
        if not (isinstance(edit, list | tuple) and len(edit) == 3 and isinstance(edit[1], list)):
            continue
        op, path, new = edit
        if not path:
            if op == "replace":
                value = new
            elif op in ("append", "add") and isinstance(value, str) and isinstance(new, str):
                value += new
            continue
        target = value
        try:
            for key in path[:-1]:
                target = target[key]
            last = path[-1]
            if op == "replace":
                target[last] = new
            elif op == "append":
                target[last] += new
            elif op == "add":
                if isinstance(target, list):
                    target.insert(last, new)
                else:
                    target[last] = new
            elif op == "delete":
                del target[last]
        except (KeyError, IndexError, TypeError):
            continue
    return value


class GradioStream:
    """Turns one job's Gradio messages into responses, keeping preview state."""

    def __init__(
        self,
        *,
        base_url: str,
        alt: str,
        backend: str,
        prefix: str = "/gradio_api",
        previews: bool = True,
    ):
        self.base_url = base_url
        self.alt = alt
        self.backend = backend
        self.prefix = prefix
        self.previews = previews
        self._outputs: list[Any] | None = None
        self._heartbeats = 0
        self.waiting = False
        """Others are ahead of the job in the Space's queue (its last news was a place > 1)."""
        self.rank: int | None = None
        """How many are ahead, while ``waiting``."""

    def handle(self, message: Any) -> Reasoning | ImagePreview | Completed | None:
        """The response for one message; raises ``BackendError`` for a failed job."""
        if not isinstance(message, dict):
            return None
        kind = message.get("msg")
        if kind == "estimation":
            rank = message.get("rank")
            self.waiting = isinstance(rank, int) and rank > 0
            self.rank = rank if self.waiting else None
            return self._estimation(message)
        if kind != "heartbeat":
            self.waiting = False
        if kind == "process_starts":
            return Reasoning(GENERATING)
        if kind == "progress":
            return self._progress(message.get("progress_data"))
        if kind == "log":
            text = message.get("log")
            return Reasoning(Verbatim(str(text))) if text else None
        if kind == "heartbeat":
            self._heartbeats += 1
            return Reasoning(_("Generating{dots}", dots="." * (2 + self._heartbeats)))
        if kind == "process_generating":
            return self._preview(message.get("output")) if self.previews else None
        if kind == "process_completed":
            return self._completed(message)
        if kind == "unexpected_error":
            raise backend_error(
                0, str(message.get("message") or "unexpected error"), backend=self.backend
            )
        return None

    def _estimation(self, message: dict[str, Any]) -> Reasoning | None:
        rank, size = message.get("rank"), message.get("queue_size")
        if not isinstance(rank, int) or not isinstance(size, int):
            return None
        place, size = rank + 1, max(size, rank + 1)
        eta = message.get("rank_eta")
        if isinstance(eta, int | float) and eta > 0:
            return Reasoning(
                _(
                    "Waiting for a GPU: {place} of {size} in the Space's queue, ~{seconds}s",
                    place=place,
                    size=size,
                    seconds=f"{eta:.0f}",
                )
            )
        return Reasoning(
            _("Waiting for a GPU: {place} of {size} in the Space's queue", place=place, size=size)
        )

    @staticmethod
    def _progress(progress_data: Any) -> Reasoning:
        """``{desc} {index}/{length}``: the Space's own words as they are; without any, ours
        (``Generating 3/28``), in the reader's language."""
        if isinstance(progress_data, list) and progress_data and isinstance(progress_data[0], dict):
            progress = progress_data[0]
            desc = progress.get("desc")
            index, length = progress.get("index"), progress.get("length")
            if not desc:
                if index is not None and length is not None:
                    return Reasoning(_("Generating {index}/{length}", index=index, length=length))
                if index is not None:
                    return Reasoning(_("Generating {index}", index=index))
                return Reasoning(GENERATING)
            if index is not None and length is not None:
                return Reasoning(Verbatim(f"{desc} {index}/{length}"))
            if index is not None:
                return Reasoning(Verbatim(f"{desc} {index}"))
            return Reasoning(Verbatim(str(desc)))
        return Reasoning(GENERATING)

    def _preview(self, output: Any) -> ImagePreview | None:
        if not isinstance(output, dict) or not isinstance(output.get("data"), list):
            return None
        data = output["data"]
        if self._outputs is None:
            self._outputs = data  # freshly parsed JSON, ours alone: no copy needed
        else:
            for i, diff in enumerate(data[: len(self._outputs)]):
                self._outputs[i] = apply_diff(self._outputs[i], diff)
        first = self._outputs[0] if self._outputs else None
        url = file_url(self.base_url, first, prefix=self.prefix) if first else None
        if not url:
            return None
        return ImagePreview([url], self.alt, origin=self.base_url, backend=self.backend)

    def _completed(self, message: dict[str, Any]) -> Completed:
        output = message.get("output")
        output = output if isinstance(output, dict) else {}
        error = output.get("error")
        if message.get("success") is False or error:
            text = str(error or message.get("title") or "the Space reported an error")
            raise backend_error(0, text, backend=self.backend)
        data = output.get("data")
        if not isinstance(data, list):
            raise BackendError(
                f"{self.backend} finished without an image", transient=True, backend=self.backend
            )
        return Completed(data)


@contextlib.contextmanager
def translated_errors(backend: str, limits: Limits):
    """Turn transport trouble into ``BackendError``s a user can read."""
    try:
        yield
    except aiohttp.ServerTimeoutError:
        raise BackendTimeout(
            f"{backend} sent nothing for {limits.idle:g}s and was given up on", backend=backend
        ) from None
    except TimeoutError:
        raise BackendTimeout(
            f"{backend} did not finish within {limits.total:g}s", backend=backend
        ) from None
    except aiohttp.ClientConnectorError:
        # No host or port: users on Discord see this text, and a backend may be private.
        raise BackendError(
            f"Could not connect to {backend}", transient=True, backend=backend
        ) from None
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
        raise BackendError(
            f"{backend} broke off its answer", transient=True, backend=backend
        ) from None
    except aiohttp.ClientError as exc:
        raise BackendError(
            f"Talking to {backend} failed ({type(exc).__name__})", transient=True, backend=backend
        ) from None


def _decode(data: str | bytes, backend: str) -> Any:
    try:
        return orjson.loads(data)  # several times faster than json; every message goes here
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses and Python's json takes (NaN, integers past 64 bits, ...)
        return json.loads(data)
    except ValueError:
        raise BackendError(f"{backend} sent malformed data", backend=backend) from None


class _IdleWatch:
    """The idle limit of a stream (``Limits.idle``: silence while we wait for its next bytes),
    kept with one timer per idle period.

    aiohttp's own ``sock_read`` timeout cancels and re-arms a timer for every piece of data
    that arrives: a real Space sends a job ~60 messages (at 100 queued jobs), so that is ~60
    timers made and cancelled per job, ~10% of the engine's CPU. Here a read notes the time,
    and the one timer, when it fires, looks whether the limit has really passed (re-arming
    otherwise). The limit is the same; on expiry the stream fails as it did, with
    ``aiohttp.ServerTimeoutError``. The silence clock runs while we wait for bytes, not
    while our caller is busy with the previous message.
    """

    __slots__ = ("_content", "_handle", "_idle", "_last", "_loop", "_reading")

    def __init__(self, content: aiohttp.StreamReader, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._content = content
        self._idle = idle
        self._last = self._loop.time()
        self._reading = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._last + idle, self._check
        )

    async def read(self) -> bytes:
        """The next bytes of the stream (all that are buffered); ``b""`` at its end."""
        self._last = self._loop.time()
        self._reading = True
        try:
            return await self._content.readany()
        finally:
            self._reading = False

    def _check(self) -> None:
        now = self._loop.time()
        deadline = self._last + self._idle
        if self._reading and now >= deadline:
            self._handle = None
            self._content.set_exception(
                aiohttp.ServerTimeoutError("Timeout on reading data from socket")
            )
            return
        self._handle = self._loop.call_at(deadline if self._reading else now + self._idle,
                                          self._check)  # fmt: skip

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def run_queued(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    fn_index: int,
    trigger_id: int | None,
    data: list[Any],
    headers: Mapping[str, str],
    alt: str,
    backend: str,
    limits: Limits,
    prefix: str = "/gradio_api",
    proxy: str | None = None,
    session_hash: str | None = None,
    previews: bool = True,
) -> AsyncGenerator[Reasoning | ImagePreview | Completed, None]:
    """Run one queued Gradio function; yield progress, then one ``Completed``.

    ``session_hash`` is the one files were uploaded under (a new one otherwise); ``previews``
    false ignores ``process_generating`` (a text answer is no image to preview).
    """
    session_hash = session_hash or new_session_hash()
    payload = {
        "data": data,
        "event_data": None,
        "fn_index": fn_index,
        "trigger_id": trigger_id,
        "session_hash": session_hash,
    }
    timeout = limits.client_timeout()
    # The stream's idle limit is kept by _IdleWatch, not by aiohttp (see there).
    stream_timeout = aiohttp.ClientTimeout(total=limits.total, sock_connect=limits.connect)
    stream = GradioStream(
        base_url=base_url, alt=alt, backend=backend, prefix=prefix, previews=previews
    )
    with translated_errors(backend, limits):
        async with session.post(
            f"{base_url}{prefix}/queue/join",
            json=payload,
            headers=headers,
            timeout=timeout,
            proxy=proxy,
        ) as response:
            await raise_for_status(response, backend=backend)
            joined = _decode(await read_capped(response, MAX_JSON_BYTES, backend=backend), backend)
        event_id = joined.get("event_id") if isinstance(joined, dict) else None
        if not event_id:
            raise BackendError(f"{backend} did not queue the job", transient=True, backend=backend)
        async with session.get(
            f"{base_url}{prefix}/queue/data",
            params={"session_hash": session_hash},
            headers={"accept": "text/event-stream"},
            timeout=stream_timeout,
            proxy=proxy,
        ) as response:
            await raise_for_status(response, backend=backend)
            decoder = SSEDecoder()
            watch = _IdleWatch(response.content, limits.idle)
            first: tuple[float, int] | None = None  # when the job was first told a place > 1
            try:
                while chunk := await watch.read():
                    place: dict[str, Any] | None = None  # the latest queue place of this batch
                    for message in _job_messages(decoder, chunk, event_id, backend):
                        kind = message.get("msg")
                        if kind == "estimation":
                            place = message  # an older place in the same batch is stale
                            continue
                        if kind == "close_stream":
                            raise _closed_early(backend)
                        if place is not None:
                            if told := stream.handle(place):
                                yield told
                            place = None
                        item = stream.handle(message)
                        if isinstance(item, Completed):
                            yield item
                            await _drain(response)
                            return
                        if item is not None:
                            yield item
                    if place is not None and (told := stream.handle(place)):
                        yield told
                    if stream.waiting and stream.rank is not None:
                        now = asyncio.get_running_loop().time()
                        first = first or (now, stream.rank)
                        # let the queue's news pile up
                        await _pace(response, queue_pace(first, now, stream.rank))
            finally:
                watch.stop()
    raise _closed_early(backend)


def queue_pace(first: tuple[float, int], now: float, rank: int) -> float:
    """How long to leave a waiting job's stream unread: half the time the queue's pace so far
    says the job still has to wait (``rank`` more to go; ``first`` is when and at which rank
    it was first told a place), within ``QUEUE_PACE_SECONDS``-``MAX_QUEUE_PACE_SECONDS``."""
    since, first_rank = first
    moved = first_rank - rank
    if moved <= 0 or now <= since:
        return QUEUE_PACE_SECONDS
    left = rank * (now - since) / moved
    return min(max(left / 2, QUEUE_PACE_SECONDS), MAX_QUEUE_PACE_SECONDS)


async def _pace(response: aiohttp.ClientResponse, step: float = QUEUE_PACE_SECONDS) -> None:
    """Wait about ``step`` seconds without reading: the socket itself is not read meanwhile
    (asyncio's ``Transport.pause_reading``), so the queue's news waits in the kernel and comes
    in one read afterwards, instead of waking the event loop once per message. Not if the
    transport is already paused (aiohttp's own flow control): that is left as it is. Over TLS
    the socket is still read, but the news is handed on in one piece; a transport without
    flow control is just not paused."""
    connection = response.connection
    transport = connection.transport if connection is not None else None
    paused = False
    if transport is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            if transport.is_reading():
                transport.pause_reading()
                paused = True
    loop = asyncio.get_running_loop()
    now = loop.time()
    # The next tick of a QUEUE_PACE_SECONDS grid on the loop's clock, at least half a step
    # away (so on average one step): the waiting jobs' timers fall on the same instants, and
    # the loop wakes once per tick for all of them (and reads their sockets together after),
    # instead of once per job.
    tick = QUEUE_PACE_SECONDS
    wake = math.ceil((now + step - tick / 2) / tick) * tick
    waiter = loop.create_future()
    timer = loop.call_at(wake, _set_done, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        if paused:
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                if not transport.is_closing():  # type: ignore[union-attr]
                    transport.resume_reading()  # type: ignore[union-attr]


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _closed_early(backend: str) -> BackendError:
    return BackendError(
        f"{backend} closed the stream before the image was ready", transient=True, backend=backend
    )


def _job_messages(
    decoder: SSEDecoder, chunk: bytes, event_id: str, backend: str
) -> list[dict[str, Any]]:
    """The messages of our job that this chunk completes (others' events are skipped)."""
    try:
        events = decoder.feed(chunk)
    except SSEError as exc:
        raise BackendError(f"{backend} sent {exc}", backend=backend) from None
    messages = []
    for event in events:
        message = _decode(event.data, backend)
        if isinstance(message, dict) and message.get("event_id") in (None, event_id):
            messages.append(message)
    return messages


async def _drain(response: aiohttp.ClientResponse, limit: float = DRAIN_SECONDS) -> None:
    """Read what is left of a finished stream (``close_stream``, the end of the body), so the
    connection goes back to the pool instead of being closed; give up quickly if it lingers.
    """
    with contextlib.suppress(Exception):
        async with asyncio.timeout(limit):
            await response.content.read()


async def predict(
    session: aiohttp.ClientSession,
    url: str,
    *,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    backend: str,
    limits: Limits,
    proxy: str | None = None,
) -> list[Any]:
    """``POST /run/predict``: one request, the whole output in the answer."""
    with translated_errors(backend, limits):
        async with session.post(
            url, json=payload, headers=headers, timeout=limits.client_timeout(), proxy=proxy
        ) as response:
            await raise_for_status(response, backend=backend)
            body = await read_capped(response, MAX_JSON_BYTES, backend=backend)
    answer = _decode(body, backend)
    if isinstance(answer, dict) and answer.get("error"):
        raise backend_error(0, str(answer["error"]), backend=backend)
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not data:
        raise BackendError(f"{backend} answered without an image", transient=True, backend=backend)
    return data


def file_data(
    base_url: str, path: str, image: InputImage, *, prefix: str = "/gradio_api"
) -> dict[str, Any]:
    """Gradio's ``FileData`` for a file uploaded to ``path`` (what a job's data carries)."""
    return {
        "path": path,
        "url": f"{base_url}{prefix}/file={path}",
        "orig_name": image.name,
        "size": len(image.data),
        "mime_type": image.mime,
        "meta": {"_type": "gradio.FileData"},
    }


async def upload_files(
    session: aiohttp.ClientSession,
    base_url: str,
    images: Sequence[InputImage],
    *,
    upload_id: str,
    headers: Mapping[str, str],
    backend: str,
    limits: Limits,
    prefix: str = "/gradio_api",
    proxy: str | None = None,
) -> list[dict[str, Any]]:
    """``POST …/gradio_api/upload?upload_id=…`` (multipart, field ``files``): the Space keeps
    the files and answers their server paths; returns their ``FileData``, in order."""
    form = aiohttp.FormData()
    for image in images:
        form.add_field("files", image.data, filename=image.name, content_type=image.mime)
    with translated_errors(backend, limits):
        async with session.post(
            f"{base_url}{prefix}/upload",
            params={"upload_id": upload_id},
            data=form,
            headers=headers,
            timeout=limits.client_timeout(),
            proxy=proxy,
        ) as response:
            await raise_for_status(response, backend=backend)
            paths = _decode(await read_capped(response, MAX_JSON_BYTES, backend=backend), backend)
    if (
        not isinstance(paths, list)
        or len(paths) != len(images)
        or not all(isinstance(p, str) and p for p in paths)
    ):
        raise BackendError(
            f"{backend} did not keep the uploaded image", transient=True, backend=backend
        )
    return [file_data(base_url, p, i, prefix=prefix) for p, i in zip(paths, images, strict=True)]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A named Gradio function, as the Space describes it."""

    fn_index: int
    trigger_id: int | None
    parameters: tuple[str, ...]


async def describe_endpoint(
    session: aiohttp.ClientSession,
    base_url: str,
    api_name: str,
    *,
    backend: str,
    limits: Limits,
    headers: Mapping[str, str] | None = None,
    prefix: str = "/gradio_api",
) -> Endpoint:
    """Look ``api_name`` up in the Space's API description (``/gradio_api/info``) and its
    config (``/config``, for the ``fn_index`` and ``trigger_id`` the queue wants)."""
    name = api_name.lstrip("/")
    timeout = aiohttp.ClientTimeout(total=min(limits.total, 60), sock_connect=limits.connect)
    with translated_errors(backend, limits):
        async with session.get(
            f"{base_url}{prefix}/info", headers=headers, timeout=timeout
        ) as response:
            await raise_for_status(response, backend=backend)
            info = _decode(await read_capped(response, MAX_JSON_BYTES, backend=backend), backend)
        async with session.get(f"{base_url}/config", headers=headers, timeout=timeout) as response:
            await raise_for_status(response, backend=backend)
            config = _decode(await read_capped(response, MAX_JSON_BYTES, backend=backend), backend)
    named = info.get("named_endpoints") if isinstance(info, dict) else None
    entry = named.get(f"/{name}") if isinstance(named, dict) else None
    if not isinstance(entry, dict):
        raise BackendError(
            f"{backend} no longer offers the /{name} API; it may have changed or moved",
            unavailable=True,
            backend=backend,
        )
    parameters = tuple(
        str(p.get("parameter_name") or p.get("label") or "?")
        for p in entry.get("parameters") or ()
        if isinstance(p, dict)
    )
    dependencies = config.get("dependencies") if isinstance(config, dict) else None
    for index, dependency in enumerate(dependencies or ()):
        if isinstance(dependency, dict) and dependency.get("api_name") == name:
            fn_index = dependency.get("id", index)
            targets = dependency.get("targets") or []
            trigger = targets[0][0] if targets and isinstance(targets[0], list) else None
            return Endpoint(int(fn_index), trigger, parameters)
    raise BackendError(
        f"{backend}'s config does not list /{name}", unavailable=True, backend=backend
    )
