"""``python -m imagine``: draw one image from the terminal, with live statuses; edit an image
(``--image``, for the models that take one); turn an image into prompts (``--describe``);
upscale one (``--upscale``); or zoom out of it, pan it or repaint parts of it with the fill
model (``--zoom-out``, ``--pan``, ``--region``).

On a terminal the status is one line rewritten in place; piped, each status is a plain line.
Errors are one clear line on stderr and a non-zero exit: 2 for bad input, 1 for failures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TextIO

from dotenv import find_dotenv, load_dotenv

from .canvas import Cell, Direction, check_factor, parse_cells
from .check import check, check_job_service
from .engine import Engine
from .errors import BadInput, ImagineError
from .images import image_size
from .responses import ImagePreview, ImageResponse, Reasoning, Response
from .settings import MAX_SIDE, Settings

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m imagine",
        description="Draw an image with a free Hugging Face Space (FLUX.1, Janus-Pro-7B).",
    )
    parser.add_argument("prompt", nargs="?", help="what to draw (with --image: what to change)")
    parser.add_argument(
        "-m",
        "--model",
        help="model name (default: flux; with --describe: janus-pro-7b; with --upscale: "
        "upscale; with --zoom-out, --pan, --region: flux-fill-dev)",
    )
    parser.add_argument("--width", type=int, default=1024, help=f"pixels, 1..{MAX_SIDE}")
    parser.add_argument("--height", type=int, default=1024, help=f"pixels, 1..{MAX_SIDE}")
    parser.add_argument("--seed", type=int, help="0..4294967295 (default: random)")
    parser.add_argument("--negative", help="what the image should not show (where supported)")
    parser.add_argument(
        "--image", type=Path, help="an image to start from (models marked 'image input')"
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--describe", type=Path, metavar="IMAGE", help="print prompts for IMAGE and exit"
    )
    modes.add_argument(
        "--upscale", type=Path, metavar="IMAGE", help="save IMAGE at twice its size (no prompt)"
    )
    modes.add_argument(
        "--zoom-out",
        nargs=2,
        metavar=("FACTOR", "IMAGE"),
        help="IMAGE centred on a canvas FACTOR (1.1..2) times its size, the border painted "
        "in as the prompt says",
    )
    modes.add_argument(
        "--pan",
        nargs=2,
        metavar=("DIRECTION", "IMAGE"),
        help=f"IMAGE extended by half towards DIRECTION ({', '.join(Direction)}), painted in "
        "as the prompt (optional) says",
    )
    modes.add_argument(
        "--region",
        nargs=2,
        metavar=("CELLS", "IMAGE"),
        help="repaint cells of IMAGE's 3x3 grid as the prompt says; CELLS comma-separated: "
        f"{', '.join(Cell)}",
    )
    parser.add_argument(
        "--count", type=int, default=4, help="with --describe: how many prompts (default: 4)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="file to save (default: imagine-SEED.EXT)"
    )
    parser.add_argument("--list-models", action="store_true", help="list the models and exit")
    parser.add_argument(
        "--check", action="store_true", help="probe every configured backend and print a table"
    )
    parser.add_argument(
        "--generate", action="store_true", help="with --check: also draw a tiny image on each"
    )
    return parser


class StatusLine:
    """Shows statuses: one rewritten line on a terminal, plain lines when piped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + text)
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.live and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def output_paths(base: Path | None, seed: int | None, extension: str, count: int) -> list[Path]:
    """Where to save ``count`` images: ``base``, then ``base-2``, ``base-3``…"""
    if base is None:
        base = Path(f"imagine-{seed if seed is not None else 'image'}.{extension}")
    if count == 1:
        return [base]
    return [base] + [base.with_name(f"{base.stem}-{i}{base.suffix}") for i in range(2, count + 1)]


def read_image(path: Path) -> tuple[bytes, str]:
    """An input image as the engine takes it; ``BadInput`` when it cannot be read."""
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None


async def follow(
    engine: Engine, stream: AsyncGenerator[Response, None], status: StatusLine
) -> ImageResponse:
    """Show a job's statuses live; its image, and the health of backends that are not well."""
    result: ImageResponse | None = None
    try:
        async for item in stream:
            if isinstance(item, Reasoning):
                status.show(item.status)
            elif isinstance(item, ImagePreview):
                status.show("Preview ready")
            elif isinstance(item, ImageResponse):
                result = item
    finally:
        status.done()
        for backend, breaker in engine.backend_health():
            if breaker.state != "closed":
                status.stream.write(f"health: {backend.name} is {breaker.describe()}\n")
    if result is None:
        raise ImagineError("The backend finished without an image.")
    return result


async def draw(args: argparse.Namespace, status: StatusLine, out: TextIO) -> int:
    settings = Settings.from_env()
    images = [read_image(args.image)] if args.image is not None else None
    async with Engine(settings) as engine:
        await engine.discover_models()
        stream = engine.generate(
            args.model,
            prompt=args.prompt,
            width=args.width,
            height=args.height,
            seed=args.seed,
            negative=args.negative,
            images=images,
        )
        result = await follow(engine, stream, status)
        files = [await engine.download(result, i) for i in range(len(result.images))]
    extension = files[0].filename.rsplit(".", 1)[-1]
    paths = output_paths(args.output, result.seed, extension, len(files))
    for path, file in zip(paths, files, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.data)
    for path, file in zip(paths, files, strict=True):
        width, height = (
            (result.width, result.height) if result.width and result.height else image_size(file)
        )
        out.write(f"Saved {path} ({result.model}, {width}x{height}, seed {result.seed})\n")
    for option in result.ignored:
        status.stream.write(f"note: {result.backend} does not use a {option}; it was left out\n")
    return 0


def zoom_factor(text: str) -> float:
    """``--zoom-out``'s FACTOR, as a number from 1.1 to 2 (``BadInput`` otherwise)."""
    try:
        value = float(text)
    except ValueError:
        return check_factor(text)  # refused, in the same words
    return check_factor(value)


async def retouch(args: argparse.Namespace, status: StatusLine, out: TextIO) -> int:
    """``--upscale``, ``--zoom-out``, ``--pan`` or ``--region``: one image in, one saved."""
    async with Engine(Settings.from_env()) as engine:
        options = {"seed": args.seed, "model": args.model}
        if args.upscale is not None:
            if args.prompt is not None:
                raise BadInput("--upscale takes no prompt")
            path, suffix = args.upscale, "upscaled"
            stream = engine.upscale(read_image(path), model=args.model)
        elif args.zoom_out is not None:
            factor = zoom_factor(args.zoom_out[0])
            path, suffix = Path(args.zoom_out[1]), f"zoom-{factor:g}x"
            stream = engine.zoom_out(read_image(path), args.prompt, factor=factor, **options)
        elif args.pan is not None:
            direction, path = args.pan[0], Path(args.pan[1])
            suffix = f"pan-{direction}"
            stream = engine.pan(read_image(path), direction, args.prompt, **options)
        else:
            cells = parse_cells(args.region[0])
            path, suffix = Path(args.region[1]), "region"
            stream = engine.vary_region(read_image(path), cells, args.prompt, **options)
        result = await follow(engine, stream, status)
        file = await engine.download(result)
    extension = file.filename.rsplit(".", 1)[-1]
    target = args.output or Path(f"{path.stem}-{suffix}.{extension}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(file.data)
    width, height = (
        (result.width, result.height) if result.width and result.height else image_size(file)
    )
    seed = "" if args.upscale is not None else f", seed {result.seed}"
    out.write(f"Saved {target} ({result.model}, {width}x{height}{seed})\n")
    return 0


async def describe(args: argparse.Namespace, status: StatusLine, out: TextIO) -> int:
    """Print the prompts for one image, one per line."""
    image = read_image(args.describe)
    async with Engine(Settings.from_env()) as engine:
        try:
            description = await engine.describe(
                image,
                count=args.count,
                model=args.model,
                on_status=lambda item: status.show(item.status),
            )
        finally:
            status.done()
    for prompt in description.prompts:
        out.write(prompt + "\n")
    return 0


async def _check(settings: Settings, *, generate: bool) -> int:
    async with Engine(settings) as engine:
        backends = await check(engine, sys.stdout, generate=generate)
    return backends | await check_job_service(settings, sys.stdout)


async def _models(settings: Settings) -> list[str]:
    """One line per model: image models (those that take an input image marked), then the
    describe models."""
    async with Engine(settings) as engine:
        await engine.discover_models()
        names = engine.models(aliases=True)
        describers = engine.describe_models()
        width = max(len(n) for n in [*names, *describers])
        lines = []
        for name in names:
            mark = "image input" if engine.accepts_images(name) else ""
            lines.append(f"{name:<{width}}  {mark}".rstrip())
        lines += [f"{name:<{width}}  describe (--describe)" for name in describers]
        return lines


def main(argv: list[str] | None = None) -> int:
    load_dotenv(find_dotenv(usecwd=True))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        try:
            settings = Settings.from_env()
            models = asyncio.run(_models(settings))
        except BadInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for line in models:
            print(line)
        return 0
    if args.check:
        try:
            return asyncio.run(_check(Settings.from_env(), generate=args.generate))
        except BadInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    retouching = any(
        mode is not None for mode in (args.upscale, args.zoom_out, args.pan, args.region)
    )
    if args.describe is None and not retouching and args.prompt is None:
        parser.error(
            "a prompt is required (or --describe, --upscale, --zoom-out, --pan, --region, "
            "--list-models, --check)"
        )
    status = StatusLine(sys.stderr)
    job = describe if args.describe is not None else retouch if retouching else draw
    try:
        return asyncio.run(job(args, status, sys.stdout))
    except BadInput as exc:
        status.done()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImagineError as exc:
        status.done()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        status.done()
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
