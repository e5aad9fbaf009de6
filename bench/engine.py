"""Engine throughput and CPU cost per job against the fake Spaces (in their own process).

    .venv/bin/python -m bench.engine [--jobs 2000] [--model flux-dev] [--g4f-python PATH]
    .venv/bin/python -m bench.engine --space gradio [--gradio-python /tmp/gradio/bin/python]
                                     [--jobs 1000] [--space-delay 1.0] [--g4f-python PATH]
                                     [--profile pyinstrument|cprofile]

``--space gradio`` runs against a real Gradio server instead of the fake
(``bench/gradio_space.py``, from its own virtualenv, see ``bench/README.md``): FLUX.1-dev's
Blocks app with ``gr.Progress`` updates, two previews (``process_generating`` diffs),
heartbeats and a fixed generation time, 50 and 100 concurrent jobs, the ZeroGPU token handed
in (``api_key``, no hub). Rows: the long-lived ``Engine`` (one shared session) and the seed's
class API (``FluxDev.create_async_generator`` with no ``session=``: the loop's shared one).

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
import cProfile
import io
import json
import os
import pstats
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench._fakes import fake_process
from imagine.engine import Engine
from imagine.http import new_session
from imagine.providers import G4F, FluxDev
from imagine.responses import ImageResponse, Reasoning
from imagine.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
GRADIO_PYTHON = "/tmp/gradio/bin/python"
TOKEN = "bench-token"
"""The ZeroGPU token handed in (``api_key``) against the real Gradio server: no hub."""
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
    server_cpu: float = float("nan")
    """CPU seconds of the Space's process during the run (the real Gradio server only)."""

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.wall

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu / self.jobs * 1000


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_job(
    engine: Engine,
    model: str,
    *,
    shared: bool,
    download: bool,
    i: int,
    options: dict | None = None,
) -> None:
    options = options or {}
    own: aiohttp.ClientSession | None = None
    if shared:
        generator = engine.generate(model, prompt=f"bench {i}", width=64, height=64, **options)
    elif options and model == "flux-dev":  # the class API as a caller uses it: no session
        generator = FluxDev.create_async_generator(
            model, prompt=f"bench {i}", width=64, height=64, settings=engine.settings,
            tokens=engine.tokens, **options,
        )  # fmt: skip
    else:  # the reference's old habit: a ClientSession opened and closed for every job
        own = new_session()
        generator = G4F.create_async_generator(
            model, prompt=f"bench {i}", width=64, height=64, session=own,
            settings=engine.settings, tokens=engine.tokens,
        )  # fmt: skip
    image = None
    try:
        async for item in generator:
            if isinstance(item, ImageResponse):
                image = item
    finally:
        if own is not None:
            await own.close()
    assert image is not None
    if download:
        await engine.download(image)


async def measure(
    engine: Engine,
    model: str,
    concurrency: int,
    jobs: int,
    *,
    shared: bool,
    download: bool,
    options: dict | None = None,
    profiler: cProfile.Profile | Any = None,
    server_pid: int | None = None,
) -> Row:
    queue = iter(range(jobs))

    async def worker() -> None:
        for i in queue:
            await one_job(engine, model, shared=shared, download=download, i=i, options=options)

    # Warm up, each client as it is measured: token fetched, connections open, code hot.
    await asyncio.gather(
        *(
            one_job(engine, model, shared=shared, download=download, i=-1, options=options)
            for _ in range(min(concurrency, 20))
        )
    )
    server0 = process_cpu(server_pid) if server_pid else 0.0
    if profiler is not None:
        profiler.enable() if isinstance(profiler, cProfile.Profile) else profiler.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if profiler is not None:
        profiler.disable() if isinstance(profiler, cProfile.Profile) else profiler.stop()
    label = "shared session" if shared else "session per job"
    if options and not shared:
        label = "class API (the loop's shared session)"
    label += " + download" if download else ""
    row = Row(label, concurrency, jobs, wall, cpu)
    if server_pid:
        row.server_cpu = process_cpu(server_pid) - server0
    return row


async def gpt4free_reference(
    python: str, space_url: str, jobs: int, levels: str = "1,100"
) -> list[dict]:
    """Run bench/reference_g4f.py with another interpreter; its JSON lines."""
    script = Path(__file__).with_name("reference_g4f.py")
    process = await asyncio.create_subprocess_exec(
        python, str(script), space_url, str(jobs), levels, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"the gpt4free reference failed (exit {process.returncode})")
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="jobs per 100-concurrent run (default 2000; 1000 per run with --space gradio)",
    )
    parser.add_argument("--model", default="flux-dev")
    parser.add_argument("--g4f-python", help="a Python with gpt4free installed (comparison)")
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop, as the bot does (default: asyncio)"
    )
    parser.add_argument("--space", choices=("fake", "gradio"), default="fake")
    parser.add_argument(
        "--gradio-python",
        default=GRADIO_PYTHON,
        help="a Python with gradio installed (--space gradio; bench/requirements-gradio.txt)",
    )
    parser.add_argument(
        "--space-delay", type=float, default=1.0, help="generation seconds (--space gradio)"
    )
    parser.add_argument(
        "--concurrency", default="50,100", help="concurrency levels (--space gradio)"
    )
    parser.add_argument(
        "--profile",
        choices=("pyinstrument", "cprofile"),
        help="profile the Engine's run at the highest concurrency (--space gradio)",
    )
    parser.add_argument("--profile-out", default="engine-profile", help="profile file stem")
    parser.add_argument(
        "--matched",
        action="store_true",
        help="also run the Engine with at most 20 connections to the Space, as gpt4free 8.8.6 "
        "(its shared aiohttp connector: limit_per_host=20), so both meet the same queue",
    )
    args = parser.parse_args(argv)
    if args.space == "gradio":
        await gradio_main(args)
        return
    args.jobs = args.jobs or 2000
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


def new_profiler(kind: str | None) -> Any:
    if kind == "cprofile":
        return cProfile.Profile()
    if kind == "pyinstrument":
        from pyinstrument import Profiler  # a bench extra: pip install -e '.[bench]'

        return Profiler(async_mode="disabled")  # whole-process samples, every task
    return None


def write_profile(profiler: Any, stem: str) -> list[str]:
    """Save the profile; a short text summary for the terminal."""
    if isinstance(profiler, cProfile.Profile):
        profiler.dump_stats(f"{stem}.prof")
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
        stats.print_stats(30)
        Path(f"{stem}.txt").write_text(out.getvalue())
        return [f"{stem}.prof", f"{stem}.txt"]
    Path(f"{stem}.html").write_text(profiler.output_html())
    Path(f"{stem}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
    return [f"{stem}.html", f"{stem}.txt"]


async def gradio_main(args: argparse.Namespace) -> None:
    """The real Gradio server: Engine and class API, then gpt4free, at 50 and 100."""
    jobs = args.jobs or 1000
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    space_args = ["--delay", str(args.space_delay)]
    options = {"api_key": TOKEN}
    profiler = new_profiler(args.profile)
    async with fake_process(
        "gradio_space",
        *space_args,
        python=args.gradio_python,
        script=ROOT / "bench" / "gradio_space.py",
    ) as space:
        settings = Settings.from_env(space["env"])
        rows: list[Row] = []
        async with Engine(settings) as engine:
            for concurrency in levels:
                for shared in (True, False):
                    profile = profiler if shared and concurrency == max(levels) else None
                    rows.append(
                        await measure(
                            engine,
                            args.model,
                            concurrency,
                            jobs,
                            shared=shared,
                            download=False,
                            options=options,
                            profiler=profile,
                            server_pid=space["pid"],
                        )
                    )
        if args.matched:
            capped = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=20, ttl_dns_cache=300)
            )
            async with capped, Engine(settings, session=capped) as engine:
                for concurrency in levels:
                    row = await measure(
                        engine, args.model, concurrency, jobs, shared=True, download=False,
                        options=options, server_pid=space["pid"],
                    )  # fmt: skip
                    row.label = "shared session, <= 20 connections to the Space"
                    rows.append(row)
        reference = []
        if args.g4f_python:
            cpu0 = process_cpu(space["pid"])
            reference = await gpt4free_reference(
                args.g4f_python, space["env"]["FLUX_DEV_SPACE_URL"], jobs, args.concurrency
            )
            reference_server = process_cpu(space["pid"]) - cpu0
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"model {args.model}, real Gradio server (bench/gradio_space.py) in its own process, "
        f"{args.space_delay:g}s generations, 4 progress updates, 2 previews, {loop} loop\n"
    )
    print("| concurrency | client | jobs | jobs/s | client CPU ms/job | vs gpt4free |")
    print("|---:|---|---:|---:|---:|---:|")
    by_level = {ref["concurrency"]: ref for ref in reference}
    for row in rows:
        ref = by_level.get(row.concurrency)
        ratio = f"{row.cpu_ms_per_job / ref['cpu_ms_per_job']:.2f}x" if ref else "-"
        print(
            f"| {row.concurrency} | {row.label} | {row.jobs} | {row.jobs_per_second:.0f} "
            f"| {row.cpu_ms_per_job:.2f} | {ratio} |"
        )
    for ref in reference:
        print(
            f"| {ref['concurrency']} | gpt4free 8.8.6 BlackForestLabs_Flux1Dev | {ref['jobs']} "
            f"| {ref['jobs_per_second']:.0f} | {ref['cpu_ms_per_job']:.2f} | 1.00x |"
        )
    print("\nthe Gradio server's CPU ms/job during each run (it shares the 2 cores):")
    for row in rows:
        print(f"- {row.concurrency} {row.label}: {row.server_cpu / row.jobs * 1000:.2f}")
    if reference:
        total = sum(ref["jobs"] for ref in reference)
        print(f"- gpt4free, all levels: {reference_server / total * 1000:.2f}")
    if profiler is not None:
        print(f"\nprofile of the Engine at {max(levels)} concurrent: " + ", ".join(
            write_profile(profiler, args.profile_out)
        ))  # fmt: skip


if __name__ == "__main__":
    import sys

    from bot import loop_factory

    factory = loop_factory() if "--uvloop" in sys.argv else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
