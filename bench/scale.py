"""Past one process: jobs/s with 1, 2 and 4 workers, and the acknowledgement with 1 and 2 gateways.

    .venv/bin/python -m bench.scale [--workers 1,2,4] [--jobs 200] [--users 100] [--delay 1.0]
                                    [--concurrency 4] [--burst 200] [--gateways 1,2]

One throwaway PostgreSQL server for the whole run (``tests/postgres.py``, Debian's binaries),
a fresh database, a fresh fake Discord and a fresh fake Space (``--delay`` seconds per
generation, each fake in its own process) for every row.

Workers: the gateway (``bot.ImagineBot``, PostgreSQL, so gateway mode) runs in this process
as in ``bench.bot``; W ``python worker.py`` processes run the jobs with
``WORKER_CONCURRENCY=--concurrency`` each and ``MAX_CONCURRENT_JOBS=--jobs``, so the workers
are the limit (ideal: W x concurrency / delay jobs/s). After one warm-up job, ``--users``
users (servers of 25, under the bot's 60 /imagine per server per minute) send ``--jobs``
/imagine in the same event-loop turn of the fake Discord. jobs/s: jobs with their image /
(last final edit - first interaction's creation), so it includes the gateway's intake.
Overhead: from the fake Space's result to the final edit, as in ``bench.bot``.

Gateways: G ``python bot.py`` processes (one: no shard settings; two: ``SHARD_COUNT=2``,
``SHARD_IDS=0`` and ``1``, servers spread over both shards), no workers (the jobs wait in the
queue: only the acknowledgement is measured). After one warm-up /imagine per shard, ``--burst``
users send /imagine in the same event-loop turn; ack p50/p99 from the interaction's creation to
the callback, on the fake's clock (Discord's 3 s), as in ``bench.bot``.

CPU seconds per process kind are printed for each row: the two cores are shared by the
workers, the gateways, the fakes and PostgreSQL, so the figures say where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench._fakes import ROOT, fake_process
from bench._harness import DiscordControl, running_bot, space_completions
from bench.bot import measure, percentile, process_cpu, slash_spec
from imagine.settings import Settings
from tests.postgres import PostgresServer, running_postgres

USERS_PER_GUILD = 25
AIMS = {"speedup_4": 3.5, "ack_p99_ms": 100.0}


@dataclass
class Result:
    label: str
    ok: int
    n: int
    jobs_per_s: float = math.nan
    ack_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def processes(
    commands: list[list[str]], envs: list[dict[str, str]], logs: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``python <command>`` per entry (output to ``logs/<i>.log``); SIGTERM on exit."""
    started = []
    try:
        for i, (command, env) in enumerate(zip(commands, envs, strict=True)):
            with (logs / f"{i}.log").open("w") as out:
                started.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        *command,
                        cwd=ROOT,
                        env={**os.environ, **env},
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                )
        yield started
    finally:
        for process in started:
            if process.returncode is None:
                process.terminate()
        for process in started:
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {what} within {within:g}s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def fakes(delay: float) -> AsyncIterator[tuple[dict, dict, DiscordControl, Any]]:
    async with (
        fake_process("tests.fakes.space", "--port", "0", "--delay", str(delay)) as space,
        fake_process("tests.fakes.discord_server", "--port", "0") as fake,
        aiohttp.ClientSession() as http,
    ):
        yield space, fake, DiscordControl(http, fake["control"]), http


def postgres_cpu(server: PostgresServer) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its live backends, and (its
    children's times, once reaped) the backends that ended."""
    try:
        postmaster = int((server.folder / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            if pid == postmaster:  # utime, stime, cutime, cstime
                total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            elif int(fields[1]) == postmaster:
                total += process_cpu(pid)
    return total


def base_env(space: dict, fake: dict, database_url: str) -> dict[str, str]:
    return {
        **space["env"],
        "DISCORD_TOKEN": fake["token"],
        "DISCORD_API_BASE_URL": fake["rest_base"],
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }


async def warm_up(control: DiscordControl, specs: list[dict[str, Any]], until_: str) -> None:
    sent = await control.slash(specs)
    done = await control.interactions([s["id"] for s in sent], wait=60, until=until_)
    if done["timed_out"]:
        raise RuntimeError(f"the warm-up did not finish: {done}")


async def run_workers(
    server: PostgresServer, workers: int, args: argparse.Namespace, logs: Path
) -> Result:
    """W worker processes, the gateway in this process, --jobs jobs from --users users."""
    database = server.create_database()
    async with fakes(args.delay) as (space, fake, control, http):
        n_guilds = math.ceil(args.users / USERS_PER_GUILD)
        guilds = await control.guilds([f"scale {i}" for i in range(n_guilds + 1)])
        *users, warm_user = await control.users(
            [
                {"name": f"u{i}", "guild_ids": [guilds[i // USERS_PER_GUILD]["id"]]}
                for i in range(args.users)
            ]
            + [{"name": "warm", "guild_ids": [guilds[-1]["id"]]}]
        )
        env = {
            **base_env(space, fake, database),
            "MAX_CONCURRENT_JOBS": str(args.jobs),
            "MAX_JOBS_PER_USER": str(math.ceil(args.jobs / args.users)),
            "WORKER_CONCURRENCY": str(args.concurrency),
        }
        worker_env = {**env, "LOG_LEVEL": "INFO"}  # "worker ... ready" tells it is up
        async with running_bot(Settings.from_env(env)):
            command = ["worker.py"]
            async with processes([command] * workers, [worker_env] * workers, logs) as procs:

                async def all_ready() -> bool:
                    text = [(logs / f"{i}.log").read_text() for i in range(workers)]
                    return all(re.search(r"worker \S+ ready", t) for t in text)

                await until(all_ready, 60, "every worker ready")
                await warm_up(
                    control, [slash_spec(warm_user, guilds[-1]["id"], "warm", "flux")], "final"
                )
                prompts = [f"scale {workers}-{i}: a lighthouse" for i in range(args.jobs)]
                specs = [
                    slash_spec(
                        users[i % args.users],
                        guilds[(i % args.users) // USERS_PER_GUILD]["id"],
                        p,
                        "flux",
                    )
                    for i, p in enumerate(prompts)
                ]
                pids = {"workers": [p.pid for p in procs], "fakes": [space["pid"], fake["pid"]]}
                cpu0 = {k: sum(map(process_cpu, v)) for k, v in pids.items()}
                gateway0, postgres0 = time.process_time(), postgres_cpu(server)
                sent = await control.slash(specs)
                ids = [s["id"] for s in sent]
                wait = args.jobs * args.delay / workers / args.concurrency * 3 + 120
                result = await control.interactions(ids, wait=wait)
                cpu = {k: sum(map(process_cpu, v)) - cpu0[k] for k, v in pids.items()}
                cpu["gateway"] = time.process_time() - gateway0
                cpu["PostgreSQL"] = postgres_cpu(server) - postgres0
                completions = await space_completions(http, space["url"])
                stats = await control.stats()
    server.drop_database(database)
    records = result["interactions"]
    row = measure(
        args.jobs,
        records,
        dict(zip(ids, prompts, strict=True)),
        completions,
        stats["count_429"],
        math.nan,
        0.0,
        0.0,
    )
    last = max((e["at"] for r in records for e in r["edits"]), default=math.nan)
    first = min(r["created_at"] for r in records)
    out = Result(
        f"{workers} worker(s)",
        row.ok,
        row.n,
        row.ok / (last - first),
        row.ack_ms,
        row.overhead_ms,
        cpu,
        row.problems,
    )
    if stats["count_429"]:
        out.problems.append(f"{stats['count_429']} x 429")
    return out


async def run_gateways(
    server: PostgresServer, gateways: int, args: argparse.Namespace, logs: Path
) -> Result:
    """G gateway processes (G shards), --burst simultaneous /imagine, no workers."""
    database = server.create_database()
    async with fakes(args.delay) as (space, fake, control, _http):
        n_guilds = math.ceil(args.burst / USERS_PER_GUILD)
        # Two spare servers, one per shard, for the warm-up.
        guilds = await control.guilds([f"gw {i}" for i in range(n_guilds + 2)], shards=2)
        *users, warm0, warm1 = await control.users(
            [
                {"name": f"u{i}", "guild_ids": [guilds[i // USERS_PER_GUILD]["id"]]}
                for i in range(args.burst)
            ]
            + [{"name": f"warm{s}", "guild_ids": [guilds[n_guilds + s]["id"]]} for s in (0, 1)]
        )
        env = base_env(space, fake, database)
        envs = (
            [env]
            if gateways == 1
            else [
                {**env, "SHARD_COUNT": str(gateways), "SHARD_IDS": str(i)} for i in range(gateways)
            ]
        )
        async with processes([["bot.py"]] * gateways, envs, logs) as procs:

            async def ready() -> bool:
                info = await control.info()
                return info["ready_sessions"] == gateways and bool(info["commands"])

            await until(ready, 60, f"{gateways} gateway(s) ready")
            warm = [
                slash_spec(u, guilds[n_guilds + s]["id"], "warm", "flux")
                for s, u in enumerate((warm0, warm1))
            ]
            await warm_up(control, warm, "callback")
            specs = [
                slash_spec(u, guilds[i // USERS_PER_GUILD]["id"], f"burst {i}", "flux")
                for i, u in enumerate(users)
            ]
            pids = {"gateways": [p.pid for p in procs], "fakes": [space["pid"], fake["pid"]]}
            cpu0 = {k: sum(map(process_cpu, v)) for k, v in pids.items()}
            postgres0 = postgres_cpu(server)
            sent = await control.slash(specs)
            result = await control.interactions([s["id"] for s in sent], wait=60, until="callback")
            cpu = {k: sum(map(process_cpu, v)) - cpu0[k] for k, v in pids.items()}
            cpu["PostgreSQL"] = postgres_cpu(server) - postgres0
    server.drop_database(database)
    records = result["interactions"]
    acks = [r["ack_latency"] * 1000 for r in records if r["ack_latency"] is not None]
    out = Result(f"{gateways} gateway(s)", len(acks), len(records), ack_ms=acks, cpu=cpu)
    if len(acks) < len(records):
        out.problems.append(f"{len(records) - len(acks)} interaction(s) never acknowledged")
    return out


def cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="worker processes per row")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per worker row")
    parser.add_argument("--users", type=int, default=100, help="users sending them")
    parser.add_argument("--delay", type=float, default=1.0, help="generation seconds per job")
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY")
    parser.add_argument("--burst", type=int, default=200, help="simultaneous /imagine")
    parser.add_argument("--gateways", default="1,2", help="gateway processes per row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    worker_rows: list[Result] = []
    gateway_rows: list[Result] = []
    with running_postgres() as server, tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in (int(w) for w in args.workers.split(",") if w.strip()):
            print(f"{n} worker(s)...", file=sys.stderr, flush=True)
            (logs := Path(tmp) / f"workers{n}").mkdir()
            worker_rows.append(await run_workers(server, n, args, logs))
        for n in (int(g) for g in args.gateways.split(",") if g.strip()):
            print(f"{n} gateway(s)...", file=sys.stderr, flush=True)
            (logs := Path(tmp) / f"gateways{n}").mkdir()
            gateway_rows.append(await run_gateways(server, n, args, logs))

    command = " ".join([".venv/bin/python -m bench.scale", *(argv or sys.argv[1:])])
    print(
        f"{args.jobs} jobs from {args.users} users, {args.delay:g}s generations, "
        f"WORKER_CONCURRENCY={args.concurrency}, PostgreSQL, fakes in their own processes\n"
    )
    one = worker_rows[0].jobs_per_s if worker_rows else math.nan
    print(
        "| workers | jobs ok | jobs/s | ideal jobs/s | vs 1 worker | overhead p50 ms "
        "| overhead p99 ms | CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in worker_rows:
        n = int(row.label.split()[0])
        ideal = n * args.concurrency / args.delay
        print(
            f"| {n} | {row.ok}/{row.n} | {row.jobs_per_s:.1f} | {ideal:g} "
            f"| {row.jobs_per_s / one:.2f}x | {percentile(row.overhead_ms, 50):.1f} "
            f"| {percentile(row.overhead_ms, 99):.1f} | {cpu_text(row.cpu)} |"
        )
    print(f"\n{args.burst} simultaneous /imagine, no workers\n")
    print("| gateways | acked | ack p50 ms | ack p99 ms | CPU s |")
    print("|---|---:|---:|---:|---|")
    for row in gateway_rows:
        print(
            f"| {row.label.split()[0]} | {row.ok}/{row.n} | {percentile(row.ack_ms, 50):.1f} "
            f"| {percentile(row.ack_ms, 99):.1f} | {cpu_text(row.cpu)} |"
        )
    print(f"\n{command}   ({time.monotonic() - started:.0f}s)\n\naims:")
    by_label = {r.label: r for r in worker_rows + gateway_rows}
    if "4 worker(s)" in by_label:
        speedup = by_label["4 worker(s)"].jobs_per_s / one
        verdict = "met" if speedup >= AIMS["speedup_4"] else "MISSED"
        print(f"- 4 workers / 1 worker: {speedup:.2f}x (aim >= {AIMS['speedup_4']:g}x): {verdict}")
    if "2 gateway(s)" in by_label:
        p99 = percentile(by_label["2 gateway(s)"].ack_ms, 99)
        verdict = "met" if p99 < AIMS["ack_p99_ms"] else "MISSED"
        print(f"- ack p99 with 2 gateways: {p99:.1f} ms (aim < {AIMS['ack_p99_ms']:g}): {verdict}")
    for row in worker_rows + gateway_rows:
        for problem in row.problems[:10]:
            print(f"  {row.label}: {problem}")
    return 0


if __name__ == "__main__":
    from bot import loop_factory  # the bot's own event loop (uvloop where installed)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        sys.exit(runner.run(main()))
