"""Backends as configuration, the OpenAI-compatible API, circuit breakers and failover."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import pytest
from PIL import Image

from imagine.backends import BackendTable
from imagine.engine import Engine
from imagine.errors import BackendError, BadInput, UnknownModel
from imagine.health import Breaker
from imagine.quota import BOT_ACCOUNT, QuotaRests, Rest, account_of
from imagine.responses import ImageResponse, Reasoning
from imagine.settings import Settings
from tests.conftest import all_but_horde_file
from tests.fakes.openai_server import FakeOpenAI


async def draw(engine: Engine, model: str, **kwargs):
    items = [item async for item in engine.generate(model, prompt="a fox", **kwargs)]
    images = [i for i in items if isinstance(i, ImageResponse)]
    return items, (images[0] if images else None)


# -- the table -----------------------------------------------------------------------------


def test_builtin_table_keeps_the_seeds_routing_first():
    table = BackendTable.build(Settings())
    # The AI Horde (HORDE_FLUX_MODEL, on by default: it needs no secret) stands last.
    flux = ["g4f-flux", "flux-schnell", "horde"]
    assert [b.name for b in table.backends_for("flux")] == flux
    assert [b.name for b in table.backends_for("flux-schnell")] == flux
    assert [b.name for b in table.backends_for("flux-dev")] == [
        "g4f-flux-dev", "flux-dev-official", "horde",
    ]  # fmt: skip
    assert [b.name for b in table.backends_for("janus-pro-7b-image")] == ["g4f-janus"]
    assert table.models(aliases=True) == [
        "flux", "flux-dev", "janus-pro-7b-image", "sd-3.5-large", "flux-kontext-dev",
        "flux-schnell",
    ]  # fmt: skip
    assert [b.name for b in table.backends_for("flux-kontext-dev")] == ["flux-kontext-dev"]
    assert table.image_models() == ["flux-kontext-dev"]
    # Describe models have routes of their own: not image models, not in models().
    assert table.describe_models() == ["janus-pro-7b"]
    assert [b.name for b in table.describers_for(None)] == [
        "janus-describe", "janus-official-describe",
    ]  # fmt: skip


def test_toml_adds_routes_and_disables(tmp_path):
    config = tmp_path / "backends.toml"
    config.write_text(
        """
disable = ["sd-3.5-large", "g4f-janus"]

[backends.my-flux-dev]
kind = "flux-dev-official"
url = "https://me-flux-1-dev.example.invalid"
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
        "my-flux-dev", "https://me-flux-1-dev.example.invalid", "me/FLUX.1-dev",
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


def test_a_quota_rest_lasts_until_the_named_time_for_that_account_only():
    now = [1000.0]
    rests = QuotaRests(clock=lambda: now[0])
    told: list[Rest] = []
    rests.on_rest(told.append)
    member = account_of("hf_member_token")
    assert member != BOT_ACCOUNT and "hf_member_token" not in member
    rests.rest("x", BOT_ACCOUNT, 588, "quota")
    assert [r.until for r in told] == [1588.0]
    assert rests.resting("x", member) is None  # a member's own quota is not the bot's
    now[0] = 1500
    assert rests.resting("x", BOT_ACCOUNT) is not None
    rests.rest("x", BOT_ACCOUNT, 10, "quota again")  # a shorter rest does not cut it
    assert rests.resting("x", BOT_ACCOUNT).until == 1588.0 and len(told) == 1
    rests.adopt([Rest("y", member, 1700.0)])  # another process's, told to nobody here
    assert rests.resting("y", member) is not None and len(told) == 1
    now[0] = 1589
    assert rests.resting("x", BOT_ACCOUNT) is None
    assert [r.backend for r in rests.current()] == ["y"]


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


# -- the official Spaces and failover, against the fake Spaces ----------------------------


@pytest.fixture
def all_backends(space, tmp_path) -> Settings:
    """The whole built-in table, every Space on the fake; the AI Horde left out (these tests
    are about the Spaces: the Horde's are in test_horde.py)."""
    return Settings.from_env(
        {
            **space.env(),
            "JOB_WATCHDOG_SECONDS": "1",
            "IMAGINE_BACKENDS": all_but_horde_file(tmp_path),
        }
    )


@pytest.mark.parametrize(
    ("provider", "name", "size", "data"),
    [
        ("FluxSchnell", "flux-schnell", (520, 100), ["a fox", 5, False, 512, 256, 4]),
        ("FluxDevOfficial", "flux-dev-official", (512, 256),
         ["a fox", 5, False, 512, 256, 3.5, 28]),
        ("StableDiffusion35Large", "sd35", (2000, 300),
         ["a fox", "", 5, False, 1440, 512, 4.5, 40]),
    ],
)  # fmt: skip
async def test_official_space_payloads_and_results(space, all_backends, provider, name, size, data):
    """Sizes follow each Space's sliders: multiples of 32 within its range."""
    from imagine.providers import infer

    cls = getattr(infer, provider)
    width, height = size
    generator = cls.create_async_generator(
        cls.default_model, prompt="a fox", width=width, height=height, seed=5,
        settings=all_backends,
    )  # fmt: skip
    items = [item async for item in generator]
    (join,) = space.joins(name)
    fn_index, trigger_id, _ = {"flux-schnell": (2, 5, 6), "flux-dev-official": (3, 7, 7),
                               "sd35": (1, 9, 8)}[name]  # fmt: skip
    assert (join.json["fn_index"], join.json["trigger_id"]) == (fn_index, trigger_id)
    assert join.json["data"] == data
    image = next(i for i in items if isinstance(i, ImageResponse))
    assert image.seed == 5
    assert image.images[0].startswith(f"{space.url}/{name}/gradio_api/file=")
    described = [r.path for r in space.requests if r.space == name and r.method == "GET"]
    assert f"/{name}/gradio_api/info" in described and f"/{name}/config" in described


async def test_api_description_is_read_once(space, all_backends):
    async with Engine(all_backends) as engine:
        for _ in range(3):
            await draw(engine, "sd-3.5-large")
    infos = [r for r in space.requests if r.path == "/sd35/gradio_api/info"]
    assert len(infos) == 1 and len(space.joins("sd35")) == 3


async def test_a_space_that_changed_its_inputs_is_a_clear_error(space, all_backends):
    space.api_parameters["sd35"] = ("prompt", "seed", "width", "height")
    async with Engine(all_backends) as engine:
        with pytest.raises(BackendError, match=r"changed its inputs: it now takes \(prompt, seed"):
            await draw(engine, "sd-3.5-large")
    assert space.joins("sd35") == []  # nothing sent that would not fit


@pytest.mark.parametrize("kind", ["503", "timeout", "quota", "changed"])
async def test_second_backend_draws_and_the_breaker_opens(space, all_backends, kind):
    from tests.fakes.space import GoSilent, QuotaExceeded, ServerError

    if kind == "503":
        space.set_fault("flux-dev", ServerError(503))
    elif kind == "timeout":
        space.set_fault("flux-dev", GoSilent(after_events=2))
    elif kind == "quota":
        space.set_fault("flux-dev", QuotaExceeded("0:09:48"))
    async with Engine(all_backends) as engine:
        if kind == "changed":  # the first backend is an official Space whose API changed
            engine.table.routes["flux-dev"] = ["flux-dev-official", "g4f-flux-dev"]
            space.api_parameters["flux-dev-official"] = ("prompt",)
        first, second = engine.table.backends_for("flux-dev")
        items, image = await draw(engine, "flux-dev")
        assert image.backend == second.label
        if kind == "quota":  # the backend works; the bot's quota on it is out until then
            notice = next(
                i.status for i in items if isinstance(i, Reasoning) and "quota" in i.status
            )
            assert f"{first.label} is out of GPU quota until" in notice
            assert f"{second.label} draws instead" in notice
            rest = engine.rests.resting(first.name, BOT_ACCOUNT)
            assert rest is not None and rest.until - time.time() > 580
            assert engine.breaker(first.name).state == "closed"
        else:
            notice = next(
                i.status for i in items if isinstance(i, Reasoning) and "trying" in i.status
            )
            what = "is not answering" if kind == "timeout" else "is unavailable"
            assert f"{first.label} {what}" in notice and second.label in notice
            assert engine.breaker(first.name).state == "open"
        # The next job does not touch the broken backend.
        before = len(space.joins(first.name if first.name != "g4f-flux-dev" else "flux-dev"))
        _, again = await draw(engine, "flux-dev")
        assert again.backend == second.label
        after = len(space.joins(first.name if first.name != "g4f-flux-dev" else "flux-dev"))
        assert after == before


async def test_the_breaker_recovers_after_its_window(space, all_backends):
    from tests.fakes.space import ServerError

    space.set_fault("g4f-flux", ServerError(503), times=1)
    async with Engine(all_backends) as engine:
        _, image = await draw(engine, "flux")
        assert image.backend == "FLUX.1-schnell (official Space)"
        breaker = engine.breaker("g4f-flux")
        assert breaker.state == "open"
        breaker.open_until = breaker.clock()  # the window has passed
        assert breaker.state == "half-open"
        _, image = await draw(engine, "flux")
        assert image.backend == "G4F flux"  # tried again, and it is healthy
        assert breaker.state == "closed"


async def test_all_backends_down_is_one_clear_error(space, all_backends):
    from tests.fakes.space import HtmlError

    space.set_fault("g4f-flux", HtmlError(503))
    space.set_fault("flux-schnell", HtmlError(502))
    async with Engine(all_backends) as engine:
        engine.retry_backoff = 0.01
        with pytest.raises(BackendError) as caught:
            await draw(engine, "flux")
    text = str(caught.value)
    assert "G4F flux: Response 503: HTML content" in text
    assert "FLUX.1-schnell (official Space): Response 502: HTML content" in text
    assert caught.value.transient


async def test_check_reports_up_down_and_changed(space, all_backends):
    from imagine.check import check
    from tests.fakes.space import HtmlError

    out = io.StringIO()
    async with Engine(all_backends) as engine:
        assert await check(engine, out, generate=True) == 0
    table = out.getvalue()
    assert table.splitlines()[0].split()[:4] == ["backend", "models", "reachable", "api"]
    for name in ("g4f-flux", "g4f-flux-dev", "g4f-janus", "flux-schnell", "sd-3.5-large"):
        line = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert " yes " in line and "ok (" in line, line

    space.api_parameters["sd35"] = ("prompt",)
    space.set_fault("flux-dev", HtmlError(503))
    out = io.StringIO()
    async with Engine(all_backends) as engine:
        assert await check(engine, out) == 1
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
    assert (
        " changed " in lines["sd-3.5-large"] and "inputs are now (prompt)" in lines["sd-3.5-large"]
    )
    assert " NO " in lines["g4f-flux-dev"] and "Response 503" in lines["g4f-flux-dev"]
    assert " yes " in lines["g4f-flux"]


def test_the_docs_backends_example_loads(tmp_path, monkeypatch):
    page = (Path(__file__).resolve().parents[1] / "docs" / "backends.md").read_text()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "backends.toml"
    config.write_text(example)
    monkeypatch.setenv("STUDIO_KEY", "sk-studio")
    table = BackendTable.build(Settings(imagine_backends=str(config)))
    assert [b.name for b in table.backends_for("flux-dev")] == [
        "my-flux-dev", "g4f-flux-dev", "flux-dev-official",
    ]  # fmt: skip
    studio = table.backends_for("studio-xl")[0]
    assert (studio.url, studio.settings.openai_api_key) == ("http://127.0.0.1:8080/v1", "sk-studio")
    assert "sd-3.5-large" not in table.models()
