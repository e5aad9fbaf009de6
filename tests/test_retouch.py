"""Upscale, Zoom Out, Pan and Vary (Region) through the real engine, against the fake upscaler
and FLUX.1 Fill Spaces (``tests/fakes/retouch.py``): what each Space is sent, pixel by pixel,
what comes back, and the routing, health, quota rests, ``--check`` and CLI they share with
every backend."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from imagine.backends import BackendTable
from imagine.canvas import NEW_AREA, Cell, Direction, region
from imagine.check import check
from imagine.engine import Engine
from imagine.errors import BackendError, BadInput, UnknownModel
from imagine.quota import BOT_ACCOUNT, account_of
from imagine.responses import ImageResponse, Notice, Reasoning
from imagine.settings import Settings
from tests.conftest import space_settings
from tests.fakes import retouch
from tests.fakes.space import FakeSpace, HtmlError, QuotaExceeded, ServerError
from tests.test_cli import run_cli

RED, BLUE, WHITE = (200, 30, 30), (20, 40, 220), (255, 255, 255)
UPSCALER = "Finegrain Image Enhancer"
FILL = "FLUX.1 Fill [dev] (official Space)"


def picture(size: tuple[int, int]) -> Image.Image:
    """Red left half, blue right half, a white mark in the top-left corner: any flip, shift or
    swap of the image shows."""
    width, height = size
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    image.paste(WHITE, (0, 0, max(1, width // 5), max(1, height // 5)))
    return image


def png(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def mask_of(size: tuple[int, int], box: tuple[int, int, int, int], *, white_box: bool = False):
    """The mask expected: white outside ``box`` (or inside it, ``white_box``)."""
    mask = Image.new("L", size, 0 if white_box else 255)
    mask.paste(255 if white_box else 0, box)
    return mask


async def collect(stream):
    return [item async for item in stream]


def image_of(items) -> ImageResponse:
    (image,) = [i for i in items if isinstance(i, ImageResponse)]
    return image


def statuses(items) -> list[str]:
    return [str(i.status) for i in items if isinstance(i, Reasoning)]


# -- Upscale ---------------------------------------------------------------------------------


async def test_upscale_sends_exactly_the_given_pixels_and_takes_the_after_image(space, engine):
    original = picture((40, 24))
    items = await collect(engine.upscale((png(original), "my photo.png")))
    (upload,) = space.uploads
    assert upload.space == "upscaler" and upload.content_type == "image/png"
    assert upload.filename == "my-photo.png"
    sent = opened(upload.data)
    assert (sent.mode, sent.size) == ("RGB", (40, 24))
    assert sent.tobytes() == original.tobytes()  # the very pixels, nothing re-encoded lossily
    (call,) = space.upscales
    assert call.image == upload.data
    (join,) = space.joins("upscaler")
    assert (join.json["fn_index"], join.json["trigger_id"]) == (1, 4)
    assert join.json["data"] == [
        {
            "path": upload.path,
            "url": f"{space.upscaler_url}/gradio_api/file={upload.path}",
            "orig_name": "my-photo.png",
            "size": len(upload.data),
            "mime_type": "image/png",
            "meta": {"_type": "gradio.FileData"},
        },
        "masterpiece, best quality, highres",
        "worst quality, low quality, normal quality",
        42, 2.0, 0.6, 1.0, 6, 112, 144, 0.35, 18, "DDIM",
    ]  # fmt: skip
    # ZeroGPU: the upscaler Space's own token, on the upload and the join.
    token = join.headers["x-zerogpu-token"]
    assert upload.headers["x-zerogpu-token"] == token
    assert space.issued_tokens[token].sub == "/spaces/finegrain/finegrain-image-enhancer"
    paths = [r.path for r in space.requests]
    assert paths.index("/upscaler/gradio_api/info") < paths.index("/upscaler/gradio_api/upload")
    assert statuses(items)[:1] == ["Preparing the image"]
    assert "Uploading the image" in statuses(items)
    image = image_of(items)
    assert (image.model, image.backend, image.seed) == ("upscale", UPSCALER, 42)
    assert (image.width, image.height) == (None, None)  # the Space's rule: read off the image
    fetched = opened((await engine.download(image)).data)
    assert fetched.size == (80, 48)
    assert fetched.getpixel((75, 40)) == BLUE and fetched.getpixel((2, 2)) == WHITE


async def test_a_1024_square_comes_back_1536_and_a_factor_is_sent_as_asked(space, engine):
    image = image_of(await collect(engine.upscale(png(picture((1024, 1024))))))
    assert opened((await engine.download(image)).data).size == (1536, 1536)
    image = image_of(await collect(engine.upscale(png(picture((100, 50))), 3)))
    assert space.joins("upscaler")[-1].json["data"][4] == 3.0
    assert opened((await engine.download(image)).data).size == (300, 150)


async def test_a_jpeg_is_sent_as_its_decoded_pixels_without_its_metadata(space, engine):
    buffer = io.BytesIO()
    picture((64, 48)).save(buffer, "JPEG", quality=90, exif=b"Exif\x00\x00secret-gps")
    jpeg = buffer.getvalue()
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "secret-gps")
    for data in (jpeg, png(picture((64, 48)), pnginfo=info)):
        await collect(engine.upscale((data, "photo")))
        sent = space.uploads[-1].data
        assert b"secret-gps" not in sent and sent.startswith(b"\x89PNG")
        assert opened(sent).tobytes() == opened(data).convert("RGB").tobytes()


@pytest.mark.parametrize(
    ("image", "factor", "words"),
    [
        (b"<html>not an image</html>", 2, "not an image"),
        (None, 0.5, "upscale factor must be a number from 1 to 4, not 0.5"),
        (None, "2", "upscale factor must be a number from 1 to 4"),
        ("huge", 2, "the limit is 4096 pixels a side"),
    ],
)
async def test_bad_upscale_input_is_refused_by_the_call_before_anything_is_sent(
    space, engine, image, factor, words
):
    if image is None:
        image = png(picture((8, 8)))
    elif image == "huge":  # a header that claims 5000 x 10 pixels: nothing is decoded
        image = png(Image.new("L", (5000, 10)))
    with pytest.raises(BadInput, match=words):
        engine.upscale((image, "x.png"), factor)
    assert space.requests == []


async def test_an_upscaler_that_changed_its_inputs_gets_nothing(space, engine):
    space.api_parameters["upscaler"] = ("input_image", "prompt", "upscale_factor")
    with pytest.raises(BackendError, match=r"changed its inputs: it now takes \(input_image, pr"):
        await collect(engine.upscale(png(picture((8, 8)))))
    assert space.uploads == [] and space.joins("upscaler") == []


# -- Zoom Out and Pan ------------------------------------------------------------------------


def check_canvas(call, canvas_size, box, original: Image.Image) -> None:
    """The background holds ``original`` resized into ``box`` and grey around it, and the mask
    is white exactly outside ``box``, pixel by pixel; the composite is the background."""
    background, mask = opened(call.background), opened(call.mask)
    assert background.size == mask.size == canvas_size
    assert mask.mode == "L" and mask.tobytes() == mask_of(canvas_size, box).tobytes()
    left, top, right, bottom = box
    placed = original.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    assert background.convert("RGB").crop(box).tobytes() == placed.tobytes()
    around = background.convert("RGB")
    around.paste(NEW_AREA, box)
    assert around.getextrema() == tuple((c, c) for c in NEW_AREA)
    assert call.composite == call.background


@pytest.mark.parametrize(
    ("factor", "box"),
    [(2, (256, 256, 768, 768)), (1.5, (170, 170, 853, 853))],
)
async def test_zoom_out_centres_the_image_and_masks_exactly_the_new_border(
    space, engine, factor, box
):
    original = picture((512, 512))
    items = await collect(engine.zoom_out(png(original), "a fox in snow", factor=factor, seed=7))
    (call,) = space.fills
    check_canvas(call, (1024, 1024), box, original)
    assert (call.prompt, call.seed, call.width, call.height) == ("a fox in snow", 7, 1024, 1024)
    assert (call.guidance_scale, call.num_inference_steps) == (30, 28)
    (join,) = space.joins("fill")
    assert (join.json["fn_index"], join.json["trigger_id"]) == (3, 11)
    editor = join.json["data"][0]
    assert set(editor) == {"background", "layers", "composite"}
    assert join.json["data"][1:] == ["a fox in snow", 7, False, 1024, 1024, 30, 28]
    assert [u.filename for u in space.uploads] == ["image.png", "image-mask.png"]
    assert space.issued_tokens[join.headers["x-zerogpu-token"]].sub == (
        "/spaces/black-forest-labs/FLUX.1-Fill-dev"
    )
    image = image_of(items)
    assert (image.model, image.backend, image.seed) == ("flux-fill-dev", FILL, 7)
    assert (image.width, image.height) == (1024, 1024)
    drawn = opened((await engine.download(image)).data).convert("RGB")
    assert drawn.size == (1024, 1024)
    assert drawn.getpixel((10, 10)) == retouch.PAINTED  # the new border was painted
    assert drawn.getpixel((box[0] + 2, box[1] + 2)) == WHITE  # the original stayed in place


PANS = {  # a 300x300 image: the canvas 450x300 (or 300x450) at the Space's size
    Direction.RIGHT: ((1024, 688), (0, 0, 683, 688)),
    Direction.LEFT: ((1024, 688), (341, 0, 1024, 688)),
    Direction.DOWN: ((688, 1024), (0, 0, 688, 683)),
    Direction.UP: ((688, 1024), (0, 341, 688, 1024)),
}


@pytest.mark.parametrize("direction", list(Direction))
async def test_pan_puts_the_image_at_the_far_side_and_masks_the_new_half(space, engine, direction):
    original = picture((300, 300))
    items = await collect(engine.pan(png(original), direction.value, "more of the room"))
    (call,) = space.fills
    canvas, box = PANS[direction]
    check_canvas(call, canvas, box, original)
    assert (call.width, call.height) == (
        (1024, 672) if canvas == (1024, 688) else (672, 1024)  # the sliders' steps of 32
    )
    image = image_of(items)
    assert (image.width, image.height) == canvas
    assert opened((await engine.download(image)).data).size == canvas


async def test_pan_without_a_prompt_sends_an_empty_one(space, engine):
    await collect(engine.pan(png(picture((300, 300))), Direction.DOWN))
    assert space.fills[0].prompt == ""


async def test_a_pan_past_16_9_is_refused_before_anything_is_sent(space, engine):
    stream = engine.pan(png(picture((300, 200))), "right", "x")  # 2.25:1
    with pytest.raises(BadInput, match="from 9:16 to 16:9"):
        await collect(stream)
    assert space.uploads == [] and space.joins("fill") == []


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda e, i: e.zoom_out(i, "x", factor=3), "zoom factor must be a number from 1.1 to 2"),
        (lambda e, i: e.pan(i, "sideways"), "Pan goes left, right, up, down; not 'sideways'"),
        (lambda e, i: e.vary_region(i, [], "x"), "at least one part"),
        (lambda e, i: e.vary_region(i, ["middle"], "x"), "named top-left"),
        (lambda e, i: e.zoom_out(i, "x", seed=-1), "seed must be between"),
        (lambda e, i: e.zoom_out(b"GIF89a", "x"), "could not be read"),
    ],
)
async def test_bad_fill_input_is_refused_by_the_call(space, engine, call, words):
    with pytest.raises(BadInput, match=words):
        call(engine, png(picture((64, 64))))
    assert space.requests == []


# -- Vary (Region) and a mask of one's own --------------------------------------------------


async def test_vary_region_with_the_centre_cell_masks_the_centre_third_only(space, engine):
    original = picture((1024, 1024))
    items = await collect(
        engine.vary_region(png(original), [Cell.MIDDLE_CENTER], "a red door", seed=3)
    )
    (call,) = space.fills
    mask = opened(call.mask)
    expected = mask_of((1024, 1024), (341, 341, 683, 683), white_box=True)
    assert mask.tobytes() == expected.tobytes()
    # At the Space's size already: the background is the image itself, pixel for pixel.
    assert opened(call.background).convert("RGB").tobytes() == original.tobytes()
    drawn = opened((await engine.download(image_of(items))).data).convert("RGB")
    assert drawn.getpixel((512, 512)) == retouch.PAINTED and drawn.getpixel((100, 600)) == RED


async def test_fill_brings_image_and_mask_to_the_spaces_size_together(space, engine):
    original = picture((1344, 768))
    mask = region((1344, 768), ["top-left", "bottom-right"])
    items = await collect(engine.fill((png(original), "wide.png"), mask, "two lamps"))
    (call,) = space.fills
    background, sent = opened(call.background), opened(call.mask)
    assert background.size == sent.size == (1024, 592)
    histogram = sent.histogram()
    assert histogram[0] + histogram[255] == 1024 * 592  # still black and white
    assert sent.getpixel((10, 10)) == 255 and sent.getpixel((1000, 580)) == 255
    assert sent.getpixel((512, 296)) == 0
    assert (image_of(items).width, image_of(items).height) == (1024, 592)


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (Image.new("L", (64, 32), 255), r"mask must be the size of the image \(64×64\)"),
        (Image.new("L", (64, 64), 0), "marks nothing to paint"),
        (Image.new("RGBA", (64, 64), (255, 255, 255, 0)), "marks nothing to paint"),
    ],
)
async def test_a_mask_that_does_not_fit_is_refused_before_anything_is_sent(
    space, engine, mask, words
):
    with pytest.raises(BadInput, match=words):
        await collect(engine.fill(png(picture((64, 64))), png(mask), "x"))
    assert space.uploads == []


# -- routing, health, quota, --check ---------------------------------------------------------


def test_upscale_and_fill_have_tables_of_their_own():
    table = BackendTable.build(Settings())
    assert "upscale" not in table.models() and "flux-fill-dev" not in table.models()
    assert table.task_models("upscale") == ["upscale"]
    assert [b.name for b in table.task_backends("fill", None)] == ["fill"]
    assert table.backends["upscaler"].url == "https://finegrain-finegrain-image-enhancer.hf.space"
    assert table.backends["fill"].space == "black-forest-labs/FLUX.1-Fill-dev"


def test_a_backends_file_routes_and_disables_them(tmp_path):
    config = tmp_path / "backends.toml"
    config.write_text(
        'disable = ["upscaler"]\n'
        '[backends.my-fill]\nkind = "fill"\nurl = "https://me-flux-1-fill-dev.example.invalid"\n'
        'space = "me/FLUX.1-Fill-dev"\n'
        '[fill]\nflux-fill-dev = ["my-fill", "fill"]\n'
    )
    table = BackendTable.build(Settings(imagine_backends=str(config)))
    assert [b.name for b in table.task_backends("fill", "flux-fill-dev")] == ["my-fill", "fill"]
    assert table.backends["my-fill"].settings.fill_space_id == "me/FLUX.1-Fill-dev"
    with pytest.raises(UnknownModel, match="Available models: none is configured"):
        table.resolve_task("upscale", None)
    config.write_text('[fill]\nflux-fill-dev = ["g4f-flux"]\n')
    with pytest.raises(BadInput, match=r"another task \(drawing\): \['g4f-flux'\]"):
        BackendTable.build(Settings(imagine_backends=str(config)))


@pytest.fixture
async def spare(space, tmp_path):
    """A second fake hosting a duplicate of each Space, listed behind the built-in ones."""
    async with FakeSpace() as other:
        config = tmp_path / "spares.toml"
        config.write_text(
            f'[backends.spare-upscaler]\nkind = "upscaler"\nurl = "{other.upscaler_url}"\n'
            'space = "me/finegrain-image-enhancer"\n'
            f'[backends.spare-fill]\nkind = "fill"\nurl = "{other.fill_url}"\n'
            'space = "me/FLUX.1-Fill-dev"\n'
        )
        settings = space_settings(space, IMAGINE_BACKENDS=str(config), JOB_WATCHDOG_SECONDS="5")
        async with Engine(settings) as engine:
            engine.retry_backoff = 0.01
            yield engine, other


async def test_a_failing_upscaler_hands_over_and_opens_its_breaker(space, spare):
    engine, other = spare
    space.set_fault("upscaler", ServerError(503))
    items = await collect(engine.upscale(png(picture((16, 16)))))
    assert image_of(items).backend == f"spare-upscaler ({UPSCALER})"
    notice = next(str(i.status) for i in items if isinstance(i, Notice))
    assert f"{UPSCALER} is unavailable" in notice and "trying spare-upscaler" in notice
    assert engine.breaker("upscaler").state == "open"
    before = len(space.joins("upscaler"))
    await collect(engine.upscale(png(picture((16, 16)))))
    assert len(space.joins("upscaler")) == before  # the next job skips it
    assert len(other.upscales) == 2


async def test_a_quota_refusal_rests_fill_for_that_account_only(space, spare):
    engine, other = spare
    space.set_fault("fill", QuotaExceeded("0:09:48"))
    items = await collect(engine.zoom_out(png(picture((64, 64))), "x", hf_token="hf_member"))
    assert image_of(items).backend == f"spare-fill ({FILL})"
    notice = next(str(i.status) for i in items if isinstance(i, Notice))
    assert f"{FILL} is out of GPU quota until" in notice
    rest = engine.rests.resting("fill", account_of("hf_member"))
    assert rest is not None and rest.until - time.time() > 580
    assert engine.rests.resting("fill", BOT_ACCOUNT) is None
    assert engine.breaker("fill").state == "closed"
    # The member's own ZeroGPU token (from the hub's JWT route, with their token) was spent.
    token = space.joins("fill")[0].headers["x-zerogpu-token"]
    assert (space.issued_tokens[token].kind, space.issued_tokens[token].bearer) == (
        "jwt", "hf_member",
    )  # fmt: skip
    # The member's next job sends the resting Space nothing; the bot's goes there as usual.
    joins = len(space.joins("fill"))
    await collect(engine.pan(png(picture((64, 64))), "up", hf_token="hf_member"))
    assert len(space.joins("fill")) == joins and len(other.fills) == 2
    space.clear_faults()
    items = await collect(engine.pan(png(picture((64, 64))), "up"))
    assert image_of(items).backend == FILL and len(space.joins("fill")) == joins + 1
    token = space.joins("fill")[-1].headers["x-zerogpu-token"]
    assert space.issued_tokens[token].kind == "page"  # the bot's (anonymous) token


async def test_check_probes_both_spaces_and_generates_on_them(space, settings):
    out = io.StringIO()
    async with Engine(settings) as engine:
        assert await check(engine, out, generate=True) == 0
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
    for name, model in (("upscaler", "upscale"), ("fill", "flux-fill-dev")):
        assert lines[name].split()[1:4] == [model, "yes", "ok"], lines[name]
        assert "ok (" in lines[name]
    assert opened(space.upscales[0].image).size == (64, 64)
    assert opened(space.fills[0].mask).getpixel((48, 10)) == 255

    space.api_parameters["fill"] = ("edit_images", "prompt")
    space.set_fault("upscaler", HtmlError(503))
    out = io.StringIO()
    async with Engine(settings) as engine:
        assert await check(engine, out) == 1
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
    assert " changed " in lines["fill"] and "inputs are now (edit_images, prompt)" in lines["fill"]
    assert " NO " in lines["upscaler"] and "Response 503" in lines["upscaler"]


# -- the CLI -----------------------------------------------------------------------------------


async def test_cli_upscales_zooms_pans_and_repaints(space, tmp_path: Path):
    (tmp_path / "photo.png").write_bytes(png(picture((40, 24))))
    (tmp_path / "square.png").write_bytes(png(picture((300, 300))))
    code, out, err = await run_cli(space, "--upscale", "photo.png", "-o", "big.png", cwd=tmp_path)
    assert code == 0, err
    assert out.strip() == "Saved big.png (upscale, 80x48)"
    assert "Preparing the image" in err.splitlines() and "Uploading the image" in err.splitlines()
    assert opened((tmp_path / "big.png").read_bytes()).size == (80, 48)

    code, out, err = await run_cli(
        space, "--zoom-out", "1.5", "square.png", "a fox in snow", "--seed", "4", cwd=tmp_path
    )
    assert code == 0, err
    assert out.strip() == "Saved square-zoom-1.5x.png (flux-fill-dev, 1024x1024, seed 4)"
    assert space.fills[-1].prompt == "a fox in snow"
    assert opened(space.fills[-1].mask).tobytes() == (
        mask_of((1024, 1024), (170, 170, 853, 853)).tobytes()
    )

    code, out, err = await run_cli(space, "--pan", "left", "square.png", cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("Saved square-pan-left.png (flux-fill-dev, 1024x688, seed ")
    code, out, err = await run_cli(
        space, "--region", "middle-center,top-left", "square.png", "a window", cwd=tmp_path
    )
    assert code == 0, err
    assert out.startswith("Saved square-region.png (flux-fill-dev, 1024x1024, seed ")
    mask = opened(space.fills[-1].mask)
    assert mask.getpixel((500, 500)) == mask.getpixel((10, 10)) == 255
    assert mask.getpixel((900, 500)) == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--zoom-out", "abc", "square.png"), "zoom factor must be a number from 1.1 to 2"),
        (("--zoom-out", "3", "square.png"), "not 3"),
        (("--pan", "sideways", "square.png"), "Pan goes left, right, up, down"),
        (("--region", "middle", "square.png", "x"), "named top-left"),
        (("--upscale", "missing.png"), "cannot read missing.png"),
        (("--upscale", "square.png", "a prompt"), "--upscale takes no prompt"),
        (("--upscale", "square.png", "--pan", "up", "square.png"), "not allowed with argument"),
    ],
)
async def test_cli_bad_input_exits_2_with_a_clear_message(space, tmp_path, args, words):
    (tmp_path / "square.png").write_bytes(png(picture((300, 300))))
    code, _, err = await run_cli(space, *args, cwd=tmp_path)
    assert code == 2, err
    assert words in err
    assert [r for r in space.requests if r.space in ("upscaler", "fill")] == []


async def test_cli_a_failing_backend_exits_1_with_its_words(space, tmp_path):
    (tmp_path / "square.png").write_bytes(png(picture((300, 300))))
    space.set_fault("fill", HtmlError(503))
    code, _, err = await run_cli(space, "--pan", "down", "square.png", cwd=tmp_path)
    assert code == 1
    assert err.splitlines()[-1] == "error: Response 503: HTML content"
