"""``python -m imagine`` as a user runs it, against the fake Spaces."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

from PIL import Image

from imagine.cli import StatusLine
from tests.conftest import seed_backends_file
from tests.fakes.space import HtmlError

ROOT = Path(__file__).resolve().parents[1]


async def run_cli(space, *args: str, cwd: Path) -> tuple[int, str, str]:
    env = {
        **os.environ,
        **space.env(),
        "PYTHONPATH": str(ROOT),
        "IMAGINE_BACKENDS": seed_backends_file(cwd),
    }
    env.pop("HF_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imagine",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_draws_and_saves(space, tmp_path):
    space.generation_delay = 0.5
    code, out, err = await run_cli(
        space,
        "a red fox in snow",
        "--model", "flux-dev", "--width", "768", "--height", "512", "--seed", "7",
        "-o", "fox.png",
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "Saved fox.png (flux-dev, 768x512, seed 7)"
    lines = err.splitlines()
    assert lines[0] == "Acquiring GPU Token"
    assert "Sampling 4/4" in lines or "Sampling 3/4" in lines
    assert lines[-1].startswith("Finished ")
    assert "\r" not in err  # piped: plain lines, no in-place rewriting
    saved = (tmp_path / "fox.png").read_bytes()
    assert Image.open(tmp_path / "fox.png").size == (768, 512)
    assert saved in space.images_by_url.values()
    assert space.joins("flux-dev")[0].json["data"][:5] == ["a red fox in snow", 7, False, 768, 512]


async def test_default_file_name_and_gallery(space, tmp_path):
    code, out, err = await run_cli(
        space, "robots", "-m", "janus-pro-7b-image", "--seed", "9", cwd=tmp_path
    )
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png")
    assert names == ["imagine-9-2.png", "imagine-9-3.png", "imagine-9-4.png", "imagine-9.png"]
    assert out.count("Saved ") == 4


async def test_list_models(space, tmp_path):
    code, out, _ = await run_cli(space, "--list-models", cwd=tmp_path)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [
        "flux", "flux-dev", "janus-pro-7b-image", "flux-kontext-dev", "flux-schnell",
        "janus-pro-7b",
    ]  # fmt: skip


async def test_bad_input_exits_2_with_a_clear_message(space, tmp_path):
    code, _, err = await run_cli(space, "x", "--model", "dalle", cwd=tmp_path)
    assert code == 2
    assert "error: Unknown model 'dalle'. Available models: flux, flux-dev" in err
    code, _, err = await run_cli(space, "   ", cwd=tmp_path)
    assert code == 2 and "prompt is empty" in err
    code, _, err = await run_cli(space, "x", "--width", "abc", cwd=tmp_path)
    assert code == 2 and "invalid int value: 'abc'" in err
    code, _, err = await run_cli(space, "x", "--height", "4096", cwd=tmp_path)
    assert code == 2 and "height must be at most 2048" in err
    assert space.requests == []


async def test_backend_failure_exits_1(space, tmp_path):
    space.set_fault("g4f-flux", HtmlError(503))
    code, out, err = await run_cli(space, "x", cwd=tmp_path)
    assert code == 1
    assert err.splitlines()[-1] == "error: Response 503: HTML content"
    assert out == ""
    assert list(tmp_path.glob("*.png")) == []


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_rewrites_one_line_on_a_terminal():
    terminal = FakeTerminal()
    status = StatusLine(terminal)
    status.show("Generating 0.20s")
    status.show("Generating 0.40s")
    status.done()
    assert terminal.getvalue() == "\r\x1b[KGenerating 0.20s\r\x1b[KGenerating 0.40s\n"
