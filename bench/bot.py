"""The bot under load: N concurrent /imagine through the fake Discord and the fake Space.

    .venv/bin/python -m bench.bot [--sizes 1,50,200] [--delay 2.0] [--noise] [--model flux]
                                  [--count 4]
    .venv/bin/python -m bench.bot --arrivals poisson [--rate 5,20,50] [--jobs 200]
                                  [--spread 0.25] [--seed 1]
    .venv/bin/python -m bench.bot --scrape [--sizes 200] [--rounds 5] [--scrape-every 0.05]
                                  [--arrivals poisson --rate 20 --jobs 200]

``--scrape``: what serving metrics costs the bot under load. Each round runs the same load
three times, in a rotating order: without ``METRICS_PORT`` ("off"), with it but nobody
scraping ("on"), and with it while ``bench.scraper`` (a process of its own) fetches
``/metrics`` every ``--scrape-every`` seconds for the whole of the jobs ("scraped"). One
row per run, then the median of each figure over the rounds and the ratios of those medians
(scraped / on, on / off). After each run with metrics, ``/metrics`` is read once more and
its ``imagine_jobs_total`` must count every job (a scrape under load is also a right one).

``--arrivals poisson``: instead of N jobs in the same millisecond (the thundering herd, the
worst case), ``--jobs`` jobs arrive one by one at ``--rate`` jobs per second on average
(exponential gaps, seeded by ``--seed``), and each job's generation time is drawn around
``--delay`` (normal, standard deviation ``--spread`` times the mean, at least a tenth of it;
drawn by the fake Space from the same seed and the job's prompt), so jobs start and finish
spread out as they do on a real server. One row per rate; ``MAX_CONCURRENT_JOBS`` is
``--jobs`` (no job waits for a slot). Each arrival is one control call from this process (the
bot's), ~1 ms of CPU counted in "bot CPU".

For each N: a fresh fake Discord and a fresh fake Space, each in its own process (the fake
Discord keeps every attachment in memory; that must not count against the bot), and a fresh
``bot.ImagineBot`` in THIS process (fresh SQLite file, ``MAX_CONCURRENT_JOBS=N``), so the CPU
time and peak RSS printed are the bot's own. After one warm-up job in a server of its own
(token fetched, connections open, code paths hot; not counted; the N users' servers stay
unseen, as right after a restart), N users each send one /imagine (distinct prompts, one seed,
1024x1024) in the same event-loop turn of the fake Discord. Users are spread over servers of
50, because the bot accepts at most 60 /imagine per server per minute.

Per N, one table row:

- ack p50/p99: from the interaction's creation to the bot's callback, both on the fake's clock
  (Discord's 3 s clock); "from delivery": from the moment the fake's gateway had written the
  interaction to the bot's socket, i.e. without the fake's own time to build and send a burst;
- edits/job: successful PATCHes of the interaction's original response (statuses + final);
- 429s: rate-limited answers the fake Discord sent (whole run);
- overhead p50/p99: from the moment the fake Space sent the job's result (``/run/predict``'s
  response or ``process_completed``) to the moment the fake Discord stored the final edit
  (the one with the attachment); for a grid (``--count``), from the LAST of its
  generations. The two fakes read ``time.monotonic()`` in different
  processes: on Linux that is CLOCK_MONOTONIC, a single clock for the whole machine, so the
  readings subtract across processes (``time.time()`` would too, but can jump);
- job p50: from the interaction's creation to the final edit;
- peak RSS: ``ru_maxrss`` of this process, reset before each N's bot starts (Linux
  ``/proc/self/clear_refs``), so each row is that run's peak (it includes what the previous
  runs left in the heap);
- bot CPU: CPU seconds of this process during the N jobs (the bot plus a few control calls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench._fakes import fake_process
from bench._harness import (
    DiscordControl,
    peak_rss_mb,
    reset_peak_rss,
    running_bot,
    space_completions,
)
from imagine.settings import Settings

GUILD_SIZE = 50
"""Users per server: the bot refuses more than 60 accepted /imagine per server per minute."""
SIDE = 1024
SEED = 7
"""One seed for every job (they differ by prompt): the fake Space caches its solid PNGs per
seed, and encoding a fresh 1024x1024 PNG costs it ~45 ms of CPU per job, which on a 2-core
machine would compete with the bot (200 of them: ~9 s of the fake's single event loop)."""

AIMS = {
    "ack_p99_ms": 100.0,
    "overhead_p50_ms": 50.0,
    "overhead_p99_ms": 150.0,
    "peak_rss_mb": 200.0,
}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 50 values is the largest); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class LogCounter(logging.Handler):
    """Counts the bot's WARNING+ log records (they are printed to stderr as well)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Row:
    n: int
    ok: int
    ack_ms: list[float]
    #: From the moment the fake's gateway wrote the interaction to the bot (the bot's own part).
    ack_bot_ms: list[float]
    edits: list[int]
    count_429: int
    overhead_ms: list[float]
    durations: list[float]
    peak_rss_mb: float
    cpu: float
    wall: float
    #: Per finished job: its edits minus (its duration in seconds + 2); the aim is <= 0.
    edit_excess: list[float] = field(default_factory=list)
    fake_cpu: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: Poisson arrivals: the rate asked (jobs/s) and the rate the arrivals really had.
    rate: float | None = None
    real_rate: float | None = None
    #: --scrape: the variant ("off", "on", "scraped") and what the scraper saw.
    variant: str = ""
    scrapes: int = 0
    scrape_ms: list[float] = field(default_factory=list)

    def poisson_cells(self) -> list[str]:
        return [
            f"{self.rate:g}",
            f"{self.real_rate:.1f}" if self.real_rate else "-",
            f"{self.ok}/{self.n}",
            f"{percentile(self.ack_ms, 50):.1f}",
            f"{percentile(self.ack_ms, 99):.1f}",
            str(max(self.edits, default=0)),
            str(self.count_429),
            f"{percentile(self.overhead_ms, 50):.1f}",
            f"{percentile(self.overhead_ms, 99):.1f}",
            f"{percentile(self.durations, 50):.2f}",
            f"{self.peak_rss_mb:.0f}",
            f"{self.cpu:.2f}",
        ]

    def cells(self) -> list[str]:
        return [
            str(self.n),
            f"{self.ok}/{self.n}",
            f"{percentile(self.ack_ms, 50):.1f}",
            f"{percentile(self.ack_ms, 99):.1f}",
            f"{percentile(self.ack_bot_ms, 50):.1f}",
            f"{percentile(self.ack_bot_ms, 99):.1f}",
            f"{sum(self.edits) / len(self.edits):.2f}" if self.edits else "-",
            str(max(self.edits, default=0)),
            str(self.count_429),
            f"{percentile(self.overhead_ms, 50):.1f}",
            f"{percentile(self.overhead_ms, 99):.1f}",
            f"{percentile(self.durations, 50):.2f}",
            f"{self.peak_rss_mb:.0f}",
            f"{self.cpu:.2f}",
        ]


POISSON_HEADER = [
    "rate jobs/s",
    "arrived at jobs/s",
    "jobs ok",
    "ack p50 ms",
    "ack p99 ms",
    "edits/job max",
    "429s",
    "overhead p50 ms",
    "overhead p99 ms",
    "job p50 s",
    "peak RSS MB",
    "bot CPU s",
]

HEADER = [
    "N",
    "jobs ok",
    "ack p50 ms",
    "ack p99 ms",
    "ack from delivery p50 ms",
    "ack from delivery p99 ms",
    "edits/job mean",
    "edits/job max",
    "429s",
    "overhead p50 ms",
    "overhead p99 ms",
    "job p50 s",
    "peak RSS MB",
    "bot CPU s",
]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slash_spec(
    user: dict[str, Any], guild_id: str, prompt: str, model: str, count: int = 1
) -> dict[str, Any]:
    options = {"prompt": prompt, "model": model, "width": SIDE, "height": SIDE, "seed": SEED}
    if count > 1:
        options["count"] = count
    return {
        "name": "imagine",
        "options": options,
        "user_id": user["id"],
        "guild_id": guild_id,
    }


def measure(
    n: int,
    records: list[dict[str, Any]],
    prompts: dict[str, str],
    completions: list[dict[str, Any]],
    count_429: int,
    peak: float,
    cpu: float,
    wall: float,
) -> Row:
    by_prompt: dict[str, list[float]] = {}
    for completion in completions:
        by_prompt.setdefault(completion["prompt"], []).append(completion["at"])
    row = Row(n, 0, [], [], [], count_429, [], [], peak, cpu, wall)
    for record in records:
        prompt = prompts[record["id"]]
        if record["ack_latency"] is not None:
            row.ack_ms.append(record["ack_latency"] * 1000)
            if record["delivered_at"] is not None:
                row.ack_bot_ms.append((record["callback_at"] - record["delivered_at"]) * 1000)
        else:
            row.problems.append(f"{prompt!r}: never acknowledged ({record['errors']})")
        row.edits.append(len(record["edits"]))
        # The result: attachments and an embed (a preview edit has an attachment only).
        final = next((e for e in record["edits"] if e["has_attachments"] and e["embeds"]), None)
        if final is None:
            last = record["edits"][-1]["content"] if record["edits"] else None
            row.problems.append(f"{prompt!r}: no image (last version {last!r})")
            continue
        row.ok += 1
        duration = final["at"] - record["created_at"]
        row.durations.append(duration)
        row.edit_excess.append(len(record["edits"]) - (duration + 2))
        done = [at for at in by_prompt.get(prompt, []) if at <= final["at"]]
        if not done:
            row.problems.append(f"{prompt!r}: the fake Space has no completion for it")
            continue
        row.overhead_ms.append((final["at"] - max(done)) * 1000)
    return row


def arrival_offsets(n: int, rate: float, seed: int) -> list[float]:
    """Seconds from the start at which each of ``n`` jobs arrives: a Poisson process."""
    rng = random.Random(f"arrivals:{seed}:{rate}")
    at, offsets = 0.0, []
    for _ in range(n):
        offsets.append(at)
        at += rng.expovariate(rate)
    return offsets


async def send_spread(
    control: DiscordControl, specs: list[dict[str, Any]], offsets: list[float]
) -> list[dict[str, Any]]:
    """Each slash command at its own moment (``offsets`` from now)."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(spec: dict[str, Any], at: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        (sent,) = await control.slash([spec])
        return sent

    return list(await asyncio.gather(*(send(s, at) for s, at in zip(specs, offsets, strict=True))))


async def run_size(
    n: int,
    args: argparse.Namespace,
    logs: LogCounter,
    rate: float | None = None,
    *,
    metrics: bool = False,
    scrape_every: float | None = None,
) -> Row:
    space_args = ["--port", "0", "--delay", str(args.delay), *(["--noise"] if args.noise else [])]
    if rate is not None:
        space_args += ["--delay-spread", str(args.spread), "--failure-seed", str(args.seed)]
    async with (
        fake_process("tests.fakes.space", *space_args) as space,
        fake_process("tests.fakes.discord_server", "--port", "0") as fake,
        aiohttp.ClientSession() as http,
    ):
        control = DiscordControl(http, fake["control"])
        n_guilds = math.ceil(n / GUILD_SIZE)
        guilds = await control.guilds([f"bench {i}" for i in range(n_guilds + 1)])
        users = await control.users(
            [{"name": f"user{i}", "guild_ids": [guilds[i // GUILD_SIZE]["id"]]} for i in range(n)]
            + [{"name": "warmup", "guild_ids": [guilds[-1]["id"]]}]
        )
        *users, warmup_user = users
        with tempfile.TemporaryDirectory(prefix="bench-bot-") as tmp:
            env = {
                **space["env"],
                "DISCORD_TOKEN": fake["token"],
                "DISCORD_API_BASE_URL": fake["rest_base"],
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'imagine.db'}",
                "MAX_CONCURRENT_JOBS": str(n),
                "LOG_LEVEL": "WARNING",
                **({"METRICS_PORT": "0"} if metrics else {}),
            }
            settings = Settings.from_env(env)
            gc.collect()
            reset_peak_rss()
            scraped = Path(tmp) / "scrapes.json"
            async with running_bot(settings) as bot:
                if args.warmup:
                    spec = slash_spec(warmup_user, guilds[-1]["id"], "warm-up", args.model)
                    (sent,) = await control.slash([spec])
                    warm = await control.interactions([sent["id"]], wait=args.delay + 60)
                    if warm["timed_out"]:
                        raise RuntimeError(f"the warm-up job did not finish: {warm}")
                logs.records.clear()
                prompts = [f"bench {n}-{i}: a lighthouse on a cliff at dusk" for i in range(n)]
                specs = [
                    slash_spec(
                        user, guilds[i // GUILD_SIZE]["id"], prompts[i], args.model, args.count
                    )
                    for i, user in enumerate(users)
                ]
                pids = {"fake Discord": fake["pid"], "fake Space": space["pid"]}
                metrics_url = f"http://127.0.0.1:{bot.ops.port}/metrics" if metrics else ""
                async with contextlib.AsyncExitStack() as scraping:
                    if scrape_every is not None:
                        scraper = await scraping.enter_async_context(
                            fake_process(
                                "bench.scraper",
                                metrics_url,
                                "--every",
                                str(scrape_every),
                                "--out",
                                str(scraped),
                            )
                        )
                        pids["scraper"] = scraper["pid"]
                    fake_cpu0 = {name: process_cpu(pid) for name, pid in pids.items()}
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    if rate is None:
                        sent = await control.slash(specs)
                    else:
                        offsets = arrival_offsets(n, rate, args.seed)
                        sent = await send_spread(control, specs, offsets)
                    ids = [s["id"] for s in sent]
                    result = await control.interactions(ids, wait=args.delay * 3 + 120)
                    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                    fake_cpu = {
                        name: process_cpu(pid) - fake_cpu0[name] for name, pid in pids.items()
                    }
                seen = json.loads(scraped.read_text()) if scraped.exists() else {}
                completions = await space_completions(http, space["url"])
                stats = await control.stats()
                expected = n + (1 if args.warmup else 0)
                counted = await jobs_counted(http, metrics_url, expected) if metrics else None
            peak = peak_rss_mb()
    row = measure(
        n,
        result["interactions"],
        dict(zip(ids, prompts, strict=True)),
        completions,
        stats["count_429"],
        peak,
        cpu,
        wall,
    )
    row.fake_cpu = fake_cpu
    if scrape_every is not None:
        row.scrapes = seen.get("scrapes", 0)
        row.scrape_ms = seen.get("ms", [])
        if not seen or seen.get("failures"):
            row.problems.append(f"scraper: {seen.get('failures', 'no record')} failed scrape(s)")
    if counted is not None and counted != expected:
        row.problems.append(f"/metrics counted {counted} jobs done, not {expected}")
    if rate is not None:
        row.rate = rate
        created = sorted(r["created_at"] for r in result["interactions"])
        if len(created) > 1 and created[-1] > created[0]:
            row.real_rate = (len(created) - 1) / (created[-1] - created[0])
    if result["timed_out"]:
        row.problems.append("some jobs had not ended when the wait timed out")
    for error in stats["internal_errors"]:
        row.problems.append(f"fake Discord internal error: {error}")
    for record in logs.records:
        row.problems.append(f"bot log {record.levelname}: {record.getMessage()[:300]}")
    return row


async def jobs_counted(http: aiohttp.ClientSession, url: str, expected: int) -> float:
    """The jobs done that ``/metrics`` counts (``imagine_jobs_total{outcome="done"}``), once
    it counts ``expected`` or after 5 s: a job is counted just after its reply shows its
    ending, and a page may be up to a second old (``imagine.ops_http.PAGE_FRESH``)."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 5.0
    while True:
        async with http.get(url) as response:
            text = await response.text()
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "imagine_jobs_total" and sample.labels.get("outcome") == "done"
        )
        if counted == expected or time.monotonic() > deadline:
            return counted
        await asyncio.sleep(0.25)


def aims_report(row: Row) -> list[str]:
    """Each aim for one row: the figure, the aim, and by how much it misses."""
    figures = [  # name, value, aim, unit, strictly below?
        ("ack p99", percentile(row.ack_ms, 99), AIMS["ack_p99_ms"], " ms", True),
        ("ack from delivery p99", percentile(row.ack_bot_ms, 99), AIMS["ack_p99_ms"], " ms", True),
        ("429s", float(row.count_429), 0.0, "", False),
        ("edits - (job seconds + 2), worst job", max(row.edit_excess, default=math.nan), 0.0,
         "", False),
        ("overhead p50", percentile(row.overhead_ms, 50), AIMS["overhead_p50_ms"], " ms", True),
        ("overhead p99", percentile(row.overhead_ms, 99), AIMS["overhead_p99_ms"], " ms", True),
        ("peak RSS", row.peak_rss_mb, AIMS["peak_rss_mb"], " MB", True),
    ]  # fmt: skip
    lines = []
    for name, value, aim, unit, strict in figures:
        if math.isnan(value):
            lines.append(f"- {name}: no data")
        elif value < aim or (not strict and value <= aim):
            lines.append(f"- {name}: {value:.4g}{unit} (aim {aim:g}{unit}): met")
        else:
            times = f", {value / aim:.1f}x the aim" if aim > 0 else ""
            lines.append(
                f"- {name}: {value:.4g}{unit} (aim {aim:g}{unit}): "
                f"MISSED by {value - aim:.4g}{unit}{times}"
            )
    if row.ok < row.n:
        lines.append(f"- jobs without their image: {row.n - row.ok}")
    return lines


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,50,200", help="comma-separated N values")
    parser.add_argument("--delay", type=float, default=2.0, help="generation seconds per job")
    parser.add_argument("--noise", action="store_true", help="incompressible (photo-sized) PNGs")
    parser.add_argument("--model", default="flux", help="flux (/run/predict), flux-dev, ...")
    parser.add_argument("--count", type=int, default=1, help="images per job (a grid if > 1)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument("--arrivals", choices=("burst", "poisson"), default="burst")
    parser.add_argument("--rate", default="5,20,50", help="jobs/s (--arrivals poisson)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per rate (poisson)")
    parser.add_argument(
        "--spread", type=float, default=0.25, help="sd of generation times / mean (poisson)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of arrivals and times")
    parser.add_argument("--scrape", action="store_true", help="the cost of /metrics (above)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three (--scrape)")
    parser.add_argument(
        "--scrape-every", type=float, default=0.05, help="seconds between scrapes (--scrape)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.scrape:
        return await scrape_main(args, argv)
    if args.arrivals == "poisson":
        return await poisson_main(args, argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    rows: list[Row] = []
    started = time.monotonic()
    for n in sizes:
        print(f"N={n}...", file=sys.stderr, flush=True)
        rows.append(await run_size(n, args, logs))

    command = " ".join(
        [".venv/bin/python -m bench.bot", *(argv if argv is not None else sys.argv[1:])]
    )
    image = "noise" if args.noise else "solid-colour"
    print(
        f"model {args.model}, {args.count} image(s) per job, {args.delay:g}s generations, "
        f"{SIDE}x{SIDE} {image} PNG, "
        f"fakes in their own processes, the bot in this one\n"
    )
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "|".join("---:" for _ in HEADER) + "|")
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    print(f"\n{command}   ({time.monotonic() - started:.0f}s)")
    print("\nCPU seconds while the N jobs ran (2 cores):")
    for row in rows:
        others = ", ".join(f"{name} {cpu:.2f}" for name, cpu in row.fake_cpu.items())
        print(f"- N={row.n}: bot {row.cpu:.2f}, {others}; wall {row.wall:.2f}s")
    largest = max(rows, key=lambda r: r.n)
    print(f"\naims at N={largest.n}:")
    print("\n".join(aims_report(largest)))
    for row in rows:
        if row.problems:
            print(f"\nN={row.n}: {len(row.problems)} problem(s)")
            for problem in row.problems[:10]:
                print(f"  {problem}")
    return 0


async def poisson_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    rates = [float(r) for r in args.rate.split(",") if r.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    rows: list[Row] = []
    started = time.monotonic()
    for rate in rates:
        print(f"rate={rate:g}/s...", file=sys.stderr, flush=True)
        rows.append(await run_size(args.jobs, args, logs, rate=rate))
    command = " ".join(
        [".venv/bin/python -m bench.bot", *(argv if argv is not None else sys.argv[1:])]
    )
    image = "noise" if args.noise else "solid-colour"
    print(
        f"model {args.model}, {args.count} image(s) per job, {args.jobs} jobs per rate arriving "
        f"as a Poisson process (seed {args.seed}), generation times around {args.delay:g}s "
        f"(sd {args.spread:g}x), {SIDE}x{SIDE} {image} PNG, fakes in their own processes, "
        f"the bot in this one\n"
    )
    print("| " + " | ".join(POISSON_HEADER) + " |")
    print("|" + "|".join("---:" for _ in POISSON_HEADER) + "|")
    for row in rows:
        print("| " + " | ".join(row.poisson_cells()) + " |")
    print(f"\n{command}   ({time.monotonic() - started:.0f}s)")
    print("\nCPU seconds while the jobs ran (2 cores):")
    for row in rows:
        others = ", ".join(f"{name} {cpu:.2f}" for name, cpu in row.fake_cpu.items())
        print(f"- {row.rate:g}/s: bot {row.cpu:.2f}, {others}; wall {row.wall:.2f}s")
    for row in rows:
        print(f"\naims at {row.rate:g} jobs/s:")
        print("\n".join(aims_report(row)))
        if row.problems:
            print(f"{len(row.problems)} problem(s)")
            for problem in row.problems[:10]:
                print(f"  {problem}")
    return 0


VARIANTS = ("off", "on", "scraped")
SCRAPE_HEADER = [
    "round",
    "metrics",
    "jobs ok",
    "ack p50 ms",
    "ack p99 ms",
    "overhead p50 ms",
    "overhead p99 ms",
    "bot CPU s",
    "scrapes",
    "scrape p50 ms",
    "scrape p99 ms",
]


def scrape_figures(row: Row) -> dict[str, float]:
    return {
        "ack p50 ms": percentile(row.ack_ms, 50),
        "ack p99 ms": percentile(row.ack_ms, 99),
        "overhead p50 ms": percentile(row.overhead_ms, 50),
        "overhead p99 ms": percentile(row.overhead_ms, 99),
        "bot CPU s": row.cpu,
    }


def scrape_cells(label: str, row: Row) -> list[str]:
    figures = scrape_figures(row)
    scraped = row.variant == "scraped"
    return [
        label,
        row.variant,
        f"{row.ok}/{row.n}",
        *(f"{figures[k]:.1f}" for k in list(figures)[:4]),
        f"{figures['bot CPU s']:.2f}",
        str(row.scrapes) if scraped else "-",
        f"{percentile(row.scrape_ms, 50):.1f}" if scraped else "-",
        f"{percentile(row.scrape_ms, 99):.1f}" if scraped else "-",
    ]


async def scrape_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Rounds of off / on / scraped, the order rotating each round (see the module notes)."""
    (n,) = [int(s) for s in args.sizes.split(",") if s.strip()][:1] or [200]
    rate = None
    if args.arrivals == "poisson":
        rate = float(args.rate.split(",")[0])
        n = args.jobs
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    rows: list[tuple[int, Row]] = []
    started = time.monotonic()
    load0 = os.getloadavg()
    for round_ in range(args.rounds):
        order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]
        for variant in order:
            print(f"round {round_ + 1}, {variant}...", file=sys.stderr, flush=True)
            row = await run_size(
                n,
                args,
                logs,
                rate,
                metrics=variant != "off",
                scrape_every=args.scrape_every if variant == "scraped" else None,
            )
            row.variant = variant
            rows.append((round_ + 1, row))
    load1 = os.getloadavg()
    command = " ".join(
        [".venv/bin/python -m bench.bot", *(argv if argv is not None else sys.argv[1:])]
    )
    load = "N jobs at once" if rate is None else f"{n} jobs arriving at {rate:g}/s (Poisson)"
    print(
        f"{load}, N={n}, model {args.model}, {args.delay:g}s generations; scraped: /metrics "
        f"fetched every {args.scrape_every * 1000:g} ms by another process\n"
    )
    print("| " + " | ".join(SCRAPE_HEADER) + " |")
    print("|" + "|".join("---:" for _ in SCRAPE_HEADER) + "|")
    for round_, row in rows:
        print("| " + " | ".join(scrape_cells(str(round_), row)) + " |")
    medians = {
        variant: {
            key: statistics.median(scrape_figures(r)[key] for _, r in rows if r.variant == variant)
            for key in scrape_figures(rows[0][1])
        }
        for variant in VARIANTS
    }
    print("\nmedians over the rounds, and their ratios:\n")
    keys = list(medians["off"])
    print("| | " + " | ".join(keys) + " |")
    print("|---|" + "|".join("---:" for _ in keys) + "|")
    for variant in VARIANTS:
        print(f"| {variant} | " + " | ".join(f"{medians[variant][k]:.2f}" for k in keys) + " |")
    for top, bottom in (("scraped", "on"), ("on", "off")):
        ratios = [medians[top][k] / medians[bottom][k] for k in keys]
        print(f"| {top} / {bottom} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    scrapes = [r for _, r in rows if r.variant == "scraped"]
    every_ms = [ms for r in scrapes for ms in r.scrape_ms]
    print(
        f"\nscrapes: {sum(r.scrapes for r in scrapes)} in {len(scrapes)} runs, latency p50 "
        f"{percentile(every_ms, 50):.1f} ms, p99 {percentile(every_ms, 99):.1f} ms, max "
        f"{max(every_ms, default=math.nan):.1f} ms"
    )
    print(f"\n{command}   ({time.monotonic() - started:.0f}s)")
    print(
        f"load average (1, 5, 15 min) before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
        f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} ({os.cpu_count()} cores)"
    )
    for round_, row in rows:
        if row.problems:
            print(f"\nround {round_} {row.variant}: {len(row.problems)} problem(s)")
            for problem in row.problems[:10]:
                print(f"  {problem}")
    return 0


if __name__ == "__main__":
    from bot import loop_factory  # the bot's own event loop (uvloop where installed)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        sys.exit(runner.run(main()))
