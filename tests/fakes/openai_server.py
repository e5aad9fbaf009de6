"""A local OpenAI-compatible images API: ``POST /v1/images/generations`` and ``GET /v1/models``.

It answers like OpenAI does (``{"created", "data": [{"b64_json"}|{"url"}]}``, errors as
``{"error": {"message", "type", "code"}}``), checks ``Authorization: Bearer <key>``, and has
knobs for the cases tests need: url results, a content-policy refusal, a 401, a 503.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image


def png(width: int, height: int, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


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
    refuse: str | None = None  # "policy", "auth", "unavailable"
    requests: list[dict[str, Any]] = field(default_factory=list)
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
        self.requests.append({"json": body, "headers": dict(request.headers)})
        if self.refuse == "auth" or not self._authorized(request):
            return self._error(
                401, "Incorrect API key provided: sk-te****cdef.", "invalid_request_error",
                "invalid_api_key",
            )  # fmt: skip
        if self.refuse == "policy":
            return self._error(
                400,
                "Your request was rejected as a result of our safety system.",
                "invalid_request_error",
                "content_policy_violation",
            )
        if self.refuse == "unavailable":
            return self._error(503, "The server is overloaded.", "server_error", None)
        width, height = (int(v) for v in str(body.get("size", "1024x1024")).split("x"))
        data = png(width, height)
        name = f"img-{len(self.served)}.png"
        self.served[name] = data
        if (self.response_format or body.get("response_format")) == "url":
            item = {"url": f"http://127.0.0.1:{self.port}/files/{name}"}
        else:
            item = {"b64_json": base64.b64encode(data).decode()}
        return web.json_response({"created": int(time.time()), "data": [item]})

    async def _file(self, request: web.Request) -> web.Response:
        data = self.served.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/png")
