"""The bot's own processes for end-to-end tests (workers, gateways): started with the test's
environment, logged to a file, stopped gracefully (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``python ARGS`` from the repository's root, with ``env`` over the test's own."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def ended(message) -> bool:
    """A reply that shows its ending (a result or a failure), not a status."""
    return bool(message and not message.loading and message.embeds)


def endings(message) -> list[dict]:
    """The versions of a reply that show an ending (a result or a failure)."""
    return [v for v in message.versions if v.get("embeds")]
