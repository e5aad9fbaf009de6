"""Translating prompts (``Engine.translate_prompt``) through the real engine against the fake
OpenAI-compatible API on 127.0.0.1: which models may translate, the request, when nothing is
asked, failures (errors, secrets, timeouts, answers that are no translation), failover."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from imagine.engine import Engine
from imagine.errors import BackendError, BackendTimeout, UnknownModel
from imagine.settings import Settings
from imagine.translate import (
    SYSTEM_PROMPT,
    Translation,
    checked_answer,
    max_tokens,
    needs_translation,
)
from tests.fakes.openai_server import FakeOpenAI

MODEL = "gpt-4o"
LABEL = "OpenAI-compatible API"


@pytest.fixture
async def api() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def engine(api: FakeOpenAI) -> AsyncIterator[Engine]:
    settings = Settings.from_env(api.env(OPENAI_VISION_MODEL=MODEL, OPENAI_IMAGE_MODELS="dall-e-3"))
    async with Engine(settings) as engine:
        yield engine


# -- which models --------------------------------------------------------------------------


async def test_the_vision_chat_model_translates_and_image_models_do_not(engine):
    assert engine.translation_models() == [MODEL]
    assert "dall-e-3" in engine.models()  # an image model: it draws, it does not chat


async def test_no_openai_backend_means_no_translation_model(api):
    async with Engine(Settings.from_env(api.env(OPENAI_IMAGE_MODELS="dall-e-3"))) as engine:
        assert engine.translation_models() == []
        with pytest.raises(UnknownModel, match="none is configured"):
            await engine.translate_prompt("кот", MODEL)
    assert api.requests == []


async def test_a_backends_file_adds_chat_models(api, tmp_path, monkeypatch):
    monkeypatch.setenv("MINI_KEY", api.api_key)
    path = tmp_path / "backends.toml"
    path.write_text(
        "[backends.mini]\n"
        'kind = "openai-vision"\n'
        f'url = "{api.url}"\n'
        'vision_model = "gpt-4o-mini"\n'
        'api_key_env = "MINI_KEY"\n'
    )
    env = api.env(OPENAI_VISION_MODEL=MODEL, IMAGINE_BACKENDS=str(path))
    async with Engine(Settings.from_env(env)) as engine:
        assert engine.translation_models() == [MODEL, "gpt-4o-mini"]
        translation = await engine.translate_prompt("кот", "gpt-4o-mini")
    assert translation == Translation("кот", "cat", "gpt-4o-mini", f"mini ({LABEL})")
    (chat,) = api.chats
    assert chat["json"]["model"] == "gpt-4o-mini"


# -- translating ---------------------------------------------------------------------------


async def test_a_russian_prompt_is_translated(api, engine):
    prompt = "Рыжий кот в шляпе на луне --ar 16:9 --no собака"
    translation = await engine.translate_prompt(prompt, MODEL)
    assert translation == Translation(
        original=prompt,
        english="ginger cat in a hat on the moon --ar 16:9 --no dog",
        model=MODEL,
        backend=LABEL,
    )
    (call,) = api.requests
    assert call["path"] == "/v1/chat/completions"
    assert call["headers"]["Authorization"] == f"Bearer {api.api_key}"
    body = call["json"]
    assert body["model"] == MODEL
    assert body["temperature"] == 0
    assert body["max_tokens"] == max_tokens(prompt) <= 2048
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": prompt},
    ]
    for words in ("into English", "translation only", "--", "names"):
        assert words in SYSTEM_PROMPT


@pytest.mark.parametrize(
    "prompt", ["a ginger cat in a hat --ar 16:9", "", "   ", "🐈 + 🎩 = ✨", "cat №5, 50°C"]
)
async def test_a_prompt_without_foreign_letters_makes_no_request(api, engine, prompt):
    assert await engine.translate_prompt(prompt, MODEL) is None
    assert api.requests == []


async def test_an_answer_that_is_the_prompt_again_is_no_translation(api, engine):
    assert await engine.translate_prompt("Pokémon  Pikachu", MODEL) is None  # nothing to replace
    api.chat_answer = "pokémon pikachu"
    assert await engine.translate_prompt("Pokémon Pikachu", MODEL) is None
    assert len(api.chats) == 2


async def test_an_unknown_model_is_refused_before_anything_is_sent(api, engine):
    with pytest.raises(UnknownModel, match=f"Unknown translation model 'nope'. Available: {MODEL}"):
        await engine.translate_prompt("кот", "nope")
    with pytest.raises(UnknownModel):
        await engine.translate_prompt("a cat", "dall-e-3")  # an image model
    assert api.requests == []


async def test_the_vision_path_still_describes(api, engine):
    """The fake tells a vision chat (an image in it) from a translation."""
    from tests.test_describe import png

    description = await engine.describe((png(), "a.png"), model=MODEL, count=1)
    assert description.prompts == ["A plain field of colour #c81e1e, oil painting"]
    assert api.chats == []


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refuse", "text", "transient"),
    [
        ("unavailable", "Response 503: The server is overloaded.", True),
        ("auth", "Response 401: Incorrect API key provided", False),
        ("echo", "Response 401: Key [redacted] is not valid here.", False),
    ],
)
async def test_a_backend_error_is_clear_and_keeps_the_key_secret(
    api, engine, caplog, refuse, text, transient
):
    caplog.set_level(logging.DEBUG)
    api.refuse = refuse
    with pytest.raises(BackendError) as caught:
        await engine.translate_prompt("кот", MODEL)
    error = caught.value
    assert str(error).startswith(text)
    assert (error.transient, error.backend) == (transient, LABEL)
    assert api.api_key not in str(error) and api.api_key not in caplog.text
    assert str(api.port) not in str(error)  # the backend by name, not address
    assert len(api.chats) == 1


async def test_a_slow_backend_times_out(api, engine):
    api.chat_delay = 2
    engine.translate_timeout = 0.3
    with pytest.raises(BackendTimeout) as caught:
        await engine.translate_prompt("кот", MODEL)
    assert LABEL in str(caught.value) and "0.3s" in str(caught.value)
    assert caught.value.transient


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ("", "answered without a translation"),
        ("  \n ", "answered without a translation"),
        ('""', "answered without a translation"),
        ("Sure! " + "Here is a long explanation. " * 20, "that is no translation"),
        ("a cat --ar 16:9", "changed the prompt's --flags"),
    ],
)
async def test_an_answer_that_is_no_translation_is_refused(api, engine, answer, text):
    api.chat_answer = answer
    with pytest.raises(BackendError, match=text):
        await engine.translate_prompt("кот", MODEL)


async def test_a_transient_failure_moves_on_to_the_next_backend(api, tmp_path, monkeypatch):
    async with FakeOpenAI() as spare:
        monkeypatch.setenv("SPARE_KEY", spare.api_key)
        path = tmp_path / "backends.toml"
        path.write_text(
            f'[backends.spare]\nkind = "openai-vision"\nurl = "{spare.url}"\n'
            'api_key_env = "SPARE_KEY"\n'
        )
        api.refuse = "unavailable"
        env = api.env(OPENAI_VISION_MODEL=MODEL, IMAGINE_BACKENDS=str(path))
        async with Engine(Settings.from_env(env)) as engine:
            assert engine.translation_models() == [MODEL]  # one model, two backends
            translation = await engine.translate_prompt("собака", MODEL)
            assert translation is not None
            assert (translation.english, translation.backend) == ("dog", f"spare ({LABEL})")
            api.refuse = "auth"  # not transient: raised as it is, the spare is not asked
            with pytest.raises(BackendError, match="Response 401"):
                await engine.translate_prompt("собака", MODEL)
        assert (len(api.chats), len(spare.chats)) == (2, 1)


# -- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "needed"),
    [
        ("a cat in a hat", False),
        ("a cat --no text --seed 7", False),
        ("🐱🎩", False),
        ("café au lait", True),
        ("кот", True),
        ("猫", True),
        ("a cat, 帽子", True),
    ],
)
def test_needs_translation(prompt, needed):
    assert needs_translation(prompt) is needed


@pytest.mark.parametrize(
    ("answer", "english"),
    [
        ("  a cat  \n", "a cat"),
        ('"a cat"', "a cat"),
        ("«a cat»", "a cat"),
        ("<think>The user wants English.</think>\na cat", "a cat"),
        ("КОТ", None),
        ("кот", None),
    ],
)
def test_checked_answer(answer, english):
    assert checked_answer("кот", answer, LABEL) == english


def test_quotes_the_prompt_had_are_kept():
    assert checked_answer('"кот"', '"cat"', LABEL) == '"cat"'


def test_flags_may_change_dash_but_not_meaning():
    assert checked_answer("кот —ar 16:9", "cat --ar 16:9", LABEL) == "cat --ar 16:9"
    with pytest.raises(BackendError, match="--flags"):
        checked_answer("кот --ar 16:9 --seed 7", "cat --ar 16:9", LABEL)
