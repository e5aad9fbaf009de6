"""The upscaler and FLUX.1 Fill as the fake Spaces serve them (``tests.fakes.space`` hosts them):
their inputs as the real apps define them, Gradio's checks of those inputs, and what each
draws. Written from the apps, not from the engine, so a test can catch the engine out.

finegrain/finegrain-image-enhancer's ``app.py``::

    def process(input_image, prompt="masterpiece, best quality, highres",
                negative_prompt="worst quality, low quality, normal quality", seed=42,
                upscale_factor=2, controlnet_scale=0.6, controlnet_decay=1.0, condition_scale=6,
                tile_width=112, tile_height=144, denoise_strength=0.35, num_inference_steps=18,
                solver="DDIM") -> tuple[Image, Image]        # an ImageSlider: (before, after)

with sliders Seed 0..10000, Upscale Factor 1..4, ControlNet Scale 0..1.5, ControlNet Scale Decay
0.5..1, Condition Scale 2..20, Latent Tile Width/Height 64..200, Denoise Strength 0..1, Number
of Inference Steps 1..30, and a Solver radio (DDIM, DPMSolver). The enhancer brings a shorter
side above 768 down to 768 before it upscales: here, the image resized so, then by the factor.

black-forest-labs/FLUX.1-Fill-dev's ``app.py``::

    def infer(edit_images, prompt, seed=42, randomize_seed=False, width=1024, height=1024,
              guidance_scale=3.5, num_inference_steps=28) -> (image, seed)
        image = edit_images["background"]; mask = edit_images["layers"][0]
        width, height = calculate_optimal_dimensions(image)   # long side 1024, 8s, 9:16..16:9

with an ImageEditor (background, layers, composite), Seed 0..2**31-1, hidden Width/Height
256..2048, Guidance Scale 1..30, steps 1..50; FLUX's pipeline floors the size to 16s. Here
the "drawing" is the background at that size with the mask's white painted ``PAINTED``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

UPSCALE_PARAMETERS = (
    "input_image", "prompt", "negative_prompt", "seed", "upscale_factor", "controlnet_scale",
    "controlnet_decay", "condition_scale", "tile_width", "tile_height", "denoise_strength",
    "num_inference_steps", "solver",
)  # fmt: skip
FILL_PARAMETERS = (
    "edit_images", "prompt", "seed", "randomize_seed", "width", "height", "guidance_scale",
    "num_inference_steps",
)  # fmt: skip
UPSCALE_SLIDERS = {  # name: (label, low, high, whole numbers only)
    "seed": ("Seed", 0, 10_000, True),
    "upscale_factor": ("Upscale Factor", 1, 4, False),
    "controlnet_scale": ("ControlNet Scale", 0, 1.5, False),
    "controlnet_decay": ("ControlNet Scale Decay", 0.5, 1, False),
    "condition_scale": ("Condition Scale", 2, 20, False),
    "tile_width": ("Latent Tile Width", 64, 200, False),
    "tile_height": ("Latent Tile Height", 64, 200, False),
    "denoise_strength": ("Denoise Strength", 0, 1, False),
    "num_inference_steps": ("Number of Inference Steps", 1, 30, False),
}
SOLVERS = ("DDIM", "DPMSolver")
FILL_SEED_MAX = 2**31 - 1
PAINTED = (0, 255, 0)
"""Where the fake Fill paints (the mask's white)."""
SHORT_SIDE_CAP = 768


@dataclass(frozen=True)
class FillCall:
    """What the fake Fill was given, byte for byte, and the knobs."""

    background: bytes
    mask: bytes
    composite: bytes | None
    prompt: str
    seed: int
    width: int
    height: int
    guidance_scale: float
    num_inference_steps: int


@dataclass(frozen=True)
class UpscaleCall:
    """What the fake upscaler was given: the image byte for byte, and the knobs."""

    image: bytes
    data: list[Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _file_problem(label: str, file: Any, uploaded: Callable[[Any], bool]) -> str | None:
    if not isinstance(file, dict) or file.get("meta", {}).get("_type") != "gradio.FileData":
        return f"Invalid value for {label}: {file!r} is not a gradio.FileData."
    if not uploaded(file):
        return f"File {file.get('path')!r} is not in the upload folder and cannot be accessed."
    return None


def validate_upscale(data: list[Any], uploaded: Callable[[Any], bool]) -> str | None:
    """Gradio's checks of ``/process``'s inputs (the slider ranges, the radio's choices)."""
    problem = _file_problem("Input Image", data[0], uploaded)
    if problem:
        return problem
    for label, value in (("Prompt", data[1]), ("Negative Prompt", data[2])):
        if not isinstance(value, str):
            return f"Invalid value for {label}: {value!r} is not a string."
    for name, value in zip(UPSCALE_PARAMETERS[3:12], data[3:12], strict=True):
        label, low, high, whole = UPSCALE_SLIDERS[name]
        if not (_is_int(value) if whole else _is_number(value)):
            return f"Invalid value for {label}: {value!r} is not a number."
        if value < low:
            return f"Value {value} for {label} is less than minimum value {low}."
        if value > high:
            return f"Value {value} for {label} is greater than maximum value {high}."
    if data[12] not in SOLVERS:
        return f"Value: {data[12]!r} is not in the list of choices: {list(SOLVERS)}"
    return None


def validate_fill(data: list[Any], uploaded: Callable[[Any], bool]) -> str | None:
    """Gradio's checks of ``/infer``'s inputs: the editor's files, the sliders."""
    editor = data[0]
    if not isinstance(editor, dict) or not {"background", "layers"} <= set(editor):
        return f"Invalid value for Image Editor: {editor!r}."
    problem = _file_problem("Image Editor background", editor["background"], uploaded)
    if problem:
        return problem
    layers = editor["layers"]
    if not isinstance(layers, list):
        return f"Invalid value for Image Editor layers: {layers!r}."
    for layer in layers:
        if problem := _file_problem("Image Editor layer", layer, uploaded):
            return problem
    if not layers:  # the app reads layers[0]
        return "list index out of range"
    composite = editor.get("composite")
    if composite is not None and (problem := _file_problem("composite", composite, uploaded)):
        return problem
    if not isinstance(data[1], str):
        return f"Invalid value for Prompt: {data[1]!r} is not a string."
    if not _is_int(data[2]) or not 0 <= data[2] <= FILL_SEED_MAX:
        return f"Invalid value for Seed: {data[2]!r} (0..{FILL_SEED_MAX})."
    if not isinstance(data[3], bool):
        return f"Invalid value for Randomize seed: {data[3]!r} is not a boolean."
    for label, value in (("Width", data[4]), ("Height", data[5])):
        if not _is_int(value) or not 256 <= value <= 2048:
            return f"Invalid value for {label}: {value!r} (256..2048)."
    if not _is_number(data[6]) or not 1 <= data[6] <= 30:
        return f"Invalid value for Guidance Scale: {data[6]!r} (1..30)."
    if not _is_int(data[7]) or not 1 <= data[7] <= 50:
        return f"Invalid value for Number of inference steps: {data[7]!r} (1..50)."
    return None


def upscaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """A shorter side above 768 brought down to 768 (the other in proportion), then × factor."""
    short = min(width, height)
    if short > SHORT_SIDE_CAP:
        scale = SHORT_SIDE_CAP / short
        width, height = round(width * scale), round(height * scale)
    return int(width * factor), int(height * factor)


def upscale(image: Image.Image, factor: float) -> Image.Image:
    return image.convert("RGB").resize(upscaled_size(*image.size, factor), Image.Resampling.LANCZOS)


def calculate_optimal_dimensions(image: Image.Image) -> tuple[int, int]:
    """As FLUX.1-Fill-dev's app has it."""
    original_width, original_height = image.size
    min_aspect_ratio, max_aspect_ratio, fixed_dimension = 9 / 16, 16 / 9, 1024
    original_aspect_ratio = original_width / original_height
    if original_aspect_ratio > 1:
        width = fixed_dimension
        height = round(fixed_dimension / original_aspect_ratio)
    else:
        height = fixed_dimension
        width = round(fixed_dimension * original_aspect_ratio)
    width = (width // 8) * 8
    height = (height // 8) * 8
    calculated_aspect_ratio = width / height
    if calculated_aspect_ratio > max_aspect_ratio:
        width = (height * max_aspect_ratio // 8) * 8
    elif calculated_aspect_ratio < min_aspect_ratio:
        height = (width / min_aspect_ratio // 8) * 8
    width = max(width, 576) if width == fixed_dimension else width
    height = max(height, 576) if height == fixed_dimension else height
    return int(width), int(height)


def drawn_size(background: Image.Image) -> tuple[int, int]:
    """The app's size, floored to 16s by FLUX's pipeline."""
    width, height = calculate_optimal_dimensions(background)
    return width // 16 * 16, height // 16 * 16


def fill(background: Image.Image, mask: Image.Image) -> Image.Image:
    """The background at the size the Space draws, ``PAINTED`` where the mask is white (the
    mask resized as the pipeline resizes it, then read as the pipeline binarizes it)."""
    size = drawn_size(background)
    picture = background.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    white = mask.convert("L").resize(size, Image.Resampling.NEAREST)
    white = white.point(lambda value: 255 if value >= 128 else 0)
    picture.paste(PAINTED, (0, 0), white)
    return picture


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def parameter_info(name: str) -> dict[str, Any] | None:
    """``/gradio_api/info``'s entry for the inputs only these Spaces have (None: another)."""
    if name == "edit_images":
        return {
            "label": "Upload and draw mask for inpainting",
            "parameter_name": name,
            "parameter_has_default": False,
            "parameter_default": None,
            "type": {"$ref": "#/$defs/EditorData"},
            "python_type": {"type": "Dict(background: filepath | None, layers: List[filepath], "
                                    "composite: filepath | None)", "description": ""},
            "component": "Imageeditor",
        }  # fmt: skip
    if name == "solver":
        return {
            "label": "Solver",
            "parameter_name": name,
            "parameter_has_default": True,
            "parameter_default": "DDIM",
            "type": {"enum": list(SOLVERS), "title": "Radio", "type": "string"},
            "python_type": {"type": "Literal['DDIM', 'DPMSolver']", "description": ""},
            "component": "Radio",
        }
    return None


def returns_info(task: str) -> list[dict[str, Any]] | None:
    if task == "upscale":
        return [{"label": "Before / After", "component": "Imageslider", "python_type": {}}]
    if task == "fill":
        return [
            {"label": "Result", "component": "Image", "python_type": {"type": "filepath"}},
            {"label": "Seed", "component": "Slider", "python_type": {"type": "float"}},
        ]
    return None
