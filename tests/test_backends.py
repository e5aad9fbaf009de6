"""Backends as configuration, the OpenAI-compatible API, circuit breakers and failover."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image

from imagine.backends import BackendTable
from imagine.engine import Engine
from imagine.errors import BackendError, BadInput, UnknownModel
from imagine.health import Breaker
from imagine.responses import ImageResponse
from imagine.settings import Settings
from tests.fakes.openai_server import FakeOpenAI


async def draw(engine: Engine, model: str, **kwargs):
    items = [item async for item in engine.generate(model, prompt="a fox", **kwargs)]
    images = [i for i in items if isinstance(i, ImageResponse)]
    return items, (images[0] if images else None)


# -- the table -----------------------------------------------------------------------------


def test_builtin_table_keeps_the_seeds_routing_first():
    table = BackendTable.build(Settings())
    assert [b.name for b in table.backends_for("flux")] == ["g4f-flux", "flux-schnell"]
    assert [b.name for b in table.backends_for("flux-schnell")] == ["g4f-flux", "flux-schnell"]
    assert [b.name for b in table.backends_for("flux-dev")] == ["g4f-flux-dev", "flux-dev-official"]
    assert [b.name for b in table.backends_for("janus-pro-7b-image")] == ["g4f-janus"]
    assert table.models(aliases=True) == [
        "flux", "flux-dev", "janus-pro-7b-image", "sd-3.5-large", "flux-schnell",
    ]  # fmt: skip


def test_toml_adds_routes_and_disables(tmp_path):
    config = tmp_path / "backends.toml"
    config.write_text(
        """
disable = ["sd-3.5-large", "g4f-janus"]

[backends.my-flux-dev]
kind = "flux-dev-official"
url = "https://me-flux-1-dev.hf.space"
space = "me/FLUX.1-dev"

[backends.studio]
kind = "flux-schnell"
url = "http://127.0.0.1:7860"
models = ["studio-flux"]

[models]
flux-dev = ["my-flux-dev", "g4f-flux-dev"]
"""
    )
    table = BackendTable.build(Settings(imagine_backends=str(config)))
    mine = table.backends_for("flux-dev")[0]
    assert (mine.name, mine.url, mine.space) == (
        "my-flux-dev", "https://me-flux-1-dev.hf.space", "me/FLUX.1-dev",
    )  # fmt: skip
    assert [b.name for b in table.backends_for("flux-dev")] == ["my-flux-dev", "g4f-flux-dev"]
    assert [b.name for b in table.backends_for("studio-flux")] == ["studio"]
    assert "sd-3.5-large" not in table.models() and "janus-pro-7b-image" not in table.models()
    with pytest.raises(UnknownModel, match="Available models"):
        table.resolve("janus-pro-7b-image")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[backends.x]\nkind = 'nope'\nurl = 'https://a'", "kind must be one of"),
        ("[backends.x]\nkind = 'flux-schnell'\nurl = 'ftp://a'", "must be an http(s) URL"),
        ("[models]\nflux = ['ghost']", "unknown backends: ['ghost']"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_backend_files_are_clear_errors(tmp_path, text, error):
    config = tmp_path / "backends.toml"
    config.write_text(text)
    with pytest.raises(
        BadInput,
        match=error.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ):
        BackendTable.build(Settings(imagine_backends=str(config)))


# -- breakers ------------------------------------------------------------------------------


def test_breaker_opens_rests_and_recovers():
    now = [0.0]
    breaker = Breaker("x", clock=lambda: now[0], base_window=10)
    assert breaker.allows() and breaker.state == "closed"
    breaker.failure("503")
    assert breaker.state == "open" and not breaker.allows()
    now[0] = 10.5
    assert breaker.state == "half-open"
    assert breaker.allows()  # one trial
    assert not breaker.allows()  # and only one
    breaker.failure("503 again")
    assert breaker.remaining() == pytest.approx(20)  # doubled
    now[0] = 31
    assert breaker.allows()
    breaker.success()
    assert breaker.state == "closed" and breaker.allows()


def test_quota_keeps_the_breaker_open_until_the_named_time():
    now = [0.0]
    breaker = Breaker("x", clock=lambda: now[0], base_window=10)
    breaker.failure("quota", retry_after=588, quota=True)
    now[0] = 500
    assert not breaker.allows()
    now[0] = 589
    assert breaker.allows()


# -- the OpenAI-compatible API ---------------------------------------------------------------


@pytest.mark.parametrize("response_format", [None, "url"])
async def test_openai_compatible_backend_b64_and_url(response_format):
    async with FakeOpenAI(response_format=response_format) as api:
        settings = Settings.from_env(api.env(OPENAI_IMAGE_MODELS="dall-e-3, gpt-image-1"))
        async with Engine(settings) as engine:
            assert "dall-e-3" in engine.models()
            _, image = await draw(engine, "dall-e-3", width=512, height=256)
            assert image.backend == "OpenAI-compatible API"
            fetched = await engine.download(image)
        (call,) = api.requests
        assert call["json"]["model"] == "dall-e-3"
        assert call["json"]["size"] == "512x256"
        assert call["headers"]["Authorization"] == f"Bearer {api.api_key}"
        assert Image.open(io.BytesIO(fetched.data)).size == (512, 256)
        assert fetched.data in api.served.values()


async def test_openai_models_come_from_get_models_when_not_configured():
    async with FakeOpenAI() as api, Engine(Settings.from_env(api.env())) as engine:
        assert await engine.discover_models() == ["dall-e-3", "gpt-image-1"]
        assert [b.name for b in engine.table.backends_for("gpt-image-1")] == ["openai"]


@pytest.mark.parametrize(
    ("refuse", "text", "transient"),
    [
        ("auth", "Response 401: Incorrect API key provided", False),
        (
            "policy",
            "Response 400: Your request was rejected as a result of our safety system.",
            False,
        ),
        ("unavailable", "Response 503: The server is overloaded.", True),
    ],
)
async def test_openai_errors_are_clear_and_the_key_never_logged(caplog, refuse, text, transient):
    caplog.set_level(logging.DEBUG)
    async with FakeOpenAI(refuse=refuse) as api:
        settings = Settings.from_env(api.env(OPENAI_IMAGE_MODELS="dall-e-3"))
        async with Engine(settings) as engine:
            engine.retry_backoff = 0.01
            with pytest.raises(BackendError) as caught:
                await draw(engine, "dall-e-3")
    assert str(caught.value).startswith(text)
    assert caught.value.transient is transient
    assert api.api_key not in caplog.text
    assert api.api_key not in str(caught.value)
