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
async def fake_process(module: str, *args: str) -> AsyncIterator[dict]:
    """Start ``python -m module args``; yield the JSON line it prints once it listens (plus
    the process's ``pid``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
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
