"""A local OpenAI-compatible API: ``POST /v1/images/generations``, ``POST /v1/images/edits``
(multipart), ``POST /v1/chat/completions`` (vision, and text for translation) and
``GET /v1/models``.

It answers like OpenAI does (``{"created", "data": [{"b64_json"}|{"url"}]}``, chat
``{"choices": [{"message": {"content"}}]}``, errors as ``{"error": {"message", "type",
"code"}}``), checks ``Authorization: Bearer <key>``, and has knobs for the cases tests need:
url results, a content-policy refusal, a 401 (or one that names the whole key), a 503. An
edit's result is the uploaded image with its colours inverted, and a vision answer names the
image's mean colour, so a test can tell which image arrived; ``uploads`` keeps every received
image byte for byte. A text-only chat (no image in it) is a translation: the user's message
with the words of ``DICTIONARY`` replaced and every other word kept, so a test can predict it
(``кот в шляпе`` is ``cat in a hat``); ``chats`` lists those requests, and
``chat_answer``/``chat_delay`` make it answer something else or late.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from PIL import Image, ImageOps


def png(width: int, height: int, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def inverted_png(data: bytes, width: int, height: int) -> bytes:
    """The edit's result: the input, colours inverted, at the size asked."""
    image = ImageOps.invert(Image.open(io.BytesIO(data)).convert("RGB")).resize((width, height))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def mean_colour(data: bytes) -> str:
    pixel = Image.open(io.BytesIO(data)).convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return "#{:02x}{:02x}{:02x}".format(*pixel[:3])


DICTIONARY = {
    "в шляпе": "in a hat",
    "на луне": "on the moon",
    "кот": "cat",
    "собака": "dog",
    "рыжий": "ginger",
    "в": "in",
}
"""The fake's Russian (phrases win over their words); anything else stays as it is."""
_PHRASES = re.compile(
    r"(?<!\w)(" + "|".join(map(re.escape, sorted(DICTIONARY, key=len, reverse=True))) + r")(?!\w)",
    re.IGNORECASE,
)


def translated(text: str) -> str:
    """The fake's translation of ``text``: known words and phrases replaced, case ignored."""
    return _PHRASES.sub(lambda match: DICTIONARY[match.group(1).lower()], text)


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test-key-0123456789abcdef"
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": "dall-e-3", "object": "model", "image": True},
            {"id": "gpt-image-1", "object": "model", "image": True},
            {"id": "gpt-4o", "object": "model", "image": False},
        ]
    )
    response_format: str | None = None  # None: as asked; "url": always URLs
    refuse: str | None = None  # "policy", "auth", "unavailable", "echo" (a 401 naming the key)
    vision_answer: str | None = None  # None: prompts naming the image's mean colour
    chat_answer: str | None = None  # None: text chats answer ``translated(user message)``
    chat_delay: float = 0.0  # seconds every chat completion waits before it answers
    requests: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)
    served: dict[str, bytes] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self, **extra: str) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.url, "OPENAI_API_KEY": self.api_key, **extra}

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/images/generations", self._generate)
        app.router.add_post("/v1/images/edits", self._edit)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    @staticmethod
    def _error(status: int, message: str, kind: str, code: str | None) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            status=status,
        )

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        return web.json_response({"object": "list", "data": self.models})

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "json": body, "headers": dict(request.headers)})
        refused = self._refusal(request)
        if refused is not None:
            return refused
        width, height = (int(v) for v in str(body.get("size", "1024x1024")).split("x"))
        return self._image_answer(png(width, height), body.get("response_format"))

    async def _edit(self, request: web.Request) -> web.Response:
        """``/images/edits``: multipart text fields and the ``image`` file."""
        form: dict[str, str] = {}
        files: dict[str, dict[str, Any]] = {}
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                data = bytes(await part.read())
                files[part.name] = {
                    "filename": part.filename,
                    "content_type": part.headers.get("Content-Type"),
                    "data": data,
                }
            else:
                form[part.name] = await part.text()
        self.requests.append(
            {"path": request.path, "form": form, "files": files, "headers": dict(request.headers)}
        )
        refused = self._refusal(request)
        if refused is not None:
            return refused
        image = files.get("image")
        if image is None or not form.get("prompt"):
            return self._error(
                400, "'image' and 'prompt' are required.", "invalid_request_error", None
            )
        self.uploads.append(image["data"])
        width, height = (int(v) for v in form.get("size", "1024x1024").split("x"))
        return self._image_answer(
            inverted_png(image["data"], width, height), form.get("response_format")
        )

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The text-only chat requests received (translations), oldest first."""
        return [
            r
            for r in self.requests
            if r["path"] == "/v1/chat/completions" and not _image_parts(r["json"])
        ]

    async def _chat(self, request: web.Request) -> web.Response:
        """``/chat/completions``: with a ``data:`` image, prompts naming its colour; without
        one, the user's message "translated" (see ``translated``)."""
        body = await request.json()
        self.requests.append({"path": request.path, "json": body, "headers": dict(request.headers)})
        if self.chat_delay:
            await asyncio.sleep(self.chat_delay)
        refused = self._refusal(request)
        if refused is not None:
            return refused
        images = _image_parts(body)
        if not images:
            user = [m for m in body.get("messages", []) if m.get("role") == "user"]
            text = user[-1].get("content") if user else None
            if not isinstance(text, str):
                return self._error(
                    400, "A user message is required.", "invalid_request_error", None
                )
            answer = translated(text) if self.chat_answer is None else self.chat_answer
            return self._chat_answer(body, answer)
        try:
            data = base64.b64decode(images[0].split(",", 1)[1], validate=True)
            colour = mean_colour(data)
        except (IndexError, ValueError, binascii.Error, OSError):
            return self._error(400, "Invalid image.", "invalid_request_error", "invalid_image")
        self.uploads.append(data)
        answer = self.vision_answer
        if answer is None:
            answer = "\n".join(
                f"{i}. A plain field of colour {colour}, {style}"
                for i, style in enumerate(("oil painting", "photograph", "pixel art"), 1)
            )
        return self._chat_answer(body, answer)

    @staticmethod
    def _chat_answer(body: dict[str, Any], answer: str) -> web.Response:
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The refusal the ``refuse`` knob (or a wrong key) calls for, else None."""
        if self.refuse == "auth" or not self._authorized(request):
            return self._error(
                401, "Incorrect API key provided: sk-te****cdef.", "invalid_request_error",
                "invalid_api_key",
            )  # fmt: skip
        if self.refuse == "echo":  # as a careless proxy might: the whole key in the text
            return self._error(
                401, f"Key {self.api_key} is not valid here.", "invalid_request_error", None
            )
        if self.refuse == "policy":
            return self._error(
                400,
                "Your request was rejected as a result of our safety system.",
                "invalid_request_error",
                "content_policy_violation",
            )
        if self.refuse == "unavailable":
            return self._error(503, "The server is overloaded.", "server_error", None)
        return None

    def _image_answer(self, data: bytes, response_format: str | None) -> web.Response:
        name = f"img-{len(self.served)}.png"
        self.served[name] = data
        if (self.response_format or response_format) == "url":
            item = {"url": f"http://127.0.0.1:{self.port}/files/{name}"}
        else:
            item = {"b64_json": base64.b64encode(data).decode()}
        return web.json_response({"created": int(time.time()), "data": [item]})

    async def _file(self, request: web.Request) -> web.Response:
        data = self.served.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/png")


def _image_parts(body: dict[str, Any]) -> list[str]:
    """The image URLs in a chat request's messages (none: a text-only chat)."""
    return [
        part["image_url"]["url"]
        for message in body.get("messages", [])
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]
