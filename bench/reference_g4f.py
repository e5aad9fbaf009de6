"""gpt4free's own FLUX.1-dev provider on the same fake Space, for a same-run comparison.

Not part of the project: run by ``bench/engine.py --g4f-python PATH`` with the interpreter
of a separate virtualenv that has gpt4free (``python3 -m venv /tmp/g4f &&
/tmp/g4f/bin/pip install g4f==8.8.6``), against the fake Space or the real Gradio server
(``bench/gradio_space.py``): ``reference_g4f.py URL JOBS [LEVELS]``, LEVELS the
comma-separated concurrency levels (default ``1,100``; 1 runs JOBS/10 jobs, at least 50). It
prints one JSON line per concurrency level:
``{"concurrency", "jobs", "jobs_per_second", "cpu_ms_per_job"}``. The ZeroGPU token is given
(``api_key``), so g4f does not fetch one per image here (it would against the real hub).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from g4f.Provider.hf_space.BlackForestLabs_Flux1Dev import BlackForestLabs_Flux1Dev
from g4f.providers.response import ImageResponse


async def one_job(i: int) -> None:
    image = None
    async for item in BlackForestLabs_Flux1Dev.create_async_generator(
        "flux-dev", [], prompt=f"bench {i}", width=256, height=256, api_key="bench-token"
    ):
        if isinstance(item, ImageResponse):
            image = item
    assert image is not None


async def measure(concurrency: int, jobs: int) -> dict:
    queue = iter(range(jobs))

    async def worker() -> None:
        for i in queue:
            await one_job(i)

    await asyncio.gather(*(one_job(-1) for _ in range(min(concurrency, 20))))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "concurrency": concurrency,
        "jobs": jobs,
        "jobs_per_second": jobs / wall,
        "cpu_ms_per_job": cpu / jobs * 1000,
    }


async def main(space_url: str, jobs: int, levels: str = "1,100") -> None:
    BlackForestLabs_Flux1Dev.url = space_url
    BlackForestLabs_Flux1Dev.referer = f"{space_url}/?__theme=light"
    for concurrency in (int(c) for c in levels.split(",")):
        count = max(jobs // 10, 50) if concurrency == 1 else jobs
        print(json.dumps(await measure(concurrency, count)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4]))
