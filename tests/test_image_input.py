"""Image input (image-to-image) through the real engine, against the fake Spaces and the fake
OpenAI-compatible API: uploads, payloads, headers, refusals, previews, the CLI."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imagine.engine import Engine
from imagine.errors import BackendError, BadInput, FetchError, message_of
from imagine.i18n import Language, _, texts
from imagine.messages import Message
from imagine.providers import G4F, FluxKontext
from imagine.responses import ImagePreview, ImageResponse, Reasoning
from imagine.settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.space import ServerError
from tests.test_cli import run_cli

RED = (200, 30, 30)
BLUE = (20, 40, 220)


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def inverted(color: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = color
    return 255 - r, 255 - g, 255 - b


def pixel(data: bytes) -> tuple[int, ...]:
    value = Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))
    assert isinstance(value, tuple)
    return value


async def collect(generator):
    return [item async for item in generator]


def image_of(items) -> ImageResponse:
    (image,) = [i for i in items if isinstance(i, ImageResponse)]
    return image


# -- FLUX.1 Kontext ----------------------------------------------------------------------------


async def test_kontext_uploads_the_image_then_joins_with_its_file_data(space, engine):
    photo = png(RED)
    items = await collect(
        engine.generate(
            "flux-kontext-dev", prompt="make it night", images=[(photo, "my photo.png")], seed=5
        )
    )
    (upload,) = space.uploads
    assert (upload.space, upload.data) == ("kontext", photo)  # byte for byte
    assert (upload.filename, upload.content_type) == ("my-photo.png", "image/png")
    (join,) = space.joins("kontext")
    assert upload.upload_id == join.json["session_hash"]
    assert (join.json["fn_index"], join.json["trigger_id"]) == (2, 7)
    assert join.json["data"] == [
        {
            "path": upload.path,
            "url": f"{space.kontext_url}/gradio_api/file={upload.path}",
            "orig_name": "my-photo.png",
            "size": len(photo),
            "mime_type": "image/png",
            "meta": {"_type": "gradio.FileData"},
        },
        "make it night",
        5,
        False,
        2.5,
        28,
    ]
    # ZeroGPU headers on the upload and the join, from the Kontext Space's own page.
    token = join.headers["x-zerogpu-token"]
    assert upload.headers["x-zerogpu-token"] == token
    assert upload.headers["x-zerogpu-uuid"] == join.headers["x-zerogpu-uuid"]
    assert space.issued_tokens[token].sub == "/spaces/black-forest-labs/FLUX.1-Kontext-Dev"
    # The API description was checked before anything was sent.
    paths = [r.path for r in space.requests]
    assert paths.index("/kontext/gradio_api/info") < paths.index("/kontext/gradio_api/upload")
    assert "Uploading the image" in [i.status for i in items if isinstance(i, Reasoning)]
    image = image_of(items)
    assert (image.model, image.seed, image.backend) == (
        "flux-kontext-dev", 5, "FLUX.1 Kontext [dev] (official Space)",
    )  # fmt: skip
    assert (image.width, image.height) == (None, None)  # the input's proportions, unknown here
    assert image.ignored == ()
    fetched = await engine.download(image)
    assert Image.open(io.BytesIO(fetched.data)).size == (32, 16)
    assert pixel(fetched.data) == inverted(RED)


async def test_the_result_follows_the_image_sent(space, settings):
    """gpt4free's way in: ``media=[(bytes, filename)]`` on ``create_async_generator``."""
    results = {}
    for color in (RED, BLUE):
        items = await collect(
            FluxKontext.create_async_generator(
                "flux-kontext-dev", [Message(role="user", content="make it night")],
                media=[(png(color), "photo.png")], settings=settings,
            )
        )  # fmt: skip
        image = image_of(items)
        async with Engine(settings) as engine:
            results[color] = pixel((await engine.download(image)).data)
    assert results == {RED: inverted(RED), BLUE: inverted(BLUE)}
    assert [u.data for u in space.uploads] == [png(RED), png(BLUE)]


async def test_a_kontext_space_that_changed_its_inputs_gets_nothing(space, engine):
    space.api_parameters["kontext"] = ("input_image", "prompt")
    with pytest.raises(BackendError, match=r"changed its inputs: it now takes \(input_image, pr"):
        await collect(engine.generate("flux-kontext-dev", prompt="x", images=[(png(RED), "a")]))
    assert space.uploads == [] and space.joins("kontext") == []


async def test_a_failing_kontext_space_opens_its_breaker(space, engine):
    engine.retry_backoff = 0.01
    space.set_fault("kontext", ServerError(503))
    with pytest.raises(BackendError) as caught:
        await collect(engine.generate("flux-kontext-dev", prompt="x", images=[(png(RED), "a")]))
    assert caught.value.transient
    assert engine.breaker("flux-kontext-dev").state == "open"


# -- refusals ----------------------------------------------------------------------------------


async def test_a_model_without_image_input_refuses_an_image(space, engine):
    with pytest.raises(BadInput) as caught:
        engine.generate("flux-dev", prompt="make it night", images=[(png(RED), "photo.png")])
    assert str(caught.value) == (
        "flux-dev cannot start from an image. Models that can: flux-kontext-dev."
    )
    with pytest.raises(BadInput, match="flux does not take an input image"):
        await collect(
            G4F.create_async_generator(
                "flux", prompt="x", media=[(png(RED), "a.png")], settings=engine.settings
            )
        )
    assert space.requests == []


@pytest.mark.parametrize(
    ("images", "text"),
    [
        (None, "flux-kontext-dev edits an image: give it one to start from."),
        ([(b"<html>not an image</html>", "x.png")], "not an image"),
        ([(b"", "x.png")], "The input image is empty."),
        ([(png(RED), "a.png"), (png(BLUE), "b.png")], "takes one input image, not 2"),
        ([("not bytes", "x.png")], "must be given as its bytes and a file name"),
    ],
)
async def test_bad_input_images_are_refused_before_anything_is_sent(space, engine, images, text):
    with pytest.raises(BadInput, match=text):
        engine.generate("flux-kontext-dev", prompt="make it night", images=images)
    assert space.requests == []


async def test_an_input_image_over_the_cap_is_refused(space, settings):
    from dataclasses import replace

    async with Engine(replace(settings, max_image_bytes=1024)) as engine:
        with pytest.raises(BadInput, match=r"The input image is 2 KiB; the limit is 1 KiB"):
            big = b"\x89PNG\r\n\x1a\n" * 256
            engine.generate("flux-kontext-dev", prompt="x", images=[(big, "big.png")])
    assert space.requests == []


async def test_which_models_take_images(space, settings):
    async with Engine(settings) as engine:
        assert engine.image_models() == ["flux-kontext-dev"]
        assert engine.accepts_images("flux-kontext-dev") and engine.requires_images(
            "flux-kontext-dev"
        )
        assert not engine.accepts_images("flux") and not engine.accepts_images("no-such-model")
        assert not engine.requires_images("flux")
    async with FakeOpenAI() as api:
        env = {**space.env(), **api.env(OPENAI_IMAGE_MODELS="gpt-image-1")}
        async with Engine(Settings.from_env(env)) as engine:
            assert "gpt-image-1" in engine.image_models()
            assert engine.accepts_images("gpt-image-1")
            assert not engine.requires_images("gpt-image-1")


# -- the OpenAI-compatible API: /images/edits ---------------------------------------------------


async def test_openai_edits_is_multipart_with_the_image_file(space):
    photo = png(BLUE, (64, 64))
    async with FakeOpenAI() as api:
        settings = Settings.from_env(api.env(OPENAI_IMAGE_MODELS="gpt-image-1"))
        async with Engine(settings) as engine:
            items = await collect(
                engine.generate(
                    "gpt-image-1", prompt="make it night", images=[(photo, "photo.png")],
                    width=512, height=256,
                )
            )  # fmt: skip
            image = image_of(items)
            fetched = await engine.download(image)
        (call,) = api.requests
        assert call["path"] == "/v1/images/edits"
        assert call["headers"]["Content-Type"].startswith("multipart/form-data")
        assert call["headers"]["Authorization"] == f"Bearer {api.api_key}"
        assert call["form"] == {
            "model": "gpt-image-1", "prompt": "make it night", "n": "1", "size": "512x256",
            "response_format": "b64_json",
        }  # fmt: skip
        assert call["files"]["image"] == {
            "filename": "photo.png", "content_type": "image/png", "data": photo,
        }  # fmt: skip
        assert api.uploads == [photo]
    assert image.backend == "OpenAI-compatible API"
    assert Image.open(io.BytesIO(fetched.data)).size == (512, 256)
    assert pixel(fetched.data) == inverted(BLUE)


async def test_openai_without_an_image_still_generates(space):
    async with FakeOpenAI() as api:
        settings = Settings.from_env(api.env(OPENAI_IMAGE_MODELS="gpt-image-1"))
        async with Engine(settings) as engine:
            await collect(engine.generate("gpt-image-1", prompt="a fox"))
        assert [c["path"] for c in api.requests] == ["/v1/images/generations"]


# -- previews ----------------------------------------------------------------------------------


async def test_previews_name_their_origin_and_backend_and_download_safely(space, engine):
    items = await collect(engine.generate("flux-dev", prompt="a lighthouse", seed=42))
    previews = [i for i in items if isinstance(i, ImagePreview)]
    assert len(previews) == 2
    preview = previews[-1]
    assert (preview.origin, preview.backend) == (space.flux_dev_url, "FLUX.1-dev")
    fetched = await engine.download(preview)
    assert fetched.data == space.images_by_url[preview.images[0]]
    assert fetched.data != (await engine.download(image_of(items))).data
    preview.origin = "http://127.0.0.2:1"  # a preview is fetched only from its own backend
    with pytest.raises(FetchError, match=r"only 127\.0\.0\.2"):
        await engine.download(preview)


# -- the CLI -----------------------------------------------------------------------------------


async def test_cli_edits_an_image(space, tmp_path):
    photo = png(RED, (48, 32))
    (tmp_path / "photo.png").write_bytes(photo)
    code, out, err = await run_cli(
        space, "make it night", "--model", "flux-kontext-dev", "--image", "photo.png",
        "--seed", "9", "-o", "out.png", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "Saved out.png (flux-kontext-dev, 48x32, seed 9)"
    assert "Uploading the image" in err.splitlines()
    assert [u.data for u in space.uploads] == [photo]
    assert pixel((tmp_path / "out.png").read_bytes()) == inverted(RED)


async def test_cli_refuses_an_image_for_a_model_without_image_input(space, tmp_path):
    (tmp_path / "photo.png").write_bytes(png(RED))
    code, _, err = await run_cli(space, "x", "--image", "photo.png", cwd=tmp_path)
    assert code == 2
    assert "error: flux cannot start from an image. Models that can: flux-kontext-dev." in err
    code, _, err = await run_cli(space, "x", "-m", "flux-kontext-dev", "--image", "no.png",
                                 cwd=tmp_path)  # fmt: skip
    assert code == 2 and "error: cannot read no.png" in err
    assert space.requests == []


async def test_cli_lists_models_and_marks_image_input(space, tmp_path):
    code, out, _ = await run_cli(space, "--list-models", cwd=tmp_path)
    assert code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert lines["flux-kontext-dev"] == ["image", "input"]
    assert lines["flux"] == [] and lines["flux-dev"] == []
    assert lines["janus-pro-7b"] == ["describe", "(--describe)"]


async def test_with_no_model_that_takes_images_the_refusal_says_so_in_the_readers_language(
    space, tmp_path
):
    backends = tmp_path / "no-image-input.toml"
    backends.write_text('disable = ["flux-kontext-dev"]\n')
    settings = Settings.from_env({**space.env(), "IMAGINE_BACKENDS": str(backends)})
    async with Engine(settings) as engine:
        with pytest.raises(BadInput) as caught:
            engine.generate("flux", prompt="make it night", images=[(png(RED), "photo.png")])
    message = message_of(caught.value)
    assert message == "flux cannot start from an image. Models that can: none is configured."
    russian = texts(Language.RU)
    assert russian(_("none is configured")) != "none is configured"
    assert russian(_("none is configured")) in russian(message)
    assert "none is configured" not in russian(message)
