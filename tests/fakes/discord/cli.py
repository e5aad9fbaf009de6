"""Run the fake in its own process until SIGTERM/SIGINT (benchmarks drive it over HTTP).

``python -m tests.fakes.discord_server --port 0`` (or ``python -m tests.fakes.discord``)
prints one JSON line ``{"rest_base", "gateway_url", "control", "token", "application_id"}``
once it listens; ``control`` is the base of the control API (see ``control.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from .server import FakeDiscord

__all__ = ["main"]


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(token=args.token, port=args.port)
    await fake.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "rest_base": fake.rest_base,
        "gateway_url": fake.gateway_url,
        "control": fake.control_url,
        "token": fake.token,
        "application_id": str(fake.application_id),
    }
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    """Run the fake in its own process until SIGTERM/SIGINT (see the control API)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.discord_server",
        description="A protocol-level fake of Discord (REST + gateway) for tests.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="test-token", help="the bot token it accepts")
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0
