"""Describe (image to prompts) through the real engine, against the fake Janus Spaces and the
fake OpenAI-compatible API: payloads, failover, breakers, redaction, parsing, --check, the CLI."""

from __future__ import annotations

import base64
import io
import logging

import pytest
from PIL import Image

from imagine.check import check
from imagine.engine import Engine
from imagine.errors import BackendError, BadInput, UnknownModel
from imagine.providers import JanusDescribe
from imagine.providers.answers import parse_prompts, question_for
from imagine.responses import Description, Notice
from imagine.settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.space import CompletedError, HtmlError, JsonError, ServerError
from tests.test_cli import run_cli

RED = (200, 30, 30)


def png(color: tuple[int, int, int] = RED, size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def colour(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


STYLES = ("flat colour study", "minimalist poster", "soft studio light", "matte painting")


@pytest.fixture
def describe_settings(space, tmp_path) -> Settings:
    return Settings.from_env({**space.env(), "JOB_WATCHDOG_SECONDS": "5"})


# -- the Janus Space -------------------------------------------------------------------------


async def test_janus_uploads_the_image_and_asks_for_prompts(space, engine):
    photo = png()
    statuses: list[str] = []
    description = await engine.describe(
        (photo, "photo.png"), on_status=lambda item: statuses.append(item.status)
    )
    assert isinstance(description, Description)
    assert description.prompts == [f"A plain field of colour {colour(RED)}, {s}" for s in STYLES]
    assert (description.backend, description.model) == ("Janus-Pro-7B", "janus-pro-7b")
    (upload,) = space.uploads
    assert (upload.space, upload.data, upload.filename) == ("janus", photo, "photo.png")
    (join,) = space.joins("janus")
    assert (join.json["fn_index"], join.json["trigger_id"]) == (2, 10)
    file, question, seed, top_p, temperature = join.json["data"]
    assert file == {
        "path": upload.path,
        "url": f"{space.janus_url}/gradio_api/file={upload.path}",
        "orig_name": "photo.png",
        "size": len(photo),
        "mime_type": "image/png",
        "meta": {"_type": "gradio.FileData"},
    }
    assert question == question_for(4) and "four different prompts" in question
    assert isinstance(seed, int) and (top_p, temperature) == (0.95, 0.1)
    assert upload.upload_id == join.json["session_hash"]
    token = join.headers["x-zerogpu-token"]
    assert upload.headers["x-zerogpu-token"] == token
    assert space.issued_tokens[token].sub == "/spaces/roxky/Janus-Pro-7B"
    assert statuses[0] == "Acquiring GPU Token" and statuses[-1].startswith("Finished ")


async def test_count_limits_the_prompts(space, engine):
    description = await engine.describe((png(), "a.png"), count=2)
    assert len(description.prompts) == 2
    assert "two different prompts" in space.joins("janus")[0].json["data"][1]


async def test_a_numbered_answer_is_parsed(space, engine):
    space.describe_answer = (
        "Sure! Here are 4 prompts for this image:\n\n"
        '1. **Prompt 1:** "A red square on white, bauhaus poster"\n'
        "2) a red square, watercolor, soft edges\n"
        "\n"
        "3. A red square on white, bauhaus poster.\n"
        "- a crimson tile, macro photograph, shallow depth of field\n"
    )
    description = await engine.describe((png(), "a.png"))
    assert description.prompts == [
        "A red square on white, bauhaus poster",
        "a red square, watercolor, soft edges",
        "a crimson tile, macro photograph, shallow depth of field",
    ]


async def test_the_janus_provider_on_its_own(space, describe_settings):
    items = [
        item
        async for item in JanusDescribe.create_async_generator(
            "janus-pro-7b", media=[(png(), "a.png")], count=1, settings=describe_settings
        )
    ]
    (description,) = [i for i in items if isinstance(i, Description)]
    assert description.prompts == [f"A plain field of colour {colour(RED)}, {STYLES[0]}"]
    assert "one prompt" in space.joins("janus")[0].json["data"][1]


# -- failover, breakers, the official Space ---------------------------------------------------


async def test_failover_to_the_official_space_and_the_breaker_opens(space, engine):
    space.set_fault("janus", ServerError(503))
    items = [item async for item in engine.describing((png(), "a.png"))]
    (description,) = [i for i in items if isinstance(i, Description)]
    assert description.backend == "Janus-Pro-7B (official Space)"
    notice = next(i.status for i in items if isinstance(i, Notice))
    assert notice.startswith("Janus-Pro-7B is unavailable (Response 503")
    assert notice.endswith("trying Janus-Pro-7B (official Space)")
    assert engine.breaker("janus-describe").state == "open"
    # The official Space: looked up by API name, inputs checked, its own numbering and token.
    (join,) = space.joins("janus-official")
    assert (join.json["fn_index"], join.json["trigger_id"]) == (4, 12)
    assert join.json["data"][3:] == [0.95, 0.1]
    assert space.issued_tokens[join.headers["x-zerogpu-token"]].sub == (
        "/spaces/deepseek-ai/Janus-Pro-7B"
    )
    described = [r.path for r in space.requests if r.space == "janus-official"]
    assert described.index("/janus-official/gradio_api/info") < described.index(
        "/janus-official/gradio_api/upload"
    )
    # The next job leaves the resting backend alone.
    before = len([r for r in space.requests if r.space == "janus"])
    again = await engine.describe((png(), "a.png"))
    assert again.backend == "Janus-Pro-7B (official Space)"
    assert len([r for r in space.requests if r.space == "janus"]) == before


async def test_an_official_space_that_changed_its_inputs_is_not_sent_anything(space, engine):
    engine.retry_backoff = 0.01
    space.set_fault("janus", HtmlError(502))
    space.api_parameters["janus-official"] = ("image", "question")
    with pytest.raises(BackendError) as caught:
        await engine.describe((png(), "a.png"))
    text = str(caught.value)
    assert "Janus-Pro-7B: Response 502: HTML content" in text
    assert "changed its inputs: it now takes (image, question)" in text
    assert [u.space for u in space.uploads] == []
    assert space.joins("janus-official") == []


async def test_openai_vision_is_the_last_resort(space):
    photo = png((20, 200, 40))
    space.set_fault("janus", HtmlError(503))
    space.set_fault("janus-official", HtmlError(503))
    async with FakeOpenAI() as api:
        env = {**space.env(), **api.env(OPENAI_VISION_MODEL="gpt-4o")}
        async with Engine(Settings.from_env(env)) as engine:
            engine.retry_backoff = 0.01
            assert engine.describe_models() == ["janus-pro-7b", "gpt-4o"]
            description = await engine.describe((photo, "leaf.png"), count=2)
        (call,) = api.requests
    assert description.backend == "OpenAI-compatible API"
    assert description.prompts == [
        "A plain field of colour #14c828, oil painting",
        "A plain field of colour #14c828, photograph",
    ]
    assert call["path"] == "/v1/chat/completions"
    assert call["headers"]["Authorization"] == f"Bearer {api.api_key}"
    body = call["json"]
    assert body["model"] == "gpt-4o"
    text, image = body["messages"][0]["content"]
    assert text == {"type": "text", "text": question_for(2)}
    prefix = "data:image/png;base64,"
    assert image["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(image["image_url"]["url"][len(prefix) :]) == photo
    assert api.uploads == [photo]


async def test_a_vision_model_can_be_asked_by_name(space):
    async with FakeOpenAI(vision_answer="1. a green leaf\n2. a leaf, macro") as api:
        env = {**space.env(), **api.env(OPENAI_VISION_MODEL="gpt-4o")}
        async with Engine(Settings.from_env(env)) as engine:
            description = await engine.describe((png(), "a.png"), model="gpt-4o")
    assert (description.model, description.prompts) == ("gpt-4o", ["a green leaf", "a leaf, macro"])
    assert space.uploads == []  # no Space was asked


async def test_an_empty_answer_moves_on(space, engine):
    space.set_knobs("janus", describe_answer="  \n ")
    description = await engine.describe((png(), "a.png"))
    assert description.backend == "Janus-Pro-7B (official Space)"


# -- redaction --------------------------------------------------------------------------------

SECRET = "hf_FAKEsecret0123456789abcdefXYZ"


@pytest.mark.parametrize("failure", ["job", "both"])
async def test_a_secret_echoed_by_a_failing_backend_is_redacted(space, caplog, failure):
    caplog.set_level(logging.DEBUG)
    echo = f"token {SECRET} refused by http://10.1.2.3:7860/internal"
    if failure == "job":  # the job itself fails: not transient, raised as it is
        space.set_fault("janus", CompletedError(echo))
    else:  # both Spaces fail transiently: the combined error names both
        space.set_fault("janus", JsonError(503, echo))
        space.set_fault("janus-official", HtmlError(503))
    env = {**space.env(), "HF_TOKEN": SECRET}
    async with Engine(Settings.from_env(env)) as engine:
        engine.retry_backoff = 0.01
        with pytest.raises(BackendError) as caught:
            await engine.describe((png(), "a.png"))
    text = str(caught.value)
    assert SECRET not in text and "10.1.2.3" not in text
    assert "[redacted]" in text and "[address hidden]" in text
    assert text.startswith("token [redacted]" if failure == "job" else "Janus-Pro-7B: Response 503")
    assert SECRET not in caplog.text


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"count": 0}, BadInput, "count must be from 1 to 10, not 0."),
        ({"count": 11}, BadInput, "count must be from 1 to 10, not 11."),
        ({"count": "4"}, BadInput, "count must be a whole number, not '4'."),
        ({"image": (b"GIF89a-not-really", "x.gif"), "model": "nope"}, UnknownModel, "nope"),
        ({"image": (b"%PDF-1.4", "x.pdf")}, BadInput, "not an image"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_sent(space, engine, kwargs, error, text):
    image = kwargs.pop("image", (png(), "a.png"))
    with pytest.raises(error, match=text):
        engine.describing(image, **kwargs)
    assert space.requests == []


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "count", "prompts"),
    [
        ("1. a fox\n2. a cat\n3. a dog", 4, ["a fox", "a cat", "a dog"]),
        ("1. a fox 2. a cat 3. a dog", 2, ["a fox", "a cat"]),
        ("(1) a fox\n\n(2) a cat", 4, ["a fox", "a cat"]),
        ("* a fox\n* A FOX\n- a cat", 4, ["a fox", "a cat"]),
        ('“a fox in snow”\n"a cat"', 4, ["a fox in snow", "a cat"]),
        ("### Prompt 1\nA fox, dusk\n**Prompt 2:**\na cat", 4, ["A fox, dusk", "a cat"]),
        ("One long description of a fox.", 4, ["One long description of a fox."]),
        ("a fo\u200bx\x00 in snow", 1, ["a fox in snow"]),
        ("", 4, []),
    ],
)  # fmt: skip
def test_parse_prompts(answer, count, prompts):
    assert parse_prompts(answer, count) == prompts


def test_parsed_prompts_are_capped_at_1000_characters():
    (prompt,) = parse_prompts("1. " + "word " * 400, 4)
    assert len(prompt) <= 1000 and prompt.endswith("word")


# -- --check and the CLI ----------------------------------------------------------------------


async def test_check_covers_the_describe_backends(space):
    async with FakeOpenAI() as api:
        env = {
            **space.env(),
            **api.env(OPENAI_VISION_MODEL="gpt-4o", OPENAI_IMAGE_MODELS="x"),
            "HORDE_FLUX_MODEL": "none",  # no AI Horde at its (internet) address to probe
        }
        out = io.StringIO()
        async with Engine(Settings.from_env(env)) as engine:
            await check(engine, out, generate=True)
        lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
        for name in ("janus-describe", "janus-official-describe", "openai-vision"):
            assert " yes " in lines[name] and "ok (1 prompt)" in lines[name], lines[name]
        assert " ok " in lines["janus-official-describe"]
        assert " yes " in lines["flux-kontext-dev"] and "ok (" in lines["flux-kontext-dev"]

        space.api_parameters["janus-official"] = ("image",)
        api.models = [m for m in api.models if m["id"] != "gpt-4o"]
        out = io.StringIO()
        async with Engine(Settings.from_env(env)) as engine:
            assert await check(engine, out) == 1
        lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
        assert " changed " in lines["janus-official-describe"]
        assert "missing gpt-4o" in lines["openai-vision"]


async def test_cli_describe_prints_the_prompts(space, tmp_path):
    (tmp_path / "photo.png").write_bytes(png())
    code, out, err = await run_cli(space, "--describe", "photo.png", "--count", "3", cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines() == [
        f"A plain field of colour {colour(RED)}, {style}" for style in STYLES[:3]
    ]
    assert "Uploading the image" in err.splitlines()
    assert [u.data for u in space.uploads] == [png()]
    code, _, err = await run_cli(space, "--describe", "photo.png", "--count", "0", cwd=tmp_path)
    assert code == 2 and "error: count must be from 1 to 10, not 0." in err
