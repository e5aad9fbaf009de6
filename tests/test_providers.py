"""Each model against the fake Spaces: routing, payloads, headers, statuses, errors."""

from __future__ import annotations

import asyncio
import gc
import io
import itertools
import warnings

import aiohttp
import pytest
from PIL import Image

from imagine import http
from imagine.engine import Engine
from imagine.errors import BackendError, BackendTimeout, QuotaExceeded
from imagine.messages import Message
from imagine.providers import G4F, FluxDev, JanusPro7B
from imagine.responses import ImagePreview, ImageResponse, Reasoning
from tests.conftest import space_settings
from tests.fakes.space import (
    CompletedError,
    FakeSpace,
    GoSilent,
    Hang,
    HtmlError,
    JsonError,
    MalformedJson,
    StreamBreak,
    TextError,
)
from tests.fakes.space import (
    QuotaExceeded as QuotaFault,
)


async def collect(generator):
    return [item async for item in generator]


def image_of(items) -> ImageResponse:
    (image,) = [i for i in items if isinstance(i, ImageResponse)]
    return image


def statuses(items) -> list[str]:
    return [i.status for i in items if isinstance(i, Reasoning)]


async def test_flux_posts_run_predict_with_the_seed_payload(space, engine):
    items = await collect(engine.generate("flux", prompt="a red fox", width=513, height=20, seed=7))
    (call,) = space.joins("g4f-flux")
    assert call.path == "/g4f-flux/run/predict"
    body = call.json
    assert body["data"] == ["a red fox", 7, 512, 32, True, 1]
    assert (body["fn_index"], body["trigger_id"], body["event_data"]) == (3, 10, None)
    assert isinstance(body["session_hash"], str) and body["session_hash"]
    token = space.issued_tokens[call.headers["x-zerogpu-token"]]
    assert token.sub == "/spaces/roxky/Janus-Pro-7B"
    assert call.headers["x-zerogpu-uuid"]
    image = image_of(items)
    assert (image.model, image.seed, image.width, image.height) == ("flux", 7, 512, 32)
    assert image.images[0].startswith(f"{space.url}/g4f-flux/file=")


@pytest.mark.parametrize("alias", ["flux-schnell", "FLUX", "flux"])
async def test_flux_aliases_reach_the_flux_endpoint(space, engine, alias):
    await collect(engine.generate(alias, prompt="x", seed=1))
    assert len(space.joins("g4f-flux")) == 1
    assert space.joins("flux-dev") == space.joins("janus") == []


async def test_flux_dev_goes_through_the_queue(space, engine):
    items = await collect(
        engine.generate("flux-dev", prompt="a lighthouse", width=768, height=100, seed=42)
    )
    (call,) = space.joins("flux-dev")
    assert call.path == "/flux-dev/gradio_api/queue/join"
    assert call.json["data"] == ["a lighthouse", 42, False, 768, 256, 3.5, 28]
    assert (call.json["fn_index"], call.json["trigger_id"]) == (2, 4)
    stream = [r for r in space.requests if r.path.endswith("/queue/data")]
    assert stream[0].query["session_hash"] == call.json["session_hash"]
    assert space.issued_tokens[call.headers["x-zerogpu-token"]].sub == "/spaces/roxky/FLUX.1-dev"
    assert "Sampling 4/4" in statuses(items) or "Sampling 3/4" in statuses(items)
    assert any(isinstance(i, ImagePreview) for i in items)
    image = image_of(items)
    assert (image.model, image.seed, image.width, image.height) == ("flux-dev", 42, 768, 256)
    assert image.images[0].startswith(f"{space.url}/flux-dev/gradio_api/file=")


async def test_janus_returns_the_gallery(space, engine):
    items = await collect(engine.generate("janus-pro-7b-image", prompt="a robot", seed=3))
    (call,) = space.joins("janus")
    assert call.json["data"] == ["a robot", 3, 5, 1]
    assert (call.json["fn_index"], call.json["trigger_id"]) == (3, 20)
    image = image_of(items)
    assert len(image.images) == 4
    assert (image.width, image.height) == (384, 384)
    fetched = await engine.download(image, 3)
    assert Image.open(io.BytesIO(fetched.data)).size == (384, 384)


async def test_g4f_classmethod_routes_like_the_seed(space, settings):
    await collect(G4F.create_async_generator("flux-dev", prompt="x", settings=settings))
    await collect(G4F.create_async_generator("janus-pro-7b-image", prompt="x", settings=settings))
    await collect(FluxDev.create_async_generator("flux-dev", prompt="x", settings=settings))
    await collect(
        JanusPro7B.create_async_generator("janus-pro-7b-image", [], prompt="x", settings=settings)
    )
    assert len(space.joins("flux-dev")) == 2
    assert len(space.joins("janus")) == 2


async def test_prompt_from_messages(space, engine):
    messages = [
        Message(role="user", content="a cat"),
        Message(role="assistant", content="here"),
        Message(role="user", content="a dog"),
        Message(role="user", content=[{"type": "text", "text": "surfing"}]),
    ]
    await collect(engine.generate("flux", messages, seed=1))
    assert space.joins("g4f-flux")[0].json["data"][0] == "a dog\nsurfing"


async def test_flux_status_sequence_ticks_every_fifth_of_a_second(space, engine):
    space.generation_delay = 1.0
    stamps = []
    async for item in engine.generate("flux", prompt="a fox", seed=1):
        stamps.append((asyncio.get_running_loop().time(), item))
    kinds = [type(i).__name__ for _, i in stamps]
    texts = [str(i) for _, i in stamps]
    assert texts[0] == "Acquiring GPU Token"
    ticks = [
        (t, s)
        for t, s in zip([t for t, _ in stamps], texts, strict=True)
        if s.startswith("Generating ")
    ]
    assert 4 <= len(ticks) <= 7, texts
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ticks)]
    assert all(0.15 <= g <= 0.35 for g in gaps), gaps
    assert float(ticks[-1][1].split()[1].rstrip("s")) >= 0.75
    assert kinds[-2:] == ["ImageResponse", "Reasoning"]
    assert texts[-1].startswith("Finished ")


async def test_two_jobs_without_a_seed_get_different_seeds(space, engine):
    first, second = await asyncio.gather(
        collect(engine.generate("flux", prompt="x")), collect(engine.generate("flux", prompt="x"))
    )
    seeds = [c.json["data"][1] for c in space.joins("g4f-flux")]
    assert len(set(seeds)) == 2
    assert {image_of(first).seed, image_of(second).seed} == set(seeds)


async def test_tokens_are_cached_and_shared_by_concurrent_jobs(space, engine):
    await asyncio.gather(*(collect(engine.generate("flux", prompt=f"x{i}")) for i in range(8)))
    await collect(engine.generate("flux", prompt="later"))
    assert space.page_fetches["roxky/Janus-Pro-7B"] == 1
    used = {c.headers["x-zerogpu-token"] for c in space.joins("g4f-flux")}
    assert len(used) == 1


async def test_second_job_skips_acquiring_a_token(space, engine):
    first = statuses(await collect(engine.generate("flux-dev", prompt="x")))
    second = statuses(await collect(engine.generate("flux-dev", prompt="x")))
    assert first[0] == "Acquiring GPU Token"
    assert "Acquiring GPU Token" not in second


async def test_expired_token_is_fetched_again(space, tmp_path):
    space.token_ttl = 1.0  # refresh margin is 20% of the lifetime for short tokens
    async with Engine(space_settings(space, tmp_path)) as engine:
        await collect(engine.generate("flux", prompt="x"))
        await asyncio.sleep(0.9)
        await collect(engine.generate("flux", prompt="y"))
    assert space.page_fetches["roxky/Janus-Pro-7B"] == 2


async def test_hf_token_uses_the_account_jwt_and_is_sent_only_to_the_hub(space, tmp_path):
    async with Engine(space_settings(space, tmp_path, HF_TOKEN="hf_secret_abc")) as engine:
        await collect(engine.generate("flux-dev", prompt="x"))
    assert space.jwt_fetches["roxky/FLUX.1-dev"] == 1
    assert space.jwt_bearers == ["hf_secret_abc"]
    (call,) = space.joins("flux-dev")
    assert space.issued_tokens[call.headers["x-zerogpu-token"]].kind == "jwt"
    for request in space.requests:
        if "/hub/api/" not in request.path:
            assert "hf_secret_abc" not in repr(request)


async def test_api_key_given_skips_the_hub(space, engine):
    items = await collect(
        G4F.create_async_generator(
            "flux", prompt="x", settings=engine.settings, api_key="tok", zerogpu_uuid="u-1"
        )
    )
    assert "Acquiring GPU Token" not in statuses(items)
    assert space.page_fetches.total() == 0
    call = space.joins("g4f-flux")[0]
    assert (call.headers["x-zerogpu-token"], call.headers["x-zerogpu-uuid"]) == ("tok", "u-1")


@pytest.mark.parametrize(
    ("name", "model"),
    [("g4f-flux", "flux"), ("flux-dev", "flux-dev"), ("janus", "janus-pro-7b-image")],
)
@pytest.mark.parametrize(
    ("fault", "text", "transient"),
    [
        (
            JsonError(400, 'Prompt refused <a href="https://x">more</a>'),
            "Response 400: Prompt refused",
            False,
        ),
        (HtmlError(503), "Response 503: HTML content", True),
        (TextError(502, "upstream went away"), "Response 502: upstream went away", True),
        # A Gradio function that raised: the Space said why; retrying would repeat it.
        (JsonError(500, "CUDA out of memory"), "Response 500: CUDA out of memory", False),
        (TextError(500, "Internal Server Error"), "Response 500: Internal Server Error", True),
    ],
)
async def test_error_texts(space, engine, name, model, fault, text, transient):
    space.set_fault(name, fault)
    with pytest.raises(BackendError) as caught:
        await collect(engine.generate(model, prompt="x"))
    assert str(caught.value) == text
    assert caught.value.transient is transient


@pytest.mark.parametrize(
    ("name", "model"), [("flux-dev", "flux-dev"), ("janus", "janus-pro-7b-image")]
)
async def test_failed_job_inside_a_200_stream(space, engine, name, model):
    space.set_fault(name, CompletedError("CUDA out of memory <a href='x'>docs</a>"))
    with pytest.raises(BackendError, match=r"^CUDA out of memory$"):
        await collect(engine.generate(model, prompt="x"))


async def test_quota_refusal_keeps_the_retry_time_cut_off_by_the_link(space, engine):
    space.set_fault("flux-dev", QuotaFault("0:09:48"))
    with pytest.raises(QuotaExceeded) as caught:
        await collect(engine.generate("flux-dev", prompt="x"))
    assert caught.value.retry_after == 9 * 60 + 48
    assert "<a" not in str(caught.value)
    assert "GPU quota" in str(caught.value)


@pytest.mark.parametrize("abrupt", [True, False])
async def test_stream_that_breaks_off(space, engine, abrupt):
    space.set_fault("flux-dev", StreamBreak(after_events=2, abrupt=abrupt))
    with pytest.raises(BackendError) as caught:
        await collect(engine.generate("flux-dev", prompt="x"))
    assert caught.value.transient
    assert "FLUX.1-dev" in str(caught.value)


@pytest.mark.parametrize(("name", "model"), [("flux-dev", "flux-dev"), ("g4f-flux", "flux")])
async def test_malformed_json(space, engine, name, model):
    space.set_fault(name, MalformedJson())
    with pytest.raises(BackendError, match="malformed data"):
        await collect(engine.generate(model, prompt="x"))


@pytest.mark.parametrize(
    ("name", "model", "fault"),
    [
        ("g4f-flux", "flux", Hang()),
        ("flux-dev", "flux-dev", Hang(stage="request")),
        ("flux-dev", "flux-dev", Hang(stage="stream")),
        ("janus", "janus-pro-7b-image", GoSilent(after_events=2)),
    ],
)
async def test_space_that_never_answers_times_out(space, name, model, fault, tmp_path):
    space.set_fault(name, fault)
    settings = space_settings(space, tmp_path, JOB_WATCHDOG_SECONDS="1", JOB_TIMEOUT_SECONDS="10")
    async with Engine(settings) as engine:
        started = asyncio.get_running_loop().time()
        with pytest.raises(BackendTimeout, match="sent nothing for 1s"):
            await collect(engine.generate(model, prompt="x"))
        assert asyncio.get_running_loop().time() - started < 5


async def test_unreachable_host_is_a_transient_error(space, tmp_path):
    settings = space_settings(space, tmp_path, G4F_FLUX_URL="http://127.0.0.1:9/run/predict")
    async with Engine(settings) as engine:
        with pytest.raises(BackendError, match="Could not connect") as caught:
            await collect(engine.generate("flux", prompt="x", seed=1))
    assert caught.value.transient


async def test_closing_the_generator_cancels_the_request(space, engine):
    space.generation_delay = 30
    generator = engine.generate("flux", prompt="x")
    ticks = 0
    async for item in generator:
        ticks += str(item).startswith("Generating")
        if ticks == 3:
            break
    loop = asyncio.get_running_loop()
    started = loop.time()
    await generator.aclose()
    assert loop.time() - started < 1  # abandoned, not waited for
    assert len(space.joins("g4f-flux")) == 1


async def test_seed_example_runs_as_written(space, monkeypatch, capsys):
    for key, value in space.env().items():
        monkeypatch.setenv(key, value)
    model = "flux"
    messages = [Message(role="user", content="A futuristic cityscape")]
    async for chunk in G4F.create_async_generator(
        model=model, messages=messages, width=512, height=512
    ):
        print(chunk)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Acquiring GPU Token"
    assert any(line.startswith("Generating ") for line in lines)
    assert lines[-2].startswith(f"{space.url}/g4f-flux/file=")
    assert lines[-1].startswith("Finished ")
    assert space.joins("g4f-flux")[0].json["data"][:4][2:] == [512, 512]


def test_class_api_calls_share_the_loops_session_closed_with_the_loop(tmp_path, monkeypatch):
    """Without ``session=``, class-API calls in one loop share one session and its pool (as
    gpt4free shares one connector), and ``asyncio.run``'s shutdown closes it: no warning."""
    created: list[aiohttp.ClientSession] = []
    real_new_session = http.new_session

    def recording_new_session(**kwargs):
        session = real_new_session(**kwargs)
        created.append(session)
        return session

    async def two_calls() -> list:
        async with FakeSpace() as space:
            settings = space_settings(space, tmp_path)
            for prompt in ("one", "two"):
                image_of(await collect(
                    FluxDev.create_async_generator("flux-dev", prompt=prompt, settings=settings)
                ))  # fmt: skip
            return [r.peer for r in space.requests if r.space == "flux-dev"]

    monkeypatch.setattr(http, "new_session", recording_new_session)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peers = asyncio.run(two_calls())
        gc.collect()
    assert len(created) == 1
    assert len(peers) == 4 and len(set(peers)) == 1  # two joins, two streams: one connection
    assert created[0].closed
    assert not http._loop_sessions
    unclosed = [w for w in caught if "Unclosed" in str(w.message) or "destroyed" in str(w.message)]
    assert unclosed == []
