"""The AI Horde as a backend, over its wire protocol against the fake Horde: what is sent
(params, headers, nsfw), how often progress is asked, the statuses shown, the image fetched
once and checked like any download, DELETE on cancel, and each refusal as a clear error."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from imagine.backends import BackendTable
from imagine.check import probe
from imagine.engine import Engine
from imagine.errors import BackendError
from imagine.responses import ImageResponse, Notice, Reasoning
from imagine.settings import ANONYMOUS_HORDE_KEY, HORDE_FLUX_MODEL, Settings
from tests.conftest import seed_backends_file
from tests.fakes.horde import FLUX_MODEL, FakeHorde
from tests.fakes.space import FakeSpace, ServerError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def horde() -> AsyncIterator[FakeHorde]:
    async with FakeHorde(queue_places=1, seconds_per_place=0.4, generation_seconds=0.4) as fake:
        yield fake


def horde_settings(space: FakeSpace, horde: FakeHorde, folder: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            **space.env(),
            **horde.env(),
            "IMAGINE_BACKENDS": seed_backends_file(folder, horde=True),
            "JOB_WATCHDOG_SECONDS": "5",
            "JOB_TIMEOUT_SECONDS": "20",
            **env,
        }
    )


async def run(engine: Engine, model: str, **options) -> tuple[list[str], ImageResponse]:
    """Every status shown (failover notices included), and the result."""
    statuses: list[str] = []
    result = None
    async with contextlib.aclosing(engine.generate(model, **options)) as items:
        async for item in items:
            if isinstance(item, Reasoning | Notice):
                statuses.append(str(item))
            elif isinstance(item, ImageResponse):
                result = item
    assert result is not None
    return statuses, result


async def failure(engine: Engine, model: str, **options) -> BackendError:
    engine.retry_backoff = 0.05
    with pytest.raises(BackendError) as caught:
        await run(engine, model, **options)
    return caught.value


async def test_a_horde_job_on_the_wire(space, horde, tmp_path):
    horde.queue_places, horde.seconds_per_place, horde.generation_seconds = 2, 0.6, 1.2
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        statuses, result = await run(
            engine, "horde:Deliberate", prompt="a lighthouse at dusk", width=1000, height=700,
            seed=42, negative="blurry, text",
        )  # fmt: skip
    (submit,) = horde.submits()
    assert submit.path == "/api/v2/generate/async"
    assert submit.headers["apikey"] == ANONYMOUS_HORDE_KEY
    assert submit.headers["client-agent"].startswith("imagine-bot:0.1.0:")
    assert submit.json == {
        "prompt": "a lighthouse at dusk ### blurry, text",
        "params": {
            "width": 1024, "height": 704, "seed": "42", "steps": 30, "n": 1,
            "sampler_name": "k_euler_a", "cfg_scale": 7.0,
        },
        "models": ["Deliberate"],
        "nsfw": False,
        "censor_nsfw": True,
        "r2": False,
    }  # fmt: skip
    # The queue's place and wait, then the drawing, then the image fetched once.
    assert "Waiting for a GPU: #2 in the AI Horde's queue, ~3s" in statuses, statuses
    assert any(s.startswith("The AI Horde is drawing it") for s in statuses), statuses
    assert statuses.index("Fetching the image from the AI Horde") > max(
        i for i, s in enumerate(statuses) if s.startswith("Waiting for a GPU")
    )
    (job,) = horde.jobs.values()
    assert len(job.checks) >= 3 and horde.too_fast == []
    assert job.statuses == 1 and horde.deletes() == []
    # The size drawn (multiples of 64), the seed used, the negative prompt used, the kudos.
    assert (result.width, result.height, result.seed) == (1024, 704, 42)
    assert result.backend == "AI Horde" and result.model == "horde:Deliberate"
    assert result.ignored == ()
    assert result.extra["kudos"] == job.kudos
    assert result.images[0].startswith("data:image/webp;base64,")
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        image = await engine.download(result)
    assert image.mime == "image/webp"
    assert Image.open(io.BytesIO(image.data)).size == (1024, 704)


async def test_check_is_asked_at_most_once_a_second(space, horde, tmp_path):
    horde.queue_places, horde.seconds_per_place, horde.generation_seconds = 3, 1.0, 1.0
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        await run(engine, "horde:Deliberate", prompt="a slow queue", seed=1)
    (job,) = horde.jobs.values()
    gaps = [b - a for a, b in zip(job.checks, job.checks[1:], strict=False)]
    assert len(gaps) >= 3
    assert min(gaps) >= 0.98, gaps  # the fake's clock: a second between asks, less a hair
    assert job.statuses == 1


@pytest.mark.parametrize("nsfw", [False, True])
async def test_nsfw_only_when_the_job_says_so(space, horde, tmp_path, nsfw):
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        await run(engine, "horde:Deliberate", prompt="a portrait", nsfw=nsfw)
    (submit,) = horde.submits()
    assert (submit.json["nsfw"], submit.json["censor_nsfw"]) == (nsfw, not nsfw)


async def test_a_cancelled_job_is_deleted_on_the_horde(space, horde, tmp_path):
    horde.queue_places, horde.seconds_per_place = 30, 1.0
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        waiting = asyncio.Event()

        async def draw() -> None:
            async for item in engine.generate("horde:Deliberate", prompt="never mind"):
                if isinstance(item, Reasoning) and "queue" in str(item):
                    waiting.set()

        task = asyncio.create_task(draw())
        await asyncio.wait_for(waiting.wait(), 5)
        stopped = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - stopped < 1.5  # the DELETE never holds the cancel up long
        (job,) = horde.jobs.values()
        for _ in range(100):
            if horde.deletes():
                break
            await asyncio.sleep(0.02)
    (delete,) = horde.deletes()
    assert delete.path == f"/api/v2/generate/status/{job.id}"
    assert delete.headers["apikey"] == ANONYMOUS_HORDE_KEY
    assert job.deleted and job.statuses == 0


async def test_a_bad_key_is_said_and_rests_the_horde(space, horde, tmp_path):
    key = "not-a-real-key-98765"
    settings = horde_settings(space, horde, tmp_path, HORDE_API_KEY=key)
    assert key in settings.secrets()
    async with Engine(settings) as engine:
        error = await failure(engine, "horde:Deliberate", prompt="a cat")
        assert error.status == 401 and error.unavailable
        assert "The AI Horde refused the API key (HORDE_API_KEY)" in str(error)
        assert key not in str(error)
        assert not engine.breaker("horde").allows()  # the next job skips it for now
    assert horde.submits()[0].headers["apikey"] == key


async def test_a_registered_key_is_sent_and_is_a_secret(space, horde, tmp_path):
    key = "registered-key-0123456789"
    settings = horde_settings(space, horde, tmp_path, HORDE_API_KEY=key)
    assert key in settings.secrets()
    assert ANONYMOUS_HORDE_KEY not in Settings().secrets()  # anonymous is no secret
    async with Engine(settings) as engine:
        await run(engine, "horde:Deliberate", prompt="a cat", width=2048, height=2048)
    assert horde.submits()[0].headers["apikey"] == key  # kudos: no upfront refusal


async def test_kudos_up_front_says_what_to_do(space, horde, tmp_path):
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        error = await failure(engine, "horde:Deliberate", prompt="a mural", width=2048, height=2048)
    assert error.status == 403 and not error.transient
    assert "asks for kudos up front" in str(error)
    assert "smaller image" in str(error) and "HORDE_API_KEY" in str(error)
    assert len(horde.submits()) == 1  # not retried: the same request would be refused again


async def test_rate_limited_is_transient(space, horde, tmp_path):
    horde.set_fault("rate")
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        error = await failure(engine, "horde:Deliberate", prompt="a cat")
        assert error.status == 429 and error.transient
        assert "limiting how often we may ask (429)" in str(error)
        assert not engine.breaker("horde").allows()
    assert len(horde.submits()) == 2  # the engine's one retry of a transient failure


async def test_a_faulted_job_is_told_and_deleted(space, horde, tmp_path):
    horde.set_fault("faulted")
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        error = await failure(engine, "horde:Deliberate", prompt="a cat")
        assert error.transient and not engine.breaker("horde").allows()
    assert "The AI Horde's worker failed to draw the image (the job faulted)." in str(error)
    assert len(horde.submits()) == 2  # the engine's one retry of a transient failure
    for _ in range(100):  # each faulted request is cancelled, not left behind
        if len(horde.deletes()) == 2:
            break
        await asyncio.sleep(0.02)
    assert {d.path.rsplit("/", 1)[1] for d in horde.deletes()} == set(horde.jobs)


async def test_a_model_no_worker_serves_is_impossible(space, horde, tmp_path):
    settings = horde_settings(space, horde, tmp_path, HORDE_MODELS="Deliberate, Ghost Model")
    async with Engine(settings) as engine:
        assert "horde:Ghost Model" in engine.models()
        error = await failure(engine, "horde:Ghost Model", prompt="a cat")
    assert "No AI Horde worker can draw this now" in str(error)
    assert horde.deletes(), "an impossible request is cancelled, not left in the queue"


async def test_a_censored_image_is_told_never_shown(space, horde, tmp_path):
    horde.set_fault("censored")
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        items = []
        with pytest.raises(BackendError) as caught:
            async for item in engine.generate("horde:Deliberate", prompt="a cat"):
                items.append(item)
    assert not any(isinstance(i, ImageResponse) for i in items)
    assert "censored the image" in str(caught.value)
    (job,) = horde.jobs.values()
    assert caught.value.kudos == job.kudos  # paid for all the same: the log counts it
    assert job.statuses == 1 and horde.deletes() == []


async def test_a_link_instead_of_the_image_is_refused(space, horde, tmp_path):
    """``r2: false`` asks for the image inline; a link to another host is never fetched."""
    horde.r2_links = True
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        error = await failure(engine, "horde:Deliberate", prompt="a cat")
    assert "sent a link instead of the image" in str(error)
    assert horde.submits()[0].json["r2"] is False


async def test_flux_falls_back_to_the_horde_flux_model(space, horde, tmp_path):
    space.set_fault("g4f-flux", ServerError(503))
    async with Engine(horde_settings(space, horde, tmp_path)) as engine:
        statuses, result = await run(engine, "flux", prompt="a fox", seed=5)
    assert result.backend == "AI Horde" and result.model == "flux"
    assert any("trying AI Horde" in s for s in statuses), statuses
    (submit,) = horde.submits()
    assert submit.json["models"] == [FLUX_MODEL]
    params = submit.json["params"]
    assert (params["steps"], params["cfg_scale"], params["sampler_name"]) == (4, 1.0, "k_euler")
    assert result.ignored == ()


def test_the_built_in_table_puts_the_horde_last():
    table = BackendTable.build(Settings(horde_models="Deliberate, AlbedoBase XL (SDXL)"))
    assert table.routes["flux"][-1] == "horde" and table.routes["flux-dev"][-1] == "horde"
    assert table.routes["horde:Deliberate"] == ["horde"]
    assert table.models()[-2:] == ["horde:Deliberate", "horde:AlbedoBase XL (SDXL)"]
    assert table.resolve("HORDE:deliberate") == "horde:Deliberate"
    assert Settings().horde_flux_model == HORDE_FLUX_MODEL == FLUX_MODEL
    off = BackendTable.build(Settings.from_env({"HORDE_FLUX_MODEL": "none"}))
    assert "horde" not in off.backends and "horde" not in off.routes["flux"]
    assert Settings.from_env({"HORDE_FLUX_MODEL": ""}).horde_flux_model == HORDE_FLUX_MODEL


def test_another_horde_in_the_backends_file_gets_its_own_key(tmp_path, monkeypatch):
    config = tmp_path / "backends.toml"
    config.write_text(
        '[backends.my-horde]\nkind = "horde"\nurl = "https://horde.example.org/api"\n'
        'models = ["horde:Deliberate"]\n'
        '[backends.keyed-horde]\nkind = "horde"\nurl = "https://other.example.org/api"\n'
        'api_key_env = "OTHER_HORDE_KEY"\nmodels = ["horde:Other"]\n'
    )
    monkeypatch.setenv("OTHER_HORDE_KEY", "other-horde-key-42")
    settings = Settings(horde_api_key="our-own-key-1234567", imagine_backends=str(config))
    table = BackendTable.build(settings)
    assert table.backends["my-horde"].settings.horde_api_key == ANONYMOUS_HORDE_KEY
    assert table.backends["keyed-horde"].settings.horde_api_key == "other-horde-key-42"
    assert table.backends["horde"].settings.horde_api_key == "our-own-key-1234567"


async def test_check_probes_heartbeat_and_models(space, horde, tmp_path):
    settings = horde_settings(space, horde, tmp_path, HORDE_MODELS="Deliberate, Ghost Model")
    async with Engine(settings) as engine:
        backend = engine.table.backends["horde"]
        result = await probe(engine, backend)
        assert result.reachable and result.api == "missing Ghost Model"
        assert result.error == "no worker serves Ghost Model" and not result.ok
    paths = [r.path for r in horde.requests]
    assert paths == ["/api/v2/status/heartbeat", "/api/v2/status/models"]
    settings = horde_settings(space, horde, tmp_path)
    async with Engine(settings) as engine:
        result = await probe(engine, engine.table.backends["horde"], generate=True)
    assert result.ok and result.api == "ok" and result.generated.startswith("ok (")
    assert "image/webp" in result.generated


def test_the_fake_image_is_webp():
    """The fake sends what the Horde sends: base64 WebP (checked here, not assumed)."""
    from tests.fakes.horde import webp

    data = webp(64, 64, "7")
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert base64.b64decode(base64.b64encode(data)) == data
