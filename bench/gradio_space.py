"""A real Gradio server for the benchmarks: FLUX.1-dev's and FLUX.1-schnell's Spaces, no GPU.

    /tmp/gradio/bin/python bench/gradio_space.py [--delay 0] [--previews 2] [--steps 4]

Two ``gradio.Blocks`` apps, each on its own free port of 127.0.0.1, in this one process:

- FLUX.1-dev (``black-forest-labs/FLUX.1-dev``'s ``app.py``, as ``roxky/FLUX.1-dev`` serves it):
  ``infer(prompt, seed, randomize_seed, width, height, guidance_scale, num_inference_steps,
  progress=gr.Progress(track_tqdm=True))`` → ``[image, seed]``, queued, a generator that
  yields ``--previews`` intermediate images (``process_generating``, sent by Gradio as diffs
  after the first) and reports ``--steps`` progress updates through ``gr.Progress``, over a
  fixed generation time of ``--delay`` seconds. Its dependency numbering is the real Space's:
  the example loader and its lazy cache are ``fn_index`` 0 and 1 (``gr.Examples`` with lazy
  caching, as in the Space; gradio 6 spells it ``cache_examples=True, cache_mode="lazy"``),
  and ``gr.on([run_button.click, prompt.submit], infer, ...)`` is ``fn_index`` 2 with the Run
  button, component id 4, its first trigger: the ``fn_index`` 2 / ``trigger_id`` 4 that
  ``imagine/providers/flux_dev.py`` (and gpt4free) pin. The Space creates the prompt box
  before the button; here the button comes first so that gradio 6.31's numbering gives it
  id 4 (the page shows them in the same row). The start-up check below refuses to serve if
  the numbering ever drifts (``--dump-config`` prints it).
- FLUX.1-schnell: ``/infer(prompt, seed, randomize_seed, width, height,
  num_inference_steps)`` → ``[image, seed]``, queued, not a generator (as the real one); the
  engine finds it by API name.

Gradio is not a dependency of this project (it pins ``pillow<13``; the bot needs 13): it runs
from its own virtualenv, ``python3 -m venv /tmp/gradio && /tmp/gradio/bin/pip install -r
bench/requirements-gradio.txt``. Once both listen, one JSON line goes to stdout
(``bench/_fakes.py`` reads it): ``{"url", "schnell_url", "env", "pid"}`` with the engine's
``FLUX_DEV_SPACE_URL`` and ``FLUX_SCHNELL_SPACE_URL`` in ``env``. No hub, no download: the
ZeroGPU token is handed to the engine (``api_key``), and the images are small PNGs written at
start-up (Gradio copies them into its cache and serves them under ``/gradio_api/file=``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")

import gradio as gr

MAX_SEED = 2**31 - 1  # numpy int32, as the Space's np.iinfo(np.int32).max
MAX_IMAGE_SIZE = 2048
DEV_FN_INDEX, DEV_TRIGGER_ID = 2, 4
"""What imagine/providers/flux_dev.py sends (and gpt4free's BlackForestLabs_Flux1Dev)."""


def png(path: Path, side: int, rgb: tuple[int, int, int]) -> str:
    """A solid ``side`` x ``side`` PNG, written without Pillow (cheap, and no numpy)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" + bytes(rgb) * side
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    data = zlib.compress(row * side, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_app(images: list[str], delay: float, previews: int, steps: int) -> gr.Blocks:
    """FLUX.1-dev's Blocks: the Space's layout, ``infer`` as a queued generator."""

    async def infer(
        prompt,
        seed=42,
        randomize_seed=False,
        width=1024,
        height=1024,
        guidance_scale=3.5,
        num_inference_steps=28,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's own idiom)
    ):
        if randomize_seed:
            seed = random.randint(0, MAX_SEED)
        # `steps` progress updates spread over the generation time; a preview after every
        # len(steps) / (previews + 1) of them; the final image last.
        every = max(1, steps // (previews + 1)) if previews else steps + 1
        shown = 0
        for step in range(steps):
            progress((step, steps), desc="Sampling", unit="steps")
            await asyncio.sleep(delay / steps)
            if shown < previews and (step + 1) % every == 0:
                yield images[shown % (len(images) - 1)], seed
                shown += 1
        yield images[-1], seed

    with gr.Blocks(title="FLUX.1 [dev]") as demo:  # id 0 is the Blocks
        with gr.Column(elem_id="col-container"):  # 1
            gr.Markdown("# FLUX.1 [dev] (benchmark stand-in)")  # 2
            with gr.Row():  # 3
                # The Space puts the prompt first; here the Run button is created first so
                # that it gets component id 4, the trigger_id clients send (see above).
                run_button = gr.Button("Run", scale=0)  # 4
                prompt = gr.Text(label="Prompt", show_label=False, max_lines=1, container=False)
            result = gr.Image(label="Result", show_label=False)
            with gr.Accordion("Advanced Settings", open=False):
                seed = gr.Slider(label="Seed", minimum=0, maximum=MAX_SEED, step=1, value=0)
                randomize_seed = gr.Checkbox(label="Randomize seed", value=True)
                with gr.Row():
                    width = gr.Slider(
                        label="Width", minimum=256, maximum=MAX_IMAGE_SIZE, step=32, value=1024
                    )
                    height = gr.Slider(
                        label="Height", minimum=256, maximum=MAX_IMAGE_SIZE, step=32, value=1024
                    )
                with gr.Row():
                    guidance_scale = gr.Slider(
                        label="Guidance Scale", minimum=1, maximum=15, step=0.1, value=3.5
                    )
                    num_inference_steps = gr.Slider(
                        label="Number of inference steps", minimum=1, maximum=50, step=1, value=28
                    )
            gr.Examples(
                examples=["a tiny astronaut hatching from an egg on the moon"],
                fn=infer,
                inputs=[prompt],
                outputs=[result, seed],
                cache_examples=True,
                cache_mode="lazy",
            )
        gr.on(
            triggers=[run_button.click, prompt.submit],
            fn=infer,
            inputs=[
                prompt,
                seed,
                randomize_seed,
                width,
                height,
                guidance_scale,
                num_inference_steps,
            ],
            outputs=[result, seed],
            api_name="infer",
            concurrency_limit=None,  # ZeroGPU spreads jobs over GPUs; the queue limits nothing
        )
    return demo


def schnell_app(images: list[str], delay: float) -> gr.Blocks:
    """FLUX.1-schnell's Blocks: ``/infer``, queued, one answer."""

    async def infer(prompt, seed=42, randomize_seed=False, width=1024, height=1024,
                    num_inference_steps=4, progress=gr.Progress(track_tqdm=True)):  # noqa: B008  # fmt: skip
        if randomize_seed:
            seed = random.randint(0, MAX_SEED)
        await asyncio.sleep(delay)
        return images[-1], seed

    with gr.Blocks(title="FLUX.1 [schnell]") as demo:
        prompt = gr.Text(label="Prompt", show_label=False, max_lines=1)
        run_button = gr.Button("Run", scale=0)
        result = gr.Image(label="Result", show_label=False)
        seed = gr.Slider(label="Seed", minimum=0, maximum=MAX_SEED, step=1, value=0)
        randomize_seed = gr.Checkbox(label="Randomize seed", value=True)
        width = gr.Slider(label="Width", minimum=256, maximum=MAX_IMAGE_SIZE, step=32, value=1024)
        height = gr.Slider(label="Height", minimum=256, maximum=MAX_IMAGE_SIZE, step=32, value=1024)
        num_inference_steps = gr.Slider(
            label="Number of inference steps", minimum=1, maximum=50, step=1, value=4
        )
        gr.on(
            triggers=[run_button.click, prompt.submit],
            fn=infer,
            inputs=[prompt, seed, randomize_seed, width, height, num_inference_steps],
            outputs=[result, seed],
            api_name="infer",
            concurrency_limit=None,
        )
    return demo


def check_numbering(demo: gr.Blocks) -> None:
    """Refuse to serve a FLUX.1-dev whose ``infer`` is not fn_index 2 with trigger 4."""
    config = demo.get_config_file()
    dependencies = config["dependencies"]
    infer = next(d for d in dependencies if d.get("api_name") == "infer")
    found = (infer.get("id"), infer["targets"][0][0])
    if found != (DEV_FN_INDEX, DEV_TRIGGER_ID):
        raise SystemExit(
            f"FLUX.1-dev stand-in: infer is fn_index/trigger {found}, not "
            f"{(DEV_FN_INDEX, DEV_TRIGGER_ID)}; the engine would call something else"
        )


def serve(folder: Path, args: argparse.Namespace) -> tuple[str, str] | None:
    colours = [(40, 40, 40), (120, 120, 120), (200, 60, 30)]
    images = [png(folder / f"image{i}.png", args.side, c) for i, c in enumerate(colours)]
    dev = dev_app(images, args.delay, args.previews, args.steps)
    if args.dump_config:
        config = dev.get_config_file()
        for c in config["components"]:
            print(c["id"], c["type"], c.get("props", {}).get("value", ""))
        for i, d in enumerate(config["dependencies"]):
            print(i, d.get("id"), d.get("api_name"), d["targets"])
        return None
    check_numbering(dev)
    schnell = schnell_app(images, args.delay)
    ports = []
    for demo in (dev, schnell):
        port = free_port()
        demo.queue(default_concurrency_limit=None, max_size=None)
        demo.launch(
            server_name="127.0.0.1",
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            allowed_paths=[str(folder)],
            ssr_mode=False,
        )
        ports.append(port)
    return f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0, help="generation seconds per job")
    parser.add_argument("--previews", type=int, default=2, help="intermediate images per job")
    parser.add_argument("--steps", type=int, default=4, help="gr.Progress updates per job")
    parser.add_argument("--side", type=int, default=64, help="side of the PNGs served")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=0.5,
        help="seconds between heartbeats (Spaces: 15 s in 20-30 s jobs; 0.5 s keeps that "
        "ratio for 1 s jobs)",
    )
    parser.add_argument("--dump-config", action="store_true", help="print the dev app's config")
    args = parser.parse_args(argv)
    os.environ["GRADIO_HEARTBEAT_INTERVAL"] = str(args.heartbeat)  # read per stream

    folder = Path(tempfile.mkdtemp(prefix="bench-gradio-"))
    os.chdir(folder)  # Gradio keeps its cache (.gradio/) in the working directory
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON line alone
        urls = serve(folder, args)
    if urls is None:
        return
    url, schnell_url = urls
    info = {
        "url": url,
        "schnell_url": schnell_url,
        "env": {"FLUX_DEV_SPACE_URL": url, "FLUX_SCHNELL_SPACE_URL": schnell_url},
        "pid": os.getpid(),
    }
    print(json.dumps(info), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
