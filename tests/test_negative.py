"""Negative prompts: Stable Diffusion 3.5 Large uses one; FLUX and OpenAI cannot, and the result
says so (``ImageResponse.ignored``). The text is cleaned as a prompt is, before anything is sent."""

from __future__ import annotations

import json

import pytest

from imagine.engine import Engine
from imagine.errors import BadInput
from imagine.providers import StableDiffusion35Large
from imagine.responses import ImageResponse
from imagine.settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.test_cli import run_cli


async def draw(engine: Engine, model: str, **kwargs) -> ImageResponse:
    items = [item async for item in engine.generate(model, prompt="a fox", seed=5, **kwargs)]
    (image,) = [i for i in items if isinstance(i, ImageResponse)]
    return image


@pytest.fixture
def every_space(space) -> Settings:
    return Settings.from_env({**space.env(), "JOB_WATCHDOG_SECONDS": "5"})


async def test_sd35_gets_the_negative_prompt(space, every_space):
    async with Engine(every_space) as engine:
        image = await draw(engine, "sd-3.5-large", negative="blurry, text")
    (join,) = space.joins("sd35")
    assert join.json["data"][:3] == ["a fox", "blurry, text", 5]
    assert image.ignored == ()


async def test_sd35_without_one_sends_an_empty_negative_prompt(space, every_space):
    async with Engine(every_space) as engine:
        image = await draw(engine, "sd-3.5-large")
    assert space.joins("sd35")[0].json["data"][1] == ""
    assert image.ignored == ()


@pytest.mark.parametrize(("model", "space_name"), [("flux-dev", "flux-dev"), ("flux", "g4f-flux")])
async def test_flux_gets_none_and_the_result_says_so(space, engine, model, space_name):
    image = await draw(engine, model, negative="blurry watermark")
    assert image.ignored == ("negative prompt",)
    (join,) = space.joins(space_name)
    assert "blurry watermark" not in json.dumps(join.json)


async def test_no_negative_prompt_nothing_ignored(space, engine):
    assert (await draw(engine, "flux-dev")).ignored == ()
    assert (await draw(engine, "flux-dev", negative="   ")).ignored == ()  # blank is none


async def test_the_negative_prompt_is_cleaned_like_a_prompt(space, every_space):
    async with Engine(every_space) as engine:
        await draw(engine, "sd-3.5-large", negative="  blu\u200brry\x00, ｔｅｘｔ\r\nlogo  ")
        assert engine.prepare("sd-3.5-large", prompt="x", negative=" a\tb ").negative == "a b"
    assert space.joins("sd35")[0].json["data"][1] == "blurry, text\nlogo"


@pytest.mark.parametrize(
    ("negative", "text"),
    [
        ("x" * 1001, "The negative prompt is 1001 characters long; the limit is 1000."),
        (42, "The negative prompt must be text, not 42."),
    ],
)
async def test_bad_negative_prompts_are_refused_before_anything_is_sent(
    space, engine, negative, text
):
    with pytest.raises(BadInput) as caught:
        engine.generate("flux-dev", prompt="a fox", negative=negative)
    assert str(caught.value) == text
    assert space.requests == []


async def test_gpt4free_negative_prompt_keyword_reaches_sd35(space, every_space):
    items = [
        item
        async for item in StableDiffusion35Large.create_async_generator(
            "sd-3.5-large", prompt="a fox", negative_prompt="text", settings=every_space
        )
    ]
    assert space.joins("sd35")[0].json["data"][1] == "text"
    assert next(i for i in items if isinstance(i, ImageResponse)).ignored == ()


async def test_openai_ignores_it_and_says_so(space):
    async with FakeOpenAI() as api:
        settings = Settings.from_env(api.env(OPENAI_IMAGE_MODELS="dall-e-3"))
        async with Engine(settings) as engine:
            image = await draw(engine, "dall-e-3", negative="blurry")
        (call,) = api.requests
    assert "blurry" not in json.dumps(call["json"])
    assert image.ignored == ("negative prompt",)


async def test_cli_notes_an_ignored_negative_prompt(space, tmp_path):
    code, out, err = await run_cli(
        space, "a fox", "--negative", "blurry", "--seed", "3", "-o", "fox.png", cwd=tmp_path
    )
    assert code == 0, err
    assert "note: G4F flux does not use a negative prompt; it was left out" in err
    assert out.strip() == "Saved fox.png (flux, 1024x1024, seed 3)"
