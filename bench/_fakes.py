"""Run a test fake in its own process, so a benchmark's CPU figures are its own alone."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def fake_process(
    module: str, *args: str, python: str | None = None, script: Path | None = None
) -> AsyncIterator[dict]:
    """Start ``python -m module args`` (or ``python script args``, with another interpreter
    when ``python`` is given); yield the JSON line it prints once it listens (plus the
    process's ``pid``)."""
    command = [str(script)] if script is not None else ["-m", module]
    process = await asyncio.create_subprocess_exec(
        python or sys.executable,
        *command,
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"{module} exited before it was ready")
        info = json.loads(line)
        info.setdefault("pid", process.pid)  # e.g. to read its CPU time in /proc
        yield info
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
