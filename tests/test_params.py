"""Request checks: the size rule, and bad input refused before anything is sent."""

import pytest

from imagine.errors import BadInput, UnknownModel
from imagine.messages import Message
from imagine.providers import G4F
from imagine.providers.base import MAX_PROMPT_CHARS, clean_prompt, round_side


@pytest.mark.parametrize(
    ("asked", "sent"),
    [(513, 512), (20, 32), (1024, 1024), (39, 32), (40, 40), (1, 32), (2047, 2040)],
)
def test_size_rule(asked, sent):
    assert round_side(asked) == sent
    request = G4F.prepare("flux", None, prompt="x", width=asked, height=asked)
    assert (request.width, request.height) == (sent, sent)


def test_aliases_resolve():
    assert G4F.get_model("flux-schnell") == "flux"
    assert G4F.get_model("FLUX-DEV") == "flux-dev"
    assert G4F.get_model(" janus-pro-7b-image ") == "janus-pro-7b-image"


def test_control_characters_are_removed():
    assert clean_prompt("a \x00red\x1b fox\u202e\r\nin snow") == "a red fox\nin snow"


BAD = [
    ({"prompt": "   "}, "empty"),
    ({"prompt": None, "messages": []}, "empty"),
    ({"prompt": None, "messages": [Message(role="assistant", content="hi")]}, "empty"),
    ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "limit"),
    ({"model": "dall-e-3"}, "Available models: flux, flux-dev, flux-schnell, janus-pro-7b-image"),
    ({"width": "512"}, "width must be a whole number"),
    ({"width": 512.0}, "width must be a whole number"),
    ({"width": True}, "width must be a whole number"),
    ({"height": 0}, "height must be greater than 0"),
    ({"height": -8}, "height must be greater than 0"),
    ({"width": 2049}, "width must be at most 2048"),
    ({"seed": -1}, "seed must be between 0 and 4294967295"),
    ({"seed": 2**32}, "seed must be between 0 and 4294967295"),
    ({"seed": "7"}, "seed must be a whole number"),
]


@pytest.mark.parametrize(("kwargs", "text"), BAD)
async def test_bad_input_is_refused_before_anything_is_sent(space, settings, kwargs, text):
    arguments = {"model": "flux", "messages": None, "prompt": "a fox", **kwargs}
    model = arguments.pop("model")
    messages = arguments.pop("messages")
    generator = G4F.create_async_generator(model, messages, settings=settings, **arguments)
    with pytest.raises(BadInput) as caught:
        async for _ in generator:
            pass
    assert text in str(caught.value)
    assert space.requests == []


async def test_unknown_model_is_an_unknown_model_error(space, settings):
    with pytest.raises(UnknownModel):
        async for _ in G4F.create_async_generator("sdxl", prompt="x", settings=settings):
            pass
    assert space.requests == []


async def test_flux_dev_seed_above_its_range_is_refused(space, settings):
    with pytest.raises(BadInput, match="flux-dev accepts seeds from 0 to 2147483647"):
        async for _ in G4F.create_async_generator(
            "flux-dev", prompt="x", seed=2**31, settings=settings
        ):
            pass
    assert [r for r in space.requests if "queue" in r.path] == []
