"""Engine throughput and CPU cost per job against the fake Spaces (in their own process).

    .venv/bin/python -m bench.engine [--jobs 2000] [--model flux-dev] [--g4f-python PATH]

For 1 and 100 concurrent jobs: jobs/s, the engine's CPU milliseconds per job (this process
only: the fake runs in another), with one shared ClientSession (how the bot runs) and with a
new ClientSession per job (the habit of the reference implementation), and their ratio.
"Generate" is the provider run from request to ImageResponse; "+ download" also fetches the
image through imagine.fetch (host check, size cap, type sniffing).

With ``--g4f-python`` (the interpreter of a separate virtualenv with ``pip install g4f``),
gpt4free's own FLUX.1-dev provider runs against the same fake Space in its own process, for a
same-run comparison (``bench/reference_g4f.py``; gpt4free is not a dependency of this project).

Fallback overhead: the model's first backend is down (its host refuses connections) and its
circuit breaker is reset before each job, so every job fails over; the figure is the time from
the engine's learning of the failure (its "unavailable; trying …" status) to the next
backend's first status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench._fakes import fake_process
from imagine.engine import Engine
from imagine.providers import G4F
from imagine.responses import ImageResponse, Reasoning
from imagine.settings import Settings

DOWN = "http://127.0.0.1:1/run/predict"
"""Nothing listens on port 1: connections are refused at once (a Space that is down)."""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


async def fallback_overheads(settings: Settings, concurrency: int, jobs: int) -> list[float]:
    """Milliseconds from a failover notice to the next backend's first status, per job."""
    samples: list[float] = []
    async with Engine(replace(settings, g4f_flux_url=DOWN)) as engine:
        assert [b.name for b in engine.table.backends_for("flux")][:2] == [
            "g4f-flux",
            "flux-schnell",
        ]
        queue = iter(range(jobs))

        async def worker() -> None:
            for i in queue:
                engine.health.pop("g4f-flux", None)  # every job meets the broken backend
                noticed = None
                async for item in engine.generate("flux", prompt=f"fallback {i}", width=256,
                                                  height=256):  # fmt: skip
                    now = time.perf_counter()
                    if isinstance(item, Reasoning) and "is unavailable" in item.status:
                        noticed = now
                    elif noticed is not None:
                        samples.append((now - noticed) * 1000)
                        noticed = None

        await engine.generate("flux", prompt="warm-up", width=256, height=256).__anext__()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


@dataclass
class Row:
    label: str
    concurrency: int
    jobs: int
    wall: float
    cpu: float

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.wall

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu / self.jobs * 1000


async def one_job(engine: Engine, model: str, *, shared: bool, download: bool, i: int) -> None:
    if shared:
        generator = engine.generate(model, prompt=f"bench {i}", width=64, height=64)
    else:  # the reference's habit: a ClientSession opened and closed for every job
        generator = G4F.create_async_generator(
            model,
            prompt=f"bench {i}",
            width=64,
            height=64,
            settings=engine.settings,
            tokens=engine.tokens,
        )
    image = None
    async for item in generator:
        if isinstance(item, ImageResponse):
            image = item
    assert image is not None
    if download:
        await engine.download(image)


async def measure(
    engine: Engine, model: str, concurrency: int, jobs: int, *, shared: bool, download: bool
) -> Row:
    queue = iter(range(jobs))

    async def worker() -> None:
        for i in queue:
            await one_job(engine, model, shared=shared, download=download, i=i)

    # Warm up: token fetched, connections open, code paths hot.
    await asyncio.gather(
        *(
            one_job(engine, model, shared=True, download=download, i=-1)
            for _ in range(min(concurrency, 20))
        )
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    label = "shared session" if shared else "session per job"
    label += " + download" if download else ""
    return Row(label, concurrency, jobs, wall, cpu)


async def gpt4free_reference(python: str, space_url: str, jobs: int) -> list[dict]:
    """Run bench/reference_g4f.py with another interpreter; its JSON lines."""
    script = Path(__file__).with_name("reference_g4f.py")
    process = await asyncio.create_subprocess_exec(
        python, str(script), space_url, str(jobs), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"the gpt4free reference failed (exit {process.returncode})")
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per 100-concurrent run")
    parser.add_argument("--model", default="flux-dev")
    parser.add_argument("--g4f-python", help="a Python with gpt4free installed (comparison)")
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop, as the bot does (default: asyncio)"
    )
    args = parser.parse_args(argv)
    async with fake_process("tests.fakes.space", "--port", "0", "--delay", "0") as fake:
        settings = Settings.from_env(fake["env"])
        rows: list[Row] = []
        async with Engine(settings) as engine:
            for concurrency, jobs in ((1, max(args.jobs // 10, 50)), (100, args.jobs)):
                for shared, download in ((True, False), (False, False), (True, True)):
                    rows.append(
                        await measure(
                            engine, args.model, concurrency, jobs, shared=shared, download=download
                        )
                    )
        fallback = [(c, await fallback_overheads(settings, c, 200)) for c in (1, 10)]
        reference = []
        if args.g4f_python:
            reference = await gpt4free_reference(
                args.g4f_python, fake["env"]["FLUX_DEV_SPACE_URL"], args.jobs
            )
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"model {args.model}, fake Space in its own process, no generation delay, {loop} loop\n")
    print("| concurrency | session | jobs | jobs/s | engine CPU ms/job |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.concurrency} | {row.label} | {row.jobs} | {row.jobs_per_second:.0f} "
            f"| {row.cpu_ms_per_job:.2f} |"
        )
    print()
    for concurrency in (1, 100):
        shared = next(
            r for r in rows if r.concurrency == concurrency and r.label == "shared session"
        )
        per_job = next(
            r for r in rows if r.concurrency == concurrency and r.label == "session per job"
        )
        cpu = per_job.cpu_ms_per_job / shared.cpu_ms_per_job
        speed = per_job.jobs_per_second / shared.jobs_per_second
        print(
            f"concurrency {concurrency}: a session per job costs {cpu:.2f}x the CPU per job "
            f"and gives {speed:.2f}x the jobs/s of a shared session"
        )
    if reference:
        print("\ngpt4free's FLUX.1-dev provider, same fake Space, same run (a session per job):\n")
        print("| concurrency | jobs | jobs/s | CPU ms/job | ours (shared session) / gpt4free |")
        print("|---:|---:|---:|---:|---:|")
        for ref in reference:
            ours = next(
                r for r in rows
                if r.concurrency == ref["concurrency"] and r.label == "shared session"
            )  # fmt: skip
            print(
                f"| {ref['concurrency']} | {ref['jobs']} | {ref['jobs_per_second']:.0f} "
                f"| {ref['cpu_ms_per_job']:.2f} "
                f"| {ours.cpu_ms_per_job / ref['cpu_ms_per_job']:.2f}x CPU |"
            )
    print("\nfallback overhead (first backend down, the next one's first status):\n")
    print("| concurrency | jobs | p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|")
    for concurrency, samples in fallback:
        print(
            f"| {concurrency} | {len(samples)} | {percentile(samples, 50):.2f} "
            f"| {percentile(samples, 99):.2f} |"
        )


if __name__ == "__main__":
    import sys

    from bot import loop_factory

    factory = loop_factory() if "--uvloop" in sys.argv else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
