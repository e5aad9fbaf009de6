"""A scraper in a process of its own: ``GET`` a URL every ``--every`` seconds until SIGTERM.

    .venv/bin/python -m bench.scraper URL --every 0.05 --out FILE

Prints one JSON line once it runs (as the fakes do, for ``bench._fakes.fake_process``);
at SIGTERM writes ``{"scrapes", "failures", "ms": [latency of each], "bytes"}`` to
``--out``. Scrapes start on a fixed grid (one every ``--every`` seconds, start to start; a
slow one delays the next, none is skipped to catch up), so the bot is asked at a steady
rate whatever it answers. Its CPU is its own, not the bot's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between scrapes")
    parser.add_argument("--out", required=True, help="where to write what was seen (JSON)")
    args = parser.parse_args(argv)
    seen = asyncio.run(scrape(args.url, args.every))
    Path(args.out).write_text(json.dumps(seen))
    return 0


async def scrape(url: str, every: float) -> dict[str, Any]:
    """Scrape until SIGTERM; what was seen."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    latencies: list[float] = []
    failures = 0
    size = 0
    print(json.dumps({"url": url, "every": every}), flush=True)
    async with aiohttp.ClientSession() as http:
        next_at = loop.time()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async with http.get(url) as response:
                    body = await response.read()
                    if response.status != 200:
                        failures += 1
                    size = len(body)
            except aiohttp.ClientError:
                failures += 1
            latencies.append((time.perf_counter() - started) * 1000)
            next_at = max(next_at + every, loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - loop.time()))
    return {"scrapes": len(latencies), "failures": failures, "ms": latencies, "bytes": size}


if __name__ == "__main__":
    sys.exit(main())
