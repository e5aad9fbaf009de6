"""A fake Hugging Face hub and its Gradio Spaces on 127.0.0.1, for tests and benchmarks.

Why: the engine talks to the hub (token page, ZeroGPU JWT route) and to Spaces through
gradio's wire protocols (``/run/predict``, ``queue/join`` + SSE ``queue/data``, and
``/gradio_api/upload`` for input files).  Tests need those protocols byte-for-byte, offline,
fast, and with faults on demand.

The Spaces: the seed's three (``g4f-flux``, ``flux-dev``, ``janus``, the last also with
Janus-Pro-7B's image understanding), the official image Spaces (``flux-schnell``,
``flux-dev-official``, ``sd35``), FLUX.1 Kontext [dev] (``kontext``: edits an uploaded image;
its result is the upload with its colours inverted, so a test can tell which image was sent)
the official Janus-Pro-7B (``janus-official``: ``/multimodal_understanding`` answers
prompts naming the upload's average colour), finegrain's upscaler (``upscaler``: ``/process``)
and FLUX.1 Fill [dev] (``fill``: ``/infer``), whose inputs and drawings live in
``tests.fakes.retouch`` (what they were given: ``space.upscales``, ``space.fills``). Uploads are
kept in ``space.uploads``.

Use it as ``async with FakeSpace() as space: ...`` or, for a benchmark in its own process,
``python -m tests.fakes.space --port 0 [--delay S] [--noise] [--failure-rate R]``
(``--delay-spread F`` draws each job's generation time around ``--delay``, see
``generation_delay_for``).

Every finished generation is recorded in ``space.completions`` with the moment its result left
the server (``/run/predict``'s response, or the ``process_completed`` message on the stream),
and ``GET /_control/completions`` hands them to another process. Times are ``time.monotonic()``:
CLOCK_MONOTONIC on Linux, one clock for the whole machine, so another process (the fake
Discord) can subtract its own ``time.monotonic()`` readings from them.

Accounts: ``add_hub_user(name, token)`` makes a token the hub knows. ``GET
/hub/api/whoami-v2`` names its account (any other bearer: 401, as the hub answers), and the JWT
route hands out ZeroGPU tokens on that account (``IssuedToken.user``); every bearer that asked
for one is in ``jwt_bearers``, every whoami bearer in ``whoami_bearers``.

``failure_rate`` (a knob, ``--failure-rate`` on the command line) fails that share of
generation requests (``queue/join`` and ``/run/predict``) with one of ``RANDOM_FAILURES``,
chosen by a RNG seeded from ``failure_seed``, the Space, the prompt and the attempt number, so
a rerun fails the same jobs whatever order they arrive in. Each injected failure is recorded in
``space.failures`` (and under ``"failures"`` in ``GET /_control/completions``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import html
import http
import io
import json
import random
import signal
import struct
import sys
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from io import BytesIO
from typing import Any, Literal

from aiohttp import BodyPartReader, web
from PIL import Image, ImageDraw, ImageOps

from tests.fakes import retouch

SPACE_NAMES = (
    "g4f-flux", "flux-dev", "janus", "flux-schnell", "flux-dev-official", "sd35", "kontext",
    "janus-official", "upscaler", "fill",
)  # fmt: skip
FAULT_TARGETS = (*SPACE_NAMES, "hub")
MAX_SEED = 2**31 - 1
JANUS_SIZE = 384
FLUX_DEV_RANGE = (256, 2048)
G4F_RANGE = (32, 2048)
TOKEN_EXPIRED = "ZeroGPU token expired"
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@dataclass(frozen=True)
class Fn:
    """One queued Gradio function of a Space: its numbering, API name, inputs and what it does
    (``image``: draw from a prompt; ``edit``: draw from an uploaded image and a prompt;
    ``describe``: answer a question about an uploaded image; ``upscale`` and ``fill``: see
    ``tests.fakes.retouch``)."""

    fn_index: int
    trigger_id: int
    api_name: str
    parameters: tuple[str, ...]
    task: Literal["image", "edit", "describe", "upscale", "fill"] = "image"


@dataclass(frozen=True)
class InferSpace:
    """An official Space reached by ``api_name`` /infer: its inputs and where things are."""

    space_id: str
    env_url: str
    env_id: str
    parameters: tuple[str, ...]
    seed_at: int
    size_at: int  # index of width; height follows
    side_range: tuple[int, int]


INFER_SPACES = {
    "flux-schnell": InferSpace(
        "black-forest-labs/FLUX.1-schnell", "FLUX_SCHNELL_SPACE_URL", "FLUX_SCHNELL_SPACE_ID",
        ("prompt", "seed", "randomize_seed", "width", "height", "num_inference_steps"),
        1, 3, (256, 2048),
    ),
    "flux-dev-official": InferSpace(
        "black-forest-labs/FLUX.1-dev", "FLUX_DEV_OFFICIAL_SPACE_URL", "FLUX_DEV_OFFICIAL_SPACE_ID",
        ("prompt", "seed", "randomize_seed", "width", "height", "guidance_scale",
         "num_inference_steps"),
        1, 3, (256, 2048),
    ),
    "sd35": InferSpace(
        "stabilityai/stable-diffusion-3.5-large", "SD35_SPACE_URL", "SD35_SPACE_ID",
        ("prompt", "negative_prompt", "seed", "randomize_seed", "width", "height",
         "guidance_scale", "num_inference_steps"),
        2, 4, (512, 1440),
    ),
}  # fmt: skip
"""The official Spaces; each also serves ``/config`` and ``/gradio_api/info`` (the API
description the engine checks at first use)."""

OTHER_OFFICIAL = {
    "kontext": ("black-forest-labs/FLUX.1-Kontext-Dev", "KONTEXT_SPACE_URL", "KONTEXT_SPACE_ID"),
    "janus-official": (
        "deepseek-ai/Janus-Pro-7B", "JANUS_OFFICIAL_SPACE_URL", "JANUS_OFFICIAL_SPACE_ID",
    ),
    "upscaler": (
        "finegrain/finegrain-image-enhancer", "UPSCALE_SPACE_URL", "UPSCALE_SPACE_ID",
    ),
    "fill": ("black-forest-labs/FLUX.1-Fill-dev", "FILL_SPACE_URL", "FILL_SPACE_ID"),
}  # fmt: skip
"""The other official Spaces: hub id and the settings that point the engine at them."""

# The real Spaces' inputs: FLUX.1-Kontext-Dev's app.py ``infer(input_image, prompt, seed,
# randomize_seed, guidance_scale, steps)``; Janus-Pro-7B's app ``multimodal_understanding(image,
# question, seed, top_p, temperature)`` and ``generate_image(prompt, seed, guidance,
# t2i_temperature)``.
KONTEXT_PARAMETERS = ("input_image", "prompt", "seed", "randomize_seed", "guidance_scale", "steps")
UNDERSTANDING_PARAMETERS = ("image", "question", "seed", "top_p", "temperature")
JANUS_IMAGE_PARAMETERS = ("prompt", "seed", "guidance", "t2i_temperature")
KONTEXT_STEPS = (1, 30)

# Gradio functions per queue Space (the engine's function first: ``api_parameters`` changes
# its advertised inputs).
QUEUE_FNS: dict[str, tuple[Fn, ...]] = {
    "flux-dev": (Fn(2, 4, "generate", INFER_SPACES["flux-dev-official"].parameters),),
    "janus": (
        Fn(3, 20, "generate_image", JANUS_IMAGE_PARAMETERS),
        Fn(2, 10, "multimodal_understanding", UNDERSTANDING_PARAMETERS, "describe"),
    ),
    "flux-schnell": (Fn(2, 5, "infer", INFER_SPACES["flux-schnell"].parameters),),
    "flux-dev-official": (Fn(3, 7, "infer", INFER_SPACES["flux-dev-official"].parameters),),
    "sd35": (Fn(1, 9, "infer", INFER_SPACES["sd35"].parameters),),
    "kontext": (Fn(2, 7, "infer", KONTEXT_PARAMETERS, "edit"),),
    "janus-official": (
        Fn(4, 12, "multimodal_understanding", UNDERSTANDING_PARAMETERS, "describe"),
        Fn(5, 22, "generate_image", JANUS_IMAGE_PARAMETERS),
    ),
    "upscaler": (Fn(1, 4, "process", retouch.UPSCALE_PARAMETERS, "upscale"),),
    "fill": (Fn(3, 11, "infer", retouch.FILL_PARAMETERS, "fill"),),
}
KNOB_NAMES = frozenset(
    {
        "generation_delay",
        "delay_spread",
        "progress_steps",
        "progress_desc",
        "heartbeat_every",
        "previews",
        "log_lines",
        "enforce_tokens",
        "failure_rate",
        "describe_answer",
    }
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can check what the engine sent."""

    method: str
    space: str  # "hub", "g4f-flux", "flux-dev", "janus" or "" for anything else
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any | None
    at: float  # time.monotonic()
    peer: Any = None  # the client's (host, port): the same for requests on one connection


@dataclass(frozen=True)
class Upload:
    """One file received by ``/gradio_api/upload``, byte for byte."""

    space: str
    upload_id: str
    path: str
    filename: str
    content_type: str
    data: bytes
    headers: dict[str, str]  # lower-case names


@dataclass(frozen=True)
class Completion:
    """A generation that produced an image, and when its result was sent to the client."""

    space: str
    prompt: str
    seed: int | None
    session_hash: str
    at: float  # time.monotonic() once the response / process_completed message was written

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "prompt": self.prompt,
            "seed": self.seed,
            "session_hash": self.session_hash,
            "at": self.at,
        }


@dataclass(frozen=True)
class InjectedFailure:
    """A generation request that ``failure_rate`` made fail, and how."""

    space: str
    kind: str  # fault_kind(): "ServerError(503)", "CompletedError" or "StreamBreak"
    prompt: str
    attempt: int  # 0 for the first request with this prompt to this Space, 1 for a retry...
    at: float  # time.monotonic() when the request arrived

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "kind": self.kind,
            "prompt": self.prompt,
            "attempt": self.attempt,
            "at": self.at,
        }


@dataclass(frozen=True)
class ServedFile:
    """One file response, so tests can compare it with what the bot attached."""

    url: str
    path: str
    bytes: bytes
    content_type: str


@dataclass(frozen=True)
class IssuedToken:
    """A ZeroGPU JWT handed out by the hub; spaces check it when ``enforce_tokens``."""

    token: str
    sub: str
    exp: float  # precise expiry (time.time() scale); the JWT claim is rounded
    kind: Literal["page", "jwt"]
    bearer: str | None
    user: str | None = None  # the account of a known bearer (``add_hub_user``)


@dataclass(frozen=True)
class HubUser:
    """An account of the fake hub, known by its access token."""

    name: str
    token: str
    pro: bool = False


# ---------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class JsonError:
    """The join/predict (or hub request) answers ``status`` with ``{"error": error}``."""

    status: int
    error: str


@dataclass(frozen=True)
class HtmlError:
    """An HTML error page, as HF's proxy serves when a Space is down."""

    status: int = 503


@dataclass(frozen=True)
class TextError:
    """A text/plain error body."""

    status: int
    text: str


@dataclass(frozen=True)
class CompletedError:
    """The job is accepted but ends in ``process_completed`` with ``success: false``.

    On ``/run/predict`` it is a 500 ``{"error": error}``, as gradio answers a raised gr.Error.
    """

    error: str
    title: str | None = "Error"


@dataclass(frozen=True)
class StreamBreak:
    """The SSE response is cut after ``after_events`` messages of the job.

    ``abrupt=True`` aborts the TCP connection mid-body (the client sees a payload error);
    ``abrupt=False`` ends the chunked body cleanly, just without completion/close_stream.
    On ``/run/predict`` the connection is closed without any response.
    """

    after_events: int = 2
    abrupt: bool = True


@dataclass(frozen=True)
class MalformedJson:
    """The stream sends a truncated JSON line then closes; /run/predict answers non-JSON.

    On the hub: the page lacks the token blob and the JWT route answers non-JSON.
    """


@dataclass(frozen=True)
class Hang:
    """Silence until the server closes.

    ``stage="request"``: the join/predict/hub request never answers.
    ``stage="stream"``: the join succeeds, the SSE headers are sent, then nothing.
    """

    stage: Literal["request", "stream"] = "request"


@dataclass(frozen=True)
class GoSilent:
    """The stream sends ``after_events`` messages, then stays open with no heartbeats."""

    after_events: int = 2


Fault = (
    JsonError
    | HtmlError
    | TextError
    | CompletedError
    | StreamBreak
    | MalformedJson
    | Hang
    | GoSilent
)


def ServerError(status: int = 503) -> JsonError:
    """A transient JSON error, e.g. 503 ``{"error": "Service Unavailable"}``."""
    return JsonError(status, http.HTTPStatus(status).phrase)


def quota_message(retry: str = "0:09:48", *, retry_first: bool = False) -> str:
    """ZeroGPU's quota error; the retry time sits after the `` <a `` link unless retry_first."""
    head = "You have exceeded your GPU quota (60s requested vs. 41s left)."
    # Text of the message only (as ZeroGPU words it); nothing ever fetches this link.
    link = '<a href="https://huggingface.co/settings/billing">Subscribe to PRO</a>'  # text only
    if retry_first:
        return f"{head} Try again in {retry}. {link} to get 5x more usage quota"
    return f"{head} {link} to get 5x more usage quota, or retry in {retry}"


def QuotaExceeded(retry: str = "0:09:48", *, retry_first: bool = False) -> CompletedError:
    """A CompletedError with ZeroGPU's quota wording (and its HTML link)."""
    return CompletedError(quota_message(retry, retry_first=retry_first), "ZeroGPU quota exceeded")


RANDOM_FAILURES: tuple[Fault, ...] = (
    ServerError(503),
    CompletedError("CUDA out of memory"),
    StreamBreak(),
)
"""What ``failure_rate`` injects, one picked at random per failing request: a transient error
on join/predict, an error inside the job (a 500 on ``/run/predict``), a cut stream."""


def fault_kind(fault: Fault) -> str:
    """A short name for a fault, e.g. ``ServerError(503)``, ``CompletedError``."""
    if isinstance(fault, JsonError) and fault.error == http.HTTPStatus(fault.status).phrase:
        return f"ServerError({fault.status})"
    return type(fault).__name__


@dataclass(frozen=True)
class OtherHost:
    """Result URLs name ``localhost`` instead of ``127.0.0.1`` (same port)."""


@dataclass(frozen=True)
class RedirectOtherHost:
    """The result URL is on the right host but answers 302 to ``http://localhost:PORT/...``."""


@dataclass(frozen=True)
class NotAnImage:
    """The result file is ``b"<html>nope</html>"`` served as image/png."""


@dataclass(frozen=True)
class Oversize:
    """The result file is a valid PNG signature + IHDR chunk followed by ``bytes`` zero bytes.

    Cheap to serve at any size; it does not decode, the point is the size limit.
    """

    bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class ClaimsSize:
    """The result file is a PNG header claiming ``width`` x ``height`` pixels and little else:
    a decompression bomb's calling card (a few bytes that would decode to gigabytes)."""

    width: int
    height: int


FileFault = OtherHost | RedirectOtherHost | NotAnImage | Oversize | ClaimsSize

_REQUEST_FAULTS = (JsonError, HtmlError, TextError)
_HUB_FAULTS = (JsonError, HtmlError, TextError, Hang, MalformedJson)


@dataclass
class _FaultSlot:
    fault: Fault
    remaining: int | None


# ---------------------------------------------------------------------------- images


def _seed_colour(seed: int) -> tuple[int, int, int]:
    """A stable colour per seed, so different seeds give visibly different images."""
    h = zlib.crc32(str(seed).encode())
    return (h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF)


def _encode_png(image: Image.Image, compress_level: int = 6) -> bytes:
    buf = BytesIO()
    image.save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


@functools.lru_cache(maxsize=512)
def solid_png(width: int, height: int, seed: int) -> bytes:
    """A solid colour from the seed plus a small mark; cached so benchmarks skip Pillow."""
    colour = _seed_colour(seed)
    image = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(image)
    inverse = tuple(255 - c for c in colour)
    side = max(4, min(width, height) // 6)
    x = (seed % 5) * (width - side) // 4
    y = ((seed // 5) % 5) * (height - side) // 4
    draw.rectangle((x, y, x + side - 1, y + side - 1), fill=inverse)
    return _encode_png(image)


@functools.lru_cache(maxsize=16)
def noise_png(width: int, height: int) -> bytes:
    """Incompressible pixels (like a photo's size), deterministic and cached per size."""
    pixels = random.Random(f"{width}x{height}").randbytes(width * height * 3)
    return _encode_png(Image.frombytes("RGB", (width, height), pixels), compress_level=1)


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk: looks like a PNG to a magic-bytes check."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def claiming_png(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR (CRC fixed) claims ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@functools.lru_cache(maxsize=4)
def _oversize_body(size: int) -> bytes:
    return png_header(1024, 1024) + bytes(size)


# ------------------------------------------------------------------------------- JWT


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(payload: dict[str, Any]) -> str:
    """A real-shaped (unverifiable) JWT, as the hub hands out."""
    header = {"alg": "EdDSA", "typ": "JWT"}
    parts = [json.dumps(p, separators=(",", ":")).encode() for p in (header, payload)]
    return ".".join([*(_b64url(p) for p in parts), _b64url(random.randbytes(64))])


def decode_jwt_payload(token: str) -> dict[str, Any]:
    """Read a JWT's claims without checking the signature (tests and the fake only)."""
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _numeric_date(t: float, ttl: float) -> float | int:
    """Whole seconds as the hub does, except for sub-second test TTLs that would vanish."""
    return int(t) if float(ttl).is_integer() else round(t, 3)


# ------------------------------------------------------------------------ page html

_PAGE_TEMPLATE = """<!doctype html>
<html class="">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0, user-scalable=no" />
<meta name="description" content="Discover amazing ML apps made by the community" />
<meta property="og:title" content="{title} - a Hugging Face Space by {owner}" />
<meta property="og:type" content="website" />
<meta property="og:url" content="/spaces/{owner}/{name}" />
<link rel="stylesheet" href="/front/build/kube-0a1b2c3/style.css" />
<link rel="preconnect" href="https://fonts.gstatic.com" />
<title>{title} - a Hugging Face Space by {owner}</title>
<script defer data-domain="huggingface.co" src="/js/script.js"></script>
</head>
<body class="flex flex-col min-h-dvh bg-white dark:bg-gray-950 text-black SpacePage">
<div class="flex min-h-dvh flex-col">
<div class="SVELTE_HYDRATER contents" data-target="MainHeader" data-props="{header}"><header
class="border-b border-gray-100"><div class="w-full px-4 container flex h-16 items-center">
<a class="mr-5 flex flex-none items-center lg:mr-6" href="/">Hugging Face</a>
<nav aria-label="Main" class="ml-auto hidden lg:block"><ul class="flex items-center space-x-1">
<li><a class="group flex items-center px-2 py-0.5" href="/models">Models</a></li>
<li><a class="group flex items-center px-2 py-0.5" href="/datasets">Datasets</a></li>
<li><a class="group flex items-center px-2 py-0.5" href="/spaces">Spaces</a></li>
<li><a class="group flex items-center px-2 py-0.5" href="/pricing">Pricing</a></li>
</ul></nav></div></header></div>
<main class="flex flex-1 flex-col">
<div class="SVELTE_HYDRATER contents" data-target="SpaceHeader" data-props="{space_header}"></div>
<div class="SVELTE_HYDRATER contents" data-target="SpacePageContent" data-props="{props}">
<div class="flex flex-1 flex-col"><iframe src="{iframe}" title="{title}" class="space-iframe"
allow="accelerometer; ambient-light-sensor; autoplay; camera; clipboard-read; clipboard-write"
sandbox="allow-forms allow-modals allow-popups allow-same-origin allow-scripts"></iframe></div>
</div>
</main>
<footer class="b-12 mb-2 flex border-t border-gray-100 md:h-14"><nav
class="container relative flex flex-col justify-between space-y-2 py-6 text-gray-500">
<div class="flex items-center gap-x-2"><a href="/terms-of-service">TOS</a>
<a href="/privacy">Privacy</a><a href="/huggingface">About</a><a href="/jobs">Jobs</a></div>
</nav></footer>
</div>
<script>
import("/front/build/kube-0a1b2c3/index.js");
window.moonSha = "kube-0a1b2c3/";
window.__hf_deferred = {{}};
</script>
</body>
</html>
"""


def _escaped_json(obj: Any) -> str:
    """JSON inside an HTML attribute, escaped the way the hub's Svelte pages do it."""
    return html.escape(json.dumps(obj, separators=(",", ":")), quote=True)


def space_page(owner: str, name: str, token: str | None, session_uuid: str) -> str:
    """The Space page, with the ZeroGPU token blob (omitted when ``token`` is None)."""
    header = {"classNames": "", "isWide": False, "isZh": False, "csrfToken": uuid.uuid4().hex}
    space_header = {
        "space": {"author": owner, "id": f"{owner}/{name}", "likes": 9876, "private": False},
        "accessToken": None,
        "sdk": "gradio",
    }
    props: dict[str, Any] = {
        "iframe": {"embedSrc": f"https://{owner}-{name}.hf.space".lower(), "src": ""},
        "space": {
            "author": owner,
            "id": f"{owner}/{name}",
            "runtime": {"stage": "RUNNING", "hardware": {"current": "zero-a10g"}},
            "sdk": "gradio",
            "sdkVersion": "5.49.1",
            "title": name,
        },
        "zeroGPU": {"enabled": True, "quotaSeconds": 300},
    }
    if token is not None:
        props["token"] = token
        props["sessionUuid"] = session_uuid
    props["canWrite"] = False
    return _PAGE_TEMPLATE.format(
        title=html.escape(name),
        owner=html.escape(owner),
        name=html.escape(name),
        header=_escaped_json(header),
        space_header=_escaped_json(space_header),
        props=_escaped_json(props),
        iframe=f"https://{owner}-{name}.hf.space/?__theme=light".lower(),
    )


def _html_error_page(status: int) -> str:
    phrase = http.HTTPStatus(status).phrase
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8" />\n'
        f"<title>{status} {phrase}</title>\n</head>\n<body>\n"
        f"<h1>{status} {phrase}</h1>\n"
        "<p>The Space is temporarily unavailable. Please try again later.</p>\n"
        "</body>\n</html>\n"
    )


# ----------------------------------------------------------------- queue internals


@dataclass
class _Job:
    """One accepted queue/join, waiting for (or running on) a queue/data stream."""

    space: str
    event_id: str
    session_hash: str
    data: list[Any]
    fault: Fault | None
    token_error: str | None
    fn: Fn


@dataclass(frozen=True)
class _Raw:
    """Bytes written to the stream as they are (for malformed messages)."""

    data: bytes


@dataclass(frozen=True)
class _Cut:
    abrupt: bool


class _Signal:
    """Sentinels passed through a stream's queue."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_DONE = _Signal("done")  # one job finished
_SILENCE = _Signal("silence")  # stop heartbeats; the job will not finish
_CLOSE = _Signal("close")  # the server is closing

_Item = dict[str, Any] | _Raw | _Cut | _Signal


@dataclass(eq=False)
class _Stream:
    """One open queue/data response: jobs run as tasks that feed ``out``."""

    out: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    active: int = 0
    finishing: bool = False  # close_stream is on its way: new joins must wait for a new stream

    def spawn(self, work: Awaitable[None]) -> None:
        self.active += 1
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(eq=False)
class _Session:
    pending: deque[_Job] = field(default_factory=deque)
    stream: _Stream | None = None


@dataclass
class _StoredFile:
    space: str
    data: bytes
    result: bool  # file faults apply to results, not previews


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _space_of(path: str) -> str:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in FAULT_TARGETS else ""


# ------------------------------------------------------------------------ the fake


class FakeSpace:
    """The hub plus every Space of ``SPACE_NAMES`` on one aiohttp server."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        generation_delay: float = 0.0,
        progress_steps: int = 4,
        progress_desc: str | None = "Sampling",
        heartbeat_every: float = 0.0,
        previews: bool = True,
        log_lines: list[str] | None = None,
        janus_images: int = 4,
        token_ttl: float = 600.0,
        enforce_tokens: bool = False,
        noise: bool = False,
        failure_rate: float = 0.0,
        failure_seed: int = 0,
        delay_spread: float = 0.0,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be within 0..1")
        self.host = host
        self.port = port
        # Knobs (plain attributes; per-Space overrides live in ``per_space``).
        self.generation_delay = generation_delay
        #: 0: every job takes generation_delay; else a job's time is drawn around it (see
        #: generation_delay_for), seeded by failure_seed and its prompt, so reruns match.
        self.delay_spread = delay_spread
        self.progress_steps = progress_steps
        #: The words of each progress step; None: none, as ``gr.Progress(track_tqdm=True)``
        #: sends for a pipeline whose progress bar has no description.
        self.progress_desc = progress_desc
        self.heartbeat_every = heartbeat_every
        self.previews = previews
        self.log_lines: list[str] = list(log_lines or [])
        self.janus_images = janus_images
        self.token_ttl = token_ttl
        self.enforce_tokens = enforce_tokens
        self.noise = noise
        #: What image understanding answers (None: prompts naming the upload's colour).
        self.describe_answer: str | None = None
        #: Share of generation requests failed with one of RANDOM_FAILURES (see the docstring).
        self.failure_rate = failure_rate
        self.failure_seed = failure_seed
        self.per_space: dict[str, dict[str, Any]] = {name: {} for name in SPACE_NAMES}
        self.file_fault: FileFault | None = None
        #: Override an official Space's advertised /infer inputs (a Space that changed).
        self.api_parameters: dict[str, tuple[str, ...]] = {}
        # Records.
        self.requests: list[RecordedRequest] = []
        self.served: list[ServedFile] = []
        self.images_by_url: dict[str, bytes] = {}
        self.page_fetches: Counter[str] = Counter()
        self.jwt_fetches: Counter[str] = Counter()
        self.jwt_bearers: list[str] = []
        self.whoami_bearers: list[str] = []
        #: Access tokens the hub knows, and their accounts (``add_hub_user``).
        self.hub_users: dict[str, HubUser] = {}
        #: Files received by ``/gradio_api/upload``, in arrival order.
        self.uploads: list[Upload] = []
        #: What the upscaler and Fill were given, in the order their jobs ran.
        self.upscales: list[retouch.UpscaleCall] = []
        self.fills: list[retouch.FillCall] = []
        self.issued_tokens: dict[str, IssuedToken] = {}
        #: Successful generations, in the order their results were sent.
        self.completions: list[Completion] = []
        #: Requests ``failure_rate`` made fail, in arrival order.
        self.failures: list[InjectedFailure] = []
        # Internals.
        self._finishing: dict[str, Completion] = {}  # event_id -> not yet written
        self._faults: dict[str, _FaultSlot] = {}
        self._attempts: Counter[tuple[str, str]] = Counter()  # (space, prompt) -> requests
        self._sessions: dict[str, _Session] = {}
        self._streams: set[_Stream] = set()
        self._files: dict[tuple[str, str], _StoredFile] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeSpace:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind (port 0 picks a free port) and serve."""
        # Spaces take uploads of many MB (a photo to edit); aiohttp's default is 1 MiB.
        app = web.Application(
            middlewares=[self._record_middleware], client_max_size=256 * 1024 * 1024
        )
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Wake every hung or silent handler first, so shutdown takes milliseconds."""
        self._closing.set()
        for stream in list(self._streams):
            stream.out.put_nowait(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------------- urls

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def hub_url(self) -> str:
        return f"{self.url}/hub"

    @property
    def flux_predict_url(self) -> str:
        return f"{self.url}/g4f-flux/run/predict"

    @property
    def flux_dev_url(self) -> str:
        return f"{self.url}/flux-dev"

    @property
    def janus_url(self) -> str:
        return f"{self.url}/janus"

    @property
    def kontext_url(self) -> str:
        return f"{self.url}/kontext"

    @property
    def janus_official_url(self) -> str:
        return f"{self.url}/janus-official"

    @property
    def upscaler_url(self) -> str:
        return f"{self.url}/upscaler"

    @property
    def fill_url(self) -> str:
        return f"{self.url}/fill"

    def env(self) -> dict[str, str]:
        """The environment that points the engine at this fake (every Space it knows)."""
        env = {
            "HF_ENDPOINT": self.hub_url,
            "G4F_FLUX_URL": self.flux_predict_url,
            "FLUX_DEV_SPACE_URL": self.flux_dev_url,
            "JANUS_SPACE_URL": self.janus_url,
        }
        for name, infer in INFER_SPACES.items():
            env[infer.env_url] = f"{self.url}/{name}"
            env[infer.env_id] = infer.space_id
        for name, (space_id, env_url, env_id) in OTHER_OFFICIAL.items():
            env[env_url] = f"{self.url}/{name}"
            env[env_id] = space_id
        return env

    def add_hub_user(self, name: str, token: str, *, pro: bool = False) -> HubUser:
        """An account whose access token ``whoami-v2`` accepts."""
        user = HubUser(name, token, pro)
        self.hub_users[token] = user
        return user

    def issued_for(self, zerogpu_token: str | None) -> IssuedToken | None:
        """The ZeroGPU token a request carried, as the hub handed it out (None: not ours)."""
        return self.issued_tokens.get(zerogpu_token or "")

    # ------------------------------------------------------------- knobs, faults

    def set_knobs(self, space_name: str, **knobs: Any) -> None:
        """Override knobs for one Space (e.g. a slower Janus)."""
        if space_name not in SPACE_NAMES:
            raise ValueError(f"unknown space {space_name!r}")
        unknown = set(knobs) - KNOB_NAMES
        if unknown:
            raise ValueError(f"not per-space knobs: {sorted(unknown)}")
        self.per_space[space_name].update(knobs)

    def knob(self, space_name: str, name: str) -> Any:
        """The knob's value for a Space: its override, else the global attribute."""
        return self.per_space.get(space_name, {}).get(name, getattr(self, name))

    def generation_delay_for(self, space_name: str, prompt: Any) -> float:
        """This job's generation time: ``generation_delay``, or with ``delay_spread`` > 0 a
        draw from a normal distribution around it (standard deviation ``delay_spread`` times
        the mean, at least a tenth of the mean), seeded by ``failure_seed`` and the prompt."""
        delay = float(self.knob(space_name, "generation_delay"))
        spread = float(self.knob(space_name, "delay_spread"))
        if spread <= 0 or delay <= 0:
            return delay
        rng = random.Random(f"delay:{self.failure_seed}:{space_name}:{prompt}")
        return max(delay / 10, rng.gauss(delay, delay * spread))

    def set_fault(self, space_name: str, fault: Fault, times: int | None = None) -> None:
        """Make the next ``times`` requests (None: all, until clear_faults) to a Space fail."""
        if space_name not in FAULT_TARGETS:
            raise ValueError(f"unknown space {space_name!r}")
        if space_name == "hub" and not isinstance(fault, _HUB_FAULTS):
            raise ValueError(f"{type(fault).__name__} does not apply to the hub")
        if isinstance(fault, Hang) and space_name == "hub" and fault.stage != "request":
            raise ValueError("the hub has no stream to hang")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        self._faults[space_name] = _FaultSlot(fault, times)

    def clear_faults(self) -> None:
        """Recover every Space, and drop the file fault too."""
        self._faults.clear()
        self.file_fault = None

    def _take_fault(self, space_name: str) -> Fault | None:
        slot = self._faults.get(space_name)
        if slot is None:
            return None
        if slot.remaining is not None:
            slot.remaining -= 1
            if slot.remaining <= 0:
                del self._faults[space_name]
        return slot.fault

    def _take_request_fault(self, space_name: str) -> Fault | None:
        """The pending fault if it fails a request outright (an upload takes no other)."""
        slot = self._faults.get(space_name)
        if slot is None or not (
            isinstance(slot.fault, _REQUEST_FAULTS)
            or (isinstance(slot.fault, Hang) and slot.fault.stage == "request")
        ):
            return None
        return self._take_fault(space_name)

    def _random_failure(
        self, space_name: str, data: list[Any], fn: Fn | None = None
    ) -> Fault | None:
        """``failure_rate``'s draw for one generation request (recorded when it fails)."""
        rate = float(self.knob(space_name, "failure_rate"))
        if rate <= 0:
            return None
        prompt = _prompt_of(fn, data)
        attempt = self._attempts[(space_name, prompt)]
        self._attempts[(space_name, prompt)] += 1
        rng = random.Random(f"{self.failure_seed}:{space_name}:{prompt}:{attempt}")
        if rng.random() >= rate:
            return None
        fault = rng.choice(RANDOM_FAILURES)
        self.failures.append(
            InjectedFailure(space_name, fault_kind(fault), prompt, attempt, time.monotonic())
        )
        return fault

    # ---------------------------------------------------------------- recording

    def joins(self, space_name: str) -> list[RecordedRequest]:
        """The queue/join (or run/predict) calls made to one Space."""
        return [
            r
            for r in self.requests
            if r.space == space_name and r.path.endswith(("/queue/join", "/run/predict"))
        ]

    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_control/"):
            return await handler(request)  # not part of what the engine sent
        body: Any | None = None
        if request.can_read_body and not request.content_type.startswith("multipart/"):
            raw = await request.read()
            with contextlib.suppress(ValueError):
                body = json.loads(raw) if raw else None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                space=_space_of(request.path),
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=body,
                at=time.monotonic(),
                peer=request.transport.get_extra_info("peername") if request.transport else None,
            )
        )
        return await handler(request)

    # ------------------------------------------------------------------- routes

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_control/completions", self._control_completions)
        app.router.add_get("/hub/spaces/{owner}/{name}", self._hub_page)
        app.router.add_get("/hub/api/spaces/{owner}/{name}/jwt", self._hub_jwt)
        app.router.add_get("/hub/api/whoami-v2", self._hub_whoami)
        app.router.add_post("/g4f-flux/run/predict", self._predict)
        app.router.add_get("/g4f-flux/file={path:.+}", self._file_route("g4f-flux"))
        for name in QUEUE_FNS:
            app.router.add_post(f"/{name}/gradio_api/queue/join", self._join_route(name))
            app.router.add_get(f"/{name}/gradio_api/queue/data", self._data_route(name))
            app.router.add_get(f"/{name}/gradio_api/file={{path:.+}}", self._file_route(name))
            app.router.add_post(f"/{name}/gradio_api/upload", self._upload_route(name))
            app.router.add_get(f"/{name}/gradio_api/info", self._info_route(name))
        for name in (*QUEUE_FNS, "g4f-flux"):
            app.router.add_get(f"/{name}/config", self._config_route(name))

    def _config_route(self, space_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """``/config``: gradio's app config; its ``dependencies`` give fn_index and triggers."""

        async def handler(request: web.Request) -> web.Response:
            fault = self._take_fault(space_name)
            if fault is not None:
                response = await self._request_fault_response(fault)
                if response is not None:
                    return response
            dependencies: list[dict[str, Any]] = [
                {"id": 0, "targets": [[1, "load"]], "api_name": "load", "backend_fn": True}
            ]
            for fn in QUEUE_FNS.get(space_name, ()):
                dependencies.append(
                    {
                        "id": fn.fn_index,
                        "targets": [[fn.trigger_id, "click"], [fn.trigger_id + 1, "submit"]],
                        "api_name": fn.api_name,
                        "backend_fn": True,
                        "queue": True,
                    }
                )
            return web.json_response(
                {"version": "5.35.0", "mode": "blocks", "dependencies": dependencies}
            )

        return handler

    def _info_route(self, space_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """``/gradio_api/info``: the API description (``api_parameters`` changes it)."""

        async def handler(request: web.Request) -> web.Response:
            endpoints = {}
            for i, fn in enumerate(QUEUE_FNS[space_name]):
                names = (self.api_parameters.get(space_name) if i == 0 else None) or fn.parameters
                endpoints[f"/{fn.api_name}"] = {
                    "parameters": [_parameter_info(name) for name in names],
                    "returns": _returns_info(fn),
                }
            return web.json_response({"named_endpoints": endpoints, "unnamed_endpoints": {}})

        return handler

    # ------------------------------------------------------------------ uploads

    def _upload_route(self, space_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self._upload(request, space_name)

        return handler

    async def _upload(self, request: web.Request, space_name: str) -> web.Response:
        """``/gradio_api/upload``: multipart field ``files``; answers the files' server paths."""
        fault = self._take_request_fault(space_name)
        if fault is not None:
            response = await self._request_fault_response(fault)
            if response is not None:
                return response
        if not request.content_type.startswith("multipart/form-data"):
            return web.json_response({"detail": "There was an error parsing the body"}, 400)
        upload_id = request.query.get("upload_id", "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        paths = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name != "files":
                continue
            data = await part.read()
            filename = part.filename or "file"
            path = f"/tmp/gradio/{uuid.uuid4().hex}/{filename}"
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            self._files[(space_name, path)] = _StoredFile(space_name, bytes(data), result=False)
            self.uploads.append(
                Upload(space_name, upload_id, path, filename, content_type, bytes(data), headers)
            )
            paths.append(path)
        if not paths:
            return web.json_response(
                {
                    "detail": [
                        {"type": "missing", "loc": ["body", "files"], "msg": "Field required"}
                    ]
                },
                status=422,
            )
        return web.json_response(paths)

    # ----------------------------------------------------------------- helpers

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server closes."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _hang(self) -> web.Response:
        await self._closing.wait()
        return web.json_response({"error": "server closing"}, status=503)

    async def _request_fault_response(self, fault: Fault) -> web.Response | None:
        """The response for a fault that fails the request itself, else None."""
        if isinstance(fault, JsonError):
            return web.json_response({"error": fault.error}, status=fault.status)
        if isinstance(fault, HtmlError):
            return web.Response(
                text=_html_error_page(fault.status), status=fault.status, content_type="text/html"
            )
        if isinstance(fault, TextError):
            return web.Response(text=fault.text, status=fault.status, content_type="text/plain")
        if isinstance(fault, Hang) and fault.stage == "request":
            return await self._hang()
        return None

    def _token_error(self, space_name: str, request: web.Request) -> str | None:
        """ZeroGPU's check: with enforcement on, only known, unexpired tokens pass."""
        if not self.knob(space_name, "enforce_tokens"):
            return None
        issued = self.issued_tokens.get(request.headers.get("x-zerogpu-token", ""))
        if issued is None or issued.exp <= time.time():
            return TOKEN_EXPIRED
        return None

    def _issue_token(
        self, owner: str, name: str, kind: Literal["page", "jwt"], bearer: str | None
    ) -> str:
        now = time.time()
        exp = now + self.token_ttl
        payload: dict[str, Any] = {
            "sub": f"/spaces/{owner}/{name}",
            "exp": _numeric_date(exp, self.token_ttl),
            "iat": int(now),
        }
        user = self.hub_users.get(bearer or "")
        if kind == "page":
            payload["onBehalfOf"] = {"kind": "anonymous", "_id": uuid.uuid4().hex[:24]}
        else:
            name = user.name if user else "fake-user"
            payload["user"] = name
            payload["onBehalfOf"] = {
                "kind": "user",
                "_id": uuid.uuid4().hex[:24],
                "user": name,
                "isPro": bool(user and user.pro),
            }
        token = make_jwt(payload)
        self.issued_tokens[token] = IssuedToken(
            token, payload["sub"], exp, kind, bearer, user.name if user else None
        )
        return token

    def _file_prefix(self, space_name: str) -> str:
        if space_name == "g4f-flux":
            return "/g4f-flux/file="
        return f"/{space_name}/gradio_api/file="

    def _publish(self, space_name: str, data: bytes, *, result: bool) -> dict[str, Any]:
        """Store a file for the file route and return gradio's FileData for it."""
        path = f"/tmp/gradio/{uuid.uuid4().hex}/{'image' if result else 'preview'}.png"
        base = self.url
        if result and isinstance(self.file_fault, OtherHost):
            base = f"http://localhost:{self.port}"
        url = f"{base}{self._file_prefix(space_name)}{path}"
        self._files[(space_name, path)] = _StoredFile(space_name, data, result)
        self.images_by_url[url] = data
        return {
            "path": path,
            "url": url,
            "size": None,
            "orig_name": "image.png" if result else "preview.png",
            "mime_type": None,
            "is_stream": False,
            "meta": {"_type": "gradio.FileData"},
        }

    def _image(self, width: int, height: int, seed: int) -> bytes:
        return noise_png(width, height) if self.noise else solid_png(width, height, seed)

    async def _control_completions(self, request: web.Request) -> web.Response:
        """``{"now", "completions": [...]}`` for another process (see the module docstring)."""
        return web.json_response(
            {
                "now": time.monotonic(),
                "completions": [c.to_json() for c in self.completions],
                "failures": [f.to_json() for f in self.failures],
            }
        )

    # ---------------------------------------------------------------------- hub

    async def _hub_page(self, request: web.Request) -> web.Response:
        owner, name = request.match_info["owner"], request.match_info["name"]
        self.page_fetches[f"{owner}/{name}"] += 1
        fault = self._take_fault("hub")
        if fault is not None and not isinstance(fault, MalformedJson):
            response = await self._request_fault_response(fault)
            if response is not None:
                return response
        token = None if fault is not None else self._issue_token(owner, name, "page", None)
        page = space_page(owner, name, token, str(uuid.uuid4()))
        return web.Response(text=page, content_type="text/html")

    async def _hub_jwt(self, request: web.Request) -> web.Response:
        owner, name = request.match_info["owner"], request.match_info["name"]
        self.jwt_fetches[f"{owner}/{name}"] += 1
        auth = request.headers.get("Authorization", "")
        bearer = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not bearer:
            return web.json_response(
                {"error": "Invalid credentials in Authorization header"}, status=401
            )
        self.jwt_bearers.append(bearer)
        fault = self._take_fault("hub")
        if isinstance(fault, MalformedJson):
            return web.Response(text='{"token": "eyJ', content_type="application/json")
        if fault is not None:
            response = await self._request_fault_response(fault)
            if response is not None:
                return response
        return web.json_response({"token": self._issue_token(owner, name, "jwt", bearer)})

    async def _hub_whoami(self, request: web.Request) -> web.Response:
        """``whoami-v2``: the account of a known token; 401 for anything else."""
        auth = request.headers.get("Authorization", "")
        bearer = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        self.whoami_bearers.append(bearer)
        fault = self._take_fault("hub")
        if fault is not None:
            response = await self._request_fault_response(fault)
            if response is not None:
                return response
        user = self.hub_users.get(bearer)
        if user is None:
            return web.json_response(
                {"error": "Invalid credentials in Authorization header"}, status=401
            )
        return web.json_response(
            {
                "type": "user",
                "id": uuid.uuid5(uuid.NAMESPACE_DNS, user.name).hex[:24],
                "name": user.name,
                "fullname": user.name.title(),
                "isPro": user.pro,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "imagine", "role": "read"},
                },
            }
        )

    # --------------------------------------------------------------- run/predict

    def _validate_predict(self, body: Any) -> str | None:
        """The old flux endpoint's checks; a message means 422."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        if body.get("fn_index") != 3 or body.get("trigger_id") != 10:
            return "fn_index must be 3 and trigger_id 10"
        data = body.get("data")
        if not isinstance(data, list) or len(data) != 6:
            return "data must be [prompt, seed, width, height, randomize, steps]"
        prompt, seed, width, height = data[:4]
        if not isinstance(prompt, str) or not prompt.strip():
            return "prompt must be a non-empty string"
        if not _is_int(seed):
            return "seed must be an integer"
        for label, value in (("width", width), ("height", height)):
            low, high = G4F_RANGE
            if not _is_int(value) or value % 8 or not low <= value <= high:
                return f"{label} must be a multiple of 8 in {low}..{high}"
        return None

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("g4f-flux")
        if fault is not None:
            response = await self._request_fault_response(fault)
            if response is not None:
                return response
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=422)
        problem = self._validate_predict(body)
        if problem:
            return web.json_response({"error": problem}, status=422)
        token_error = self._token_error("g4f-flux", request)
        if token_error:
            return web.json_response({"error": token_error}, status=401)
        if fault is None:
            fault = self._random_failure("g4f-flux", body["data"])
            response = await self._request_fault_response(fault) if fault else None
            if response is not None:
                return response
        session_hash = str(body.get("session_hash", ""))
        return await self._predict_outcome(request, body["data"], fault, session_hash)

    async def _predict_outcome(
        self, request: web.Request, data: list[Any], fault: Fault | None, session_hash: str = ""
    ) -> web.StreamResponse:
        if isinstance(fault, CompletedError):
            return web.json_response({"error": fault.error}, status=500)
        if isinstance(fault, Hang | GoSilent):
            return await self._hang()
        start = time.monotonic()
        await self._pause(self.generation_delay_for("g4f-flux", data[0] if data else None))
        if isinstance(fault, StreamBreak):
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if isinstance(fault, MalformedJson):
            return web.Response(
                text='{"data": [{"path": "/tmp/gradio/', content_type="application/json"
            )
        prompt, seed, width, height = data[:4]
        file_data = self._publish("g4f-flux", self._image(width, height, seed), result=True)
        duration = time.monotonic() - start
        response = web.json_response(
            {
                "data": [file_data, seed],
                "is_generating": False,
                "duration": duration,
                "average_duration": duration,
                "render_config": None,
                "changed_state_ids": [],
            }
        )
        # Sent here rather than by aiohttp after return, so the completion time is the send.
        await response.prepare(request)
        await response.write_eof()
        self.completions.append(
            Completion("g4f-flux", prompt, seed, session_hash, time.monotonic())
        )
        return response

    # ------------------------------------------------------------------ queue/join

    def _join_route(self, space_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self._join(request, space_name)

        return handler

    async def _join(self, request: web.Request, space_name: str) -> web.Response:
        fault = self._take_fault(space_name)
        if fault is not None:
            response = await self._request_fault_response(fault)
            if response is not None:
                return response
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"detail": "There was an error parsing the body"}, 422)
        problem = self._validate_join(space_name, body)
        if problem:
            return web.json_response({"detail": problem}, status=422)
        fn = _fn(space_name, body["fn_index"])
        assert fn is not None  # checked by _validate_join
        if fault is None:
            fault = self._random_failure(space_name, body["data"], fn)
            response = await self._request_fault_response(fault) if fault else None
            if response is not None:
                return response
        job = _Job(
            space=space_name,
            event_id=uuid.uuid4().hex,
            session_hash=body["session_hash"],
            data=body["data"],
            fault=fault,
            token_error=self._token_error(space_name, request),
            fn=fn,
        )
        session = self._sessions.setdefault(job.session_hash, _Session())
        if session.stream is not None and not session.stream.finishing:
            session.stream.spawn(self._run_job(job, session.stream))
        else:
            session.pending.append(job)
        return web.json_response({"event_id": job.event_id})

    def _validate_join(self, space_name: str, body: Any) -> str | list[dict[str, Any]] | None:
        """Structural checks gradio/FastAPI make before queueing; input checks come later."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        missing = [k for k in ("data", "fn_index", "session_hash") if k not in body]
        if missing:
            return [
                {"type": "missing", "loc": ["body", k], "msg": "Field required", "input": body}
                for k in missing
            ]
        fn = _fn(space_name, body["fn_index"])
        if fn is None:
            known = ", ".join(str(f.fn_index) for f in QUEUE_FNS[space_name])
            return f"Function with fn_index {body['fn_index']!r} not found (this Space: {known})"
        if body.get("trigger_id") not in (None, fn.trigger_id):
            return f"trigger_id {body['trigger_id']!r} does not match fn_index {fn.fn_index}"
        if not isinstance(body["data"], list) or not isinstance(body["session_hash"], str):
            return "data must be a list and session_hash a string"
        return None

    # ------------------------------------------------------------------ queue/data

    def _data_route(
        self, space_name: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._data(request, space_name)

        return handler

    async def _data(self, request: web.Request, space_name: str) -> web.StreamResponse:
        session_hash = request.query.get("session_hash", "")
        session = self._sessions.get(session_hash)
        if session is None or not session.pending or session.stream is not None:
            return web.json_response({"detail": "Session not found."}, status=404)
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        stream = _Stream()
        session.stream = stream
        self._streams.add(stream)
        while session.pending:
            job = session.pending.popleft()
            stream.spawn(self._run_job(job, stream))
        try:
            await self._pump(request, resp, stream, space_name)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            session.stream = None
            self._streams.discard(stream)
            await stream.cancel_all()
            if not session.pending and self._sessions.get(session_hash) is session:
                del self._sessions[session_hash]
        return resp

    async def _pump(
        self, request: web.Request, resp: web.StreamResponse, stream: _Stream, space_name: str
    ) -> None:
        """Write the jobs' messages, heartbeats when idle, and close_stream when all are done."""
        silent = False
        while True:
            every = 0.0 if silent else self.knob(space_name, "heartbeat_every")
            try:
                item = await asyncio.wait_for(stream.out.get(), every if every > 0 else None)
            except TimeoutError:
                await _write_event(resp, {"msg": "heartbeat"})
                continue
            if item is _CLOSE:
                return
            if item is _SILENCE:
                silent = True
            elif item is _DONE:
                stream.active -= 1
                if stream.active == 0:
                    stream.finishing = True
                    await _write_event(resp, {"msg": "close_stream", "event_id": None})
                    return
            elif isinstance(item, _Cut):
                if item.abrupt and request.transport is not None:
                    request.transport.abort()
                return
            elif isinstance(item, _Raw):
                await resp.write(item.data)
            elif isinstance(item, dict):
                await _write_event(resp, item)
                if item.get("msg") == "process_completed":
                    completion = self._finishing.pop(item.get("event_id") or "", None)
                    if completion is not None:
                        self.completions.append(replace(completion, at=time.monotonic()))

    async def _run_job(self, job: _Job, stream: _Stream) -> None:
        """Feed one job's messages, cut or silenced as its fault says."""
        async with contextlib.aclosing(self._faulty_messages(job)) as items:
            async for item in items:
                stream.out.put_nowait(item)
                if item is _SILENCE:
                    await self._closing.wait()  # never reports done: the stream stays open
                    return
                if isinstance(item, _Cut):
                    return
        stream.out.put_nowait(_DONE)

    async def _faulty_messages(self, job: _Job) -> AsyncIterator[_Item]:
        fault = job.fault
        if isinstance(fault, Hang):
            yield _SILENCE
            return
        limit = fault.after_events if isinstance(fault, StreamBreak | GoSilent) else None
        count = 0
        async with contextlib.aclosing(self._job_messages(job)) as messages:
            async for message in messages:
                if limit is not None and count >= limit:
                    break
                yield message
                count += 1
        if isinstance(fault, StreamBreak):
            yield _Cut(fault.abrupt)
        elif isinstance(fault, GoSilent):
            yield _SILENCE

    async def _job_messages(self, job: _Job) -> AsyncIterator[_Item]:
        """Gradio's message sequence for one event."""
        space_name, event_id = job.space, job.event_id
        delay = self.generation_delay_for(space_name, job.data[0] if job.data else None)
        yield {
            "msg": "estimation",
            "event_id": event_id,
            "rank": 0,
            "queue_size": 1,
            "rank_eta": delay,
        }
        yield {"msg": "process_starts", "event_id": event_id, "eta": delay, "progress_data": None}
        if isinstance(job.fault, MalformedJson):
            yield _Raw(b'data: {"msg": "process_completed", \n\n')
            yield _Cut(abrupt=False)
            return
        error = self._job_error(job)
        if error is not None:
            yield _completed_error(event_id, *error)
            return
        start = time.monotonic()
        for line in self.knob(space_name, "log_lines"):
            yield {"msg": "log", "event_id": event_id, "log": line, "level": "info"}
        steps = int(self.knob(space_name, "progress_steps"))
        outputs, seed, (width, height) = self._job_outputs(job)
        previews: list[dict[str, Any]] = []
        if self.knob(space_name, "previews") and job.fn.task == "image":
            previews = self._previews(job, seed, width, height)
        # As FLUX.1-dev does: previews while the steps run (one a third of the way, the next
        # two thirds), not all at the end.
        due = {max(0, steps * (n + 1) // (len(previews) + 1) - 1): n for n in range(len(previews))}
        for i in range(steps):
            await self._pause(delay / steps)
            yield _progress(event_id, i, steps, self.knob(space_name, "progress_desc"))
            if i in due:
                yield previews[due[i]]
        if steps <= 0:
            await self._pause(delay)
        for n, message in enumerate(previews):
            if steps <= 0 or n not in due.values():
                yield message
        duration = time.monotonic() - start
        # Recorded once the pump has written this message (the moment the result is sent).
        self._finishing[event_id] = Completion(
            space_name, _prompt_of(job.fn, job.data), seed, job.session_hash, 0.0
        )
        yield {
            "msg": "process_completed",
            "event_id": event_id,
            "output": {
                "data": outputs,
                "is_generating": False,
                "duration": duration,
                "average_duration": duration,
                "render_config": None,
                "changed_state_ids": [],
            },
            "success": True,
            "title": None,
        }

    def _job_error(self, job: _Job) -> tuple[str, str | None] | None:
        """(error, title) when ZeroGPU, input validation or a fault fails the job."""
        if job.token_error:
            return job.token_error, "ZeroGPU error"
        problem = self._validate_inputs(job)
        if problem:
            return problem, "Error"
        if isinstance(job.fault, CompletedError):
            return job.fault.error, job.fault.title
        return None

    def _validate_inputs(self, job: _Job) -> str | None:
        def uploaded(file: Any) -> bool:
            return (job.space, str(file.get("path"))) in self._uploaded_paths()

        return _validate_inputs(job.space, job.fn, job.data, uploaded)

    def _uploaded_paths(self) -> set[tuple[str, str]]:
        return {(u.space, u.path) for u in self.uploads}

    def _uploaded_image(self, space_name: str, file: dict[str, Any]) -> Image.Image:
        """The uploaded file a job's ``FileData`` names, opened (validated before)."""
        return Image.open(BytesIO(self._uploaded_bytes(space_name, file)))

    def _uploaded_bytes(self, space_name: str, file: dict[str, Any]) -> bytes:
        return self._files[(space_name, file["path"])].data

    def _retouch_outputs(self, job: _Job) -> tuple[list[Any], int, tuple[int, int]]:
        """The upscaler's (before, after) pair; Fill's painted image and its seed."""
        if job.fn.task == "upscale":
            self.upscales.append(
                retouch.UpscaleCall(self._uploaded_bytes(job.space, job.data[0]), job.data)
            )
            result = retouch.upscale(self._uploaded_image(job.space, job.data[0]), job.data[4])
            after = self._publish(job.space, retouch.png(result), result=True)
            return [[job.data[0], after]], job.data[3], result.size
        editor, prompt, seed, randomize = job.data[:4]
        composite = editor.get("composite")
        self.fills.append(
            retouch.FillCall(
                background=self._uploaded_bytes(job.space, editor["background"]),
                mask=self._uploaded_bytes(job.space, editor["layers"][0]),
                composite=self._uploaded_bytes(job.space, composite) if composite else None,
                prompt=prompt, seed=seed, width=job.data[4], height=job.data[5],
                guidance_scale=job.data[6], num_inference_steps=job.data[7],
            )
        )  # fmt: skip
        if randomize:
            seed = random.randint(0, MAX_SEED)
        painted = retouch.fill(
            self._uploaded_image(job.space, editor["background"]),
            self._uploaded_image(job.space, editor["layers"][0]),
        )
        file_data = self._publish(job.space, retouch.png(painted), result=True)
        return [file_data, seed], seed, painted.size

    def _job_outputs(self, job: _Job) -> tuple[list[Any], int, tuple[int, int]]:
        """The completed output data, the seed used and the produced size."""
        if job.fn.task in ("upscale", "fill"):
            return self._retouch_outputs(job)
        if job.fn.task == "describe":
            seed = job.data[2]
            image = self._uploaded_image(job.space, job.data[0])
            answer = self.knob(job.space, "describe_answer")
            return [answer if answer is not None else describe_answer(image)], seed, image.size
        if job.fn.task == "edit":
            seed, randomize = job.data[2], job.data[3]
            if randomize:
                seed = random.randint(0, MAX_SEED)
            edited = edited_png(self._uploaded_image(job.space, job.data[0]))
            file_data = self._publish(job.space, edited, result=True)
            size = Image.open(BytesIO(edited)).size
            return [file_data, seed, {"visible": True, "__type__": "update"}], seed, size
        if job.space in ("janus", "janus-official"):
            seed = job.data[1]
            gallery = [
                {
                    "image": self._publish(
                        "janus", self._image(JANUS_SIZE, JANUS_SIZE, seed + i), result=True
                    ),
                    "caption": None,
                }
                for i in range(self.janus_images)
            ]
            return [gallery], seed, (JANUS_SIZE, JANUS_SIZE)
        infer = INFER_SPACES.get(job.space)
        if infer is not None:
            seed, randomize = job.data[infer.seed_at], job.data[infer.seed_at + 1]
            width, height = job.data[infer.size_at], job.data[infer.size_at + 1]
        else:
            _, seed, randomize, width, height = job.data[:5]
        if randomize:
            seed = random.randint(0, MAX_SEED)
        size = (width // 16 * 16, height // 16 * 16)  # FLUX works on 16-pixel multiples
        file_data = self._publish(job.space, self._image(*size, seed), result=True)
        return [file_data, seed], seed, size

    def _previews(self, job: _Job, seed: int, width: int, height: int) -> list[dict[str, Any]]:
        """process_generating: the full output once, then gradio's diff format once."""
        size = (max(16, width // 4), max(16, height // 4))
        first = self._publish(job.space, solid_png(*size, seed + 101), result=False)
        second = self._publish(job.space, solid_png(*size, seed + 202), result=False)
        if job.space in ("janus", "janus-official"):
            full: list[Any] = [[{"image": first, "caption": None}]]
            diff: list[Any] = [
                [
                    ["replace", [0, "image", "url"], second["url"]],
                    ["replace", [0, "image", "path"], second["path"]],
                ]
            ]
        else:
            full = [first, seed]
            diff = [
                [["replace", ["url"], second["url"]], ["replace", ["path"], second["path"]]],
                [],
            ]
        return [
            _generating(job.event_id, full),
            _generating(job.event_id, diff),
        ]

    # ------------------------------------------------------------------- files

    def _file_route(self, space_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self._file(request, space_name)

        return handler

    async def _file(self, request: web.Request, space_name: str) -> web.Response:
        path = request.match_info["path"]
        stored = self._files.get((space_name, path))
        if stored is None:
            return web.json_response({"detail": "File not found."}, status=404)
        fault = self.file_fault if stored.result else None
        if isinstance(fault, RedirectOtherHost) and request.host.startswith("127.0.0.1"):
            location = f"http://localhost:{self.port}{request.path_qs}"
            return web.Response(status=302, headers={"Location": location})
        body = stored.data
        if isinstance(fault, NotAnImage):
            body = b"<html>nope</html>"
        elif isinstance(fault, Oversize):
            body = _oversize_body(fault.bytes)
        elif isinstance(fault, ClaimsSize):
            body = claiming_png(fault.width, fault.height)
        self.served.append(ServedFile(str(request.url), path, body, "image/png"))
        return web.Response(body=body, content_type="image/png")


# ----------------------------------------------------------------- message helpers


async def _write_event(resp: web.StreamResponse, message: dict[str, Any]) -> None:
    await resp.write(b"data: " + json.dumps(message).encode() + b"\n\n")


def _progress(event_id: str, index: int, length: int, desc: str | None) -> dict[str, Any]:
    unit = {"index": index, "length": length, "unit": "steps", "progress": None, "desc": desc}
    return {"msg": "progress", "event_id": event_id, "progress_data": [unit]}


def _generating(event_id: str, data: list[Any]) -> dict[str, Any]:
    return {
        "msg": "process_generating",
        "event_id": event_id,
        "output": {"data": data, "is_generating": True},
        "success": True,
    }


def _completed_error(event_id: str, error: str, title: str | None) -> dict[str, Any]:
    return {
        "msg": "process_completed",
        "event_id": event_id,
        "output": {"error": error},
        "success": False,
        "title": title,
    }


def _validate_inputs(
    space_name: str, fn: Fn, data: list[Any], uploaded: Callable[[Any], bool]
) -> str | None:
    """Gradio (>= 5.39) checks inputs before the function runs; a message fails the event.

    ``uploaded(value)`` says whether a file input names a file uploaded to this Space: Gradio
    refuses to open any other path.
    """
    needed = len(fn.parameters)
    if len(data) != needed:
        return (
            "An event handler didn't receive enough input values "
            f"(needed: {needed}, got: {len(data)})."
        )
    if fn.task == "upscale":
        return retouch.validate_upscale(data, uploaded)
    if fn.task == "fill":
        return retouch.validate_fill(data, uploaded)
    if fn.task != "image":
        return _validate_file_inputs(fn, data, uploaded)
    if not isinstance(data[0], str):
        return f"Invalid value for Prompt: {data[0]!r} is not a string."
    infer = INFER_SPACES.get(space_name)
    seed_at, size_at = (infer.seed_at, infer.size_at) if infer else (1, 3)
    if not _is_int(data[seed_at]):
        return f"Invalid value for Seed: {data[seed_at]!r} is not a valid integer."
    if space_name in ("janus", "janus-official"):
        return None
    low, high = infer.side_range if infer else FLUX_DEV_RANGE
    for label, value in (("Width", data[size_at]), ("Height", data[size_at + 1])):
        if not _is_int(value):
            return f"Invalid value for {label}: {value!r} is not a valid integer."
        if value < low:
            return f"Value {value} for {label} is less than minimum value {low}."
        if value > high:
            return f"Value {value} for {label} is greater than maximum value {high}."
    return None


def _validate_file_inputs(fn: Fn, data: list[Any], uploaded: Callable[[Any], bool]) -> str | None:
    """Kontext's ``[image, prompt, seed, randomize_seed, guidance_scale, steps]`` and Janus's
    understanding ``[image, question, seed, top_p, temperature]``."""
    file = data[0]
    if not isinstance(file, dict) or file.get("meta", {}).get("_type") != "gradio.FileData":
        return f"Invalid value for Image: {file!r} is not a gradio.FileData."
    if not uploaded(file):
        return f"File {file.get('path')!r} is not in the upload folder and cannot be accessed."
    if not isinstance(data[1], str) or not data[1].strip():
        return f"Invalid value for {fn.parameters[1].title()}: {data[1]!r} is not a string."
    if not _is_int(data[2]):
        return f"Invalid value for Seed: {data[2]!r} is not a valid integer."
    if fn.task == "edit":
        if not isinstance(data[3], bool):
            return f"Invalid value for Randomize seed: {data[3]!r} is not a boolean."
        if not _is_number(data[4]) or not 1 <= data[4] <= 10:
            return f"Invalid value for Guidance Scale: {data[4]!r} (1..10)."
        low, high = KONTEXT_STEPS
        if not _is_int(data[5]) or not low <= data[5] <= high:
            return f"Invalid value for Steps: {data[5]!r} ({low}..{high})."
        return None
    for label, value in (("top_p", data[3]), ("temperature", data[4])):
        if not _is_number(value) or not 0 <= value <= 1:
            return f"Invalid value for {label}: {value!r} (0..1)."
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fn(space_name: str, fn_index: Any) -> Fn | None:
    return next((f for f in QUEUE_FNS.get(space_name, ()) if f.fn_index == fn_index), None)


def _prompt_of(fn: Fn | None, data: list[Any]) -> str:
    """The text a job is about: its prompt (an edit's or a question's is second)."""
    at = 1 if fn is not None and fn.task != "image" else 0
    return str(data[at]) if len(data) > at else ""


def _parameter_info(name: str) -> dict[str, Any]:
    """One input as ``/gradio_api/info`` describes it."""
    special = retouch.parameter_info(name)
    if special is not None:
        return special
    if name in ("image", "input_image"):
        return {
            "label": "Upload the image for editing" if name == "input_image" else "Image",
            "parameter_name": name,
            "parameter_has_default": False,
            "parameter_default": None,
            "type": {"$ref": "#/$defs/ImageData"},
            "python_type": {"type": "filepath", "description": ""},
            "component": "Image",
        }
    text = name in ("prompt", "negative_prompt", "question")
    return {
        "label": name.replace("_", " ").title(),
        "parameter_name": name,
        "parameter_has_default": name not in ("prompt", "question"),
        "parameter_default": None,
        "type": {"type": "string" if text else "number"},
        "python_type": {"type": "str" if text else "float"},
        "component": "Textbox" if text else "Slider",
    }


def _returns_info(fn: Fn) -> list[dict[str, Any]]:
    special = retouch.returns_info(fn.task)
    if special is not None:
        return special
    if fn.task == "describe":
        return [{"label": "Response", "component": "Textbox", "python_type": {"type": "str"}}]
    if fn.api_name == "generate_image":
        return [{"label": "Generated Images", "component": "Gallery", "python_type": {}}]
    returns = [
        {"label": "Result", "component": "Image", "python_type": {"type": "filepath"}},
        {"label": "Seed", "component": "Slider", "python_type": {"type": "float"}},
    ]
    if fn.task == "edit":
        returns.append({"label": "Reuse this image", "component": "Button", "python_type": {}})
    return returns


def average_colour(image: Image.Image) -> str:
    """``#rrggbb``: the image's mean colour (how the fake's answers name an upload)."""
    pixel = image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return "#{:02x}{:02x}{:02x}".format(*pixel[:3])


def describe_answer(image: Image.Image) -> str:
    """What the fake's image understanding answers: four numbered prompts, naming the upload's
    mean colour so a test can tell which image was described."""
    colour = average_colour(image)
    styles = ("flat colour study", "minimalist poster", "soft studio light", "matte painting")
    lines = [f"{i}. A plain field of colour {colour}, {style}" for i, style in enumerate(styles, 1)]
    return "Here are four prompts:\n\n" + "\n".join(lines)


def edited_png(image: Image.Image) -> bytes:
    """Kontext's fake edit: the upload with its colours inverted, cut to multiples of 16."""
    rgb = ImageOps.invert(image.convert("RGB"))
    width, height = max(16, rgb.width // 16 * 16), max(16, rgb.height // 16 * 16)
    return _encode_png(rgb.crop((0, 0, width, height)) if rgb.size != (width, height) else rgb)


# ----------------------------------------------------------------------------- CLI


async def _serve(args: argparse.Namespace) -> None:
    space = FakeSpace(
        port=args.port,
        generation_delay=args.delay,
        noise=args.noise,
        failure_rate=args.failure_rate,
        failure_seed=args.failure_seed,
        delay_spread=args.delay_spread,
    )
    await space.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"url": space.url, "env": space.env()}), flush=True)
    try:
        await stop.wait()
    finally:
        await space.close()


def main(argv: list[str] | None = None) -> int:
    """Run the fake in its own process until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.space", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="generation_delay in seconds")
    parser.add_argument("--noise", action="store_true", help="incompressible, photo-sized images")
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=0.0,
        help="share of generation requests failed at random (see RANDOM_FAILURES)",
    )
    parser.add_argument("--failure-seed", type=int, default=0, help="seed of those failures")
    parser.add_argument(
        "--delay-spread",
        type=float,
        default=0.0,
        help="draw each job's generation time around --delay (sd = this times the mean)",
    )
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
