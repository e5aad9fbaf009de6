"""Soak: the real bot under a long, faulty load, and nothing may be lost.

    .venv/bin/python -m bench.soak [--jobs 500] [--users 100] [--minutes 3] [--failure-rate 0.05]
                                   [--drops 2] [--delay 1.0] [--seed 1]

A quick version for development: ``--jobs 60 --users 20 --minutes 0.5`` (under a minute).

The real ``bot.ImagineBot`` runs in THIS process (on ``bot.loop_factory()``, a fresh SQLite
file, default settings: ``MAX_CONCURRENT_JOBS`` 4, ``MAX_JOBS_PER_USER`` 3), against the fake
Discord and the fake Space, each in its own process (as ``bench.bot`` runs them), with the seed's
backends only (``IMAGINE_BACKENDS`` disables the official Spaces), so a failed generation is not
simply failed over to another Space.

The load: ``--jobs`` /imagine from ``--users`` users, at random moments (a seeded RNG: a rerun
sends the same prompts at the same offsets) spread over ``--minutes``. Each user's own jobs are
spaced out (user ``u``'s ``k``-th of ``n`` jobs lands in the middle 80% of the ``k``-th ``n``-th
of the run), and users are spread over enough servers (at most 5 users each, at most ~20 jobs
per server per minute), so that the bot's per-user limits (5 per minute, 3 in progress) and
per-server limit (60 per minute) are not what is measured; refusals that happen anyway are
counted and printed with their texts. Prompts alternate between ``flux`` (``/run/predict``) and
``flux-dev`` (the Gradio queue); the seed is one of 16, so the fake Space serves cached PNGs.

The faults: the fake Space fails ``--failure-rate`` of the generation requests it gets (each
with one of a 503 on join/predict, "CUDA out of memory" inside the job, a cut stream: see
``tests.fakes.space.RANDOM_FAILURES``; which requests fail is seeded by prompt and attempt), and
the fake Discord drops the bot's gateway connection ``--drops`` times, evenly over the run
(alternately a TCP abort and a close with code 4000; ``POST /_control/drop_gateway``);
discord.py must RESUME each time. The job due nearest each drop is sent right after it, so it
is created while the bot is disconnected and reaches it only with the RESUME.

How a job ended is read from its reply as the fake Discord holds it (``POST /_control/replies``):
an image is an attachment with the result embed; an error is the embed titled "Couldn't make
this image" with a Retry button; anything still showing a status is lost.

At the end, once every accepted job has ended (or ``--drain-timeout`` passed), it prints what
happened to every job (images, error replies, jobs lost), the 429s the fake Discord sent, the
RESUMEs, what became of the injected failures, and the bot's peak RSS, CPU and wall time. The
exit status is 1 if a job was lost (accepted and never ended, or never answered) or a 429 was
sent.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
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
    space_records,
)
from bench.bot import LogCounter, percentile, process_cpu
from imagine.settings import Settings

MODELS = ("flux", "flux-dev")
SEEDS = 16
"""Seeds are drawn from 0..15: the fake Space caches its PNG per size and seed (encoding a fresh
1024x1024 one costs it ~45 ms of CPU, on the 2 cores the bot runs on)."""
USERS_PER_GUILD = 5
GUILD_JOBS_PER_MINUTE = 20
"""At most about this many jobs per server in any minute: a third of the bot's limit (60)."""
ERROR_TITLE = "Couldn't make this image"
RETRY_PREFIX = "imagine:retry:"
SEED_BACKENDS_ONLY = 'disable = ["flux-schnell", "flux-dev-official", "sd-3.5-large"]\n'
SUBJECTS = (
    "a lighthouse on a cliff at dusk",
    "a red fox in fresh snow",
    "a tram crossing a rainy city at night",
    "an astronaut reading in a greenhouse",
    "a paper boat on a mountain lake",
    "a market street in Marrakesh, watercolour",
    "a robot watering tomatoes",
    "an owl made of stained glass",
)


@dataclass(frozen=True)
class Planned:
    """One /imagine to send: when (seconds after the start), by whom, what."""

    index: int
    at: float
    user: int
    guild: int
    prompt: str
    model: str
    seed: int


@dataclass
class Drop:
    code: int | None
    at: float  # seconds after the start
    connections: int  # live gateway connections the fake dropped
    resumed_after: float | None = None  # seconds until the fake counted the RESUME
    identified: int = 0  # IDENTIFYs meanwhile (a new session instead of a RESUME)
    dropped_at: float = 0.0  # time.monotonic(), the clock the fakes' records use too
    job: int = -1  # the job sent while the gateway was down
    #: True: the fake had not seen the RESUME yet once that job was created (it had to wait
    #: for it); None: the RESUME may have come first.
    job_waited: bool | None = None


@dataclass
class Outcome:
    """What one sent /imagine became."""

    job: Planned
    id: str
    record: dict[str, Any]
    reply: dict[str, Any]
    kind: str = ""  # image, error, refused, other, lost, unanswered
    detail: str = ""
    failures: list[dict[str, Any]] = field(default_factory=list)


def guild_count(jobs: int, users: int, minutes: float) -> int:
    per_minute = jobs / max(minutes, 1.0)  # jobs in the busiest minute, about
    return max(1, math.ceil(users / USERS_PER_GUILD), math.ceil(per_minute / GUILD_JOBS_PER_MINUTE))


def plan_jobs(jobs: int, users: int, seconds: float, rng: random.Random) -> list[Planned]:
    """The jobs in sending order; user ``u`` sends ``jobs // users`` (+1 for the first ones)."""
    guilds = guild_count(jobs, users, seconds / 60)
    moments: list[tuple[float, int]] = []
    for user in range(users):
        count = jobs // users + (1 if user < jobs % users else 0)
        if count == 0:
            continue
        slot = seconds / count
        moments += [((k + rng.uniform(0.1, 0.9)) * slot, user) for k in range(count)]
    moments.sort()
    return [
        Planned(
            index=i,
            at=at,
            user=user,
            guild=user % guilds,
            prompt=f"soak {i}: {rng.choice(SUBJECTS)}",
            model=MODELS[i % len(MODELS)],
            seed=rng.randrange(SEEDS),
        )
        for i, (at, user) in enumerate(moments)
    ]


def drop_jobs(jobs: list[Planned], drops: int, seconds: float) -> list[Planned]:
    """The job nearest each of ``drops`` evenly spaced moments (1/3 and 2/3 for two): the
    gateway is dropped there, and that job sent while it is down."""
    chosen: list[Planned] = []
    for i in range(drops):
        moment = seconds * (i + 1) / (drops + 1)
        free = [job for job in jobs if job not in chosen]
        if free:
            chosen.append(min(free, key=lambda job: abs(job.at - moment)))
    return sorted(chosen, key=lambda job: job.at)


def classify(outcome: Outcome) -> None:
    """Set ``kind`` and ``detail`` from the interaction's record and reply."""
    record, reply = outcome.record, outcome.reply
    original = reply.get("original")
    callback = record.get("callback_type")
    if callback is None:
        outcome.kind = "unanswered"
        outcome.detail = f"errors {record['errors']}" if record["errors"] else "no callback"
        return
    if callback == 4:
        outcome.kind = "refused"
        outcome.detail = original["content"] if original else ""
        return
    if original is None or original["deleted"]:
        outcome.kind = "lost"
        outcome.detail = "the reply is gone"
        return
    titles = [e.get("title") or "" for e in original["embeds"]]
    retry = any((b.get("custom_id") or "").startswith(RETRY_PREFIX) for b in original["buttons"])
    if original["attachments"] and original["embeds"]:
        outcome.kind = "image"
    elif ERROR_TITLE in titles and retry:
        outcome.kind = "error"
        embed = original["embeds"][titles.index(ERROR_TITLE)]
        outcome.detail = (embed.get("description") or "").split("\n")[0]
    elif original["embeds"] or original["content"].startswith("Cancelled"):
        outcome.kind = "other"
        outcome.detail = f"titles {titles}, content {original['content'][:120]!r}"
    else:
        outcome.kind = "lost"
        outcome.detail = f"still shows {original['content'][:160]!r}"


async def send_all(
    control: DiscordControl,
    jobs: list[Planned],
    specs: list[dict[str, Any]],
    t0: float,
    ids: dict[int, str],
    skip: set[int],
) -> float:
    """Send each job at its moment (but those in ``skip``), filling ``ids`` (job index ->
    interaction id); the worst lateness in seconds."""

    async def send(index: int) -> None:
        (sent,) = await control.slash([specs[index]])
        ids[index] = sent["id"]

    tasks: list[asyncio.Task[None]] = []
    late = 0.0
    for job in jobs:
        if job.index in skip:
            continue
        delay = t0 + job.at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(late, time.monotonic() - (t0 + job.at))
        tasks.append(asyncio.create_task(send(job.index)))
    await asyncio.gather(*tasks)
    return late


async def drop_all(
    control: DiscordControl,
    at_jobs: list[Planned],
    specs: list[dict[str, Any]],
    t0: float,
    ids: dict[int, str],
    drops: list[Drop],
) -> None:
    """At each of ``at_jobs``' moments: drop the gateway, send that job at once (so it is
    created while the bot is disconnected and must come with the RESUME), and wait (up to
    30 s) for the fake to see the RESUME."""
    for i, job in enumerate(at_jobs):
        delay = t0 + job.at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        code = None if i % 2 == 0 else 4000
        before = await control.drop_gateway(code)
        dropped_at = time.monotonic()
        (sent,) = await control.slash([specs[job.index]])
        ids[job.index] = sent["id"]
        drop = Drop(code, dropped_at - t0, before["dropped"], dropped_at=dropped_at, job=job.index)
        drops.append(drop)
        if (await control.stats())["resumes"] == before["resumes"]:
            drop.job_waited = True
        while time.monotonic() - dropped_at < 30:
            stats = await control.stats()
            if stats["resumes"] > before["resumes"] or stats["identifies"] > before["identifies"]:
                drop.identified = stats["identifies"] - before["identifies"]
                if stats["resumes"] > before["resumes"]:
                    drop.resumed_after = time.monotonic() - dropped_at
                break
            await asyncio.sleep(0.02)


async def report_progress(bot: Any, jobs: list[Planned], t0: float, every: float = 15.0) -> None:
    """A line on stderr every ``every`` seconds: the bot's queue while the soak runs."""
    while True:
        await asyncio.sleep(every)
        elapsed = time.monotonic() - t0
        sent = sum(1 for j in jobs if j.at <= elapsed)
        scheduler = bot.scheduler
        print(
            f"  t={elapsed:5.0f}s sent {sent}/{len(jobs)}, running {scheduler.running}, "
            f"waiting {scheduler.waiting}, active jobs {len(bot.runner.active)}, "
            f"RSS peak {peak_rss_mb():.0f} MB",
            file=sys.stderr,
            flush=True,
        )


def job_states(database: Path) -> dict[str, int]:
    """The job log's states, read from the SQLite file once the bot has closed."""
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())


@dataclass
class Run:
    args: argparse.Namespace
    jobs: list[Planned]
    guilds: int
    outcomes: list[Outcome]
    drops: list[Drop]
    stats: dict[str, Any]
    space: dict[str, Any]
    timed_out: bool
    peak_rss: float
    cpu: float
    wall: float
    run_wall: float
    send_late: float
    fake_cpu: dict[str, float]
    states: dict[str, int]
    active_left: int
    logs: list[logging.LogRecord]
    concurrency: int = 0


async def soak(args: argparse.Namespace, logs: LogCounter) -> Run:
    rng = random.Random(args.seed)
    seconds = args.minutes * 60
    jobs = plan_jobs(args.jobs, args.users, seconds, rng)
    n_guilds = guild_count(args.jobs, args.users, args.minutes)
    space_args = [
        "--port", "0", "--delay", str(args.delay),
        "--failure-rate", str(args.failure_rate), "--failure-seed", str(args.seed),
    ]  # fmt: skip
    started = time.monotonic()
    async with (
        fake_process("tests.fakes.space", *space_args) as space,
        fake_process("tests.fakes.discord_server", "--port", "0") as fake,
        aiohttp.ClientSession() as http,
    ):
        control = DiscordControl(http, fake["control"])
        guilds = await control.guilds([f"soak {i}" for i in range(n_guilds)])
        users = await control.users(
            [
                {"name": f"user{u}", "guild_ids": [guilds[u % n_guilds]["id"]]}
                for u in range(args.users)
            ]
        )
        specs = [
            {
                "name": "imagine",
                "options": {"prompt": job.prompt, "model": job.model, "seed": job.seed},
                "user_id": users[job.user]["id"],
                "guild_id": guilds[job.guild]["id"],
            }
            for job in jobs
        ]
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            backends = Path(tmp) / "seed-backends.toml"
            backends.write_text(SEED_BACKENDS_ONLY)
            database = Path(tmp) / "imagine.db"
            env = {
                **space["env"],
                "DISCORD_TOKEN": fake["token"],
                "DISCORD_API_BASE_URL": fake["rest_base"],
                "DATABASE_URL": f"sqlite:///{database}",
                "IMAGINE_BACKENDS": str(backends),
                "LOG_LEVEL": "WARNING",
            }
            settings = Settings.from_env(env)
            pids = {"fake Discord": fake["pid"], "fake Space": space["pid"]}
            fake_cpu0 = {name: process_cpu(pid) for name, pid in pids.items()}
            gc.collect()
            reset_peak_rss()
            cpu0 = time.process_time()
            async with running_bot(settings) as bot:
                logs.records.clear()
                t0 = time.monotonic()
                drops: list[Drop] = []
                ids: dict[int, str] = {}
                at_jobs = drop_jobs(jobs, args.drops, seconds)
                dropper = asyncio.create_task(drop_all(control, at_jobs, specs, t0, ids, drops))
                progress = asyncio.create_task(report_progress(bot, jobs, t0))
                try:
                    skip = {job.index for job in at_jobs}
                    send_late = await send_all(control, jobs, specs, t0, ids, skip)
                    await dropper
                    order = [ids[job.index] for job in jobs]
                    print(
                        f"  all {len(order)} sent; waiting for every job to end...",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = await control.interactions(order, wait=args.drain_timeout)
                    run_wall = time.monotonic() - t0
                    # The fake shows every ending; give the bot a moment to finish its own
                    # bookkeeping (the job log is written after the reply is edited).
                    await bot.runner.wait_idle(10)
                    active_left = len(bot.runner.active)
                finally:
                    progress.cancel()
                    dropper.cancel()
                replies = await control.replies(order)
                stats = await control.stats()
                records = await space_records(http, space["url"])
                fake_cpu = {name: process_cpu(pid) - fake_cpu0[name] for name, pid in pids.items()}
            cpu = time.process_time() - cpu0
            peak = peak_rss_mb()
            states = job_states(database)
    wall = time.monotonic() - started
    outcomes = [
        Outcome(job, ident, record, reply)
        for job, ident, record, reply in zip(
            jobs, order, result["interactions"], replies, strict=True
        )
    ]
    by_prompt = {o.job.prompt: o for o in outcomes}
    for failure in records["failures"]:
        owner = by_prompt.get(failure["prompt"])
        if owner is not None:
            owner.failures.append(failure)
    for outcome in outcomes:
        classify(outcome)
    return Run(
        args, jobs, n_guilds, outcomes, drops, stats, records, result["timed_out"], peak, cpu,
        wall, run_wall, send_late, fake_cpu, states, active_left, list(logs.records),
        settings.max_concurrent_jobs,
    )  # fmt: skip


def grouped(texts: list[str], limit: int = 8) -> list[str]:
    lines = [f"      {n:4d} x {text}" for text, n in Counter(texts).most_common(limit)]
    rest = len(Counter(texts)) - limit
    if rest > 0:
        lines.append(f"      ... and {rest} other text(s)")
    return lines


def report(run: Run, command: str) -> int:
    """Print the run's figures; the exit status (1 if anything was lost or a 429 was sent)."""
    args, outcomes, stats = run.args, run.outcomes, run.stats
    kinds = Counter(o.kind for o in outcomes)
    of = defaultdict(list)
    for o in outcomes:
        of[o.kind].append(o)
    accepted = [o for o in outcomes if o.record["callback_type"] == 5]
    other_callbacks = [o for o in outcomes if o.record["callback_type"] not in (None, 4, 5)]
    lost = of["lost"] + of["unanswered"]
    out: list[str] = []
    p = out.append
    p(
        f"soak: {args.jobs} /imagine from {args.users} users in {run.guilds} servers over "
        f"{args.minutes:g} min; models {' / '.join(MODELS)} alternating; {args.delay:g}s "
        f"generations; failure rate {args.failure_rate:g}; {args.drops} gateway drop(s); "
        f"MAX_CONCURRENT_JOBS {run.concurrency} (the default); seed {args.seed}"
    )
    p("")
    p("jobs")
    p(f"  sent                      {len(outcomes)}")
    p(f"  accepted (deferred, 5)    {len(accepted)}")
    p(f"  refused (ephemeral, 4)    {kinds['refused']}")
    out.extend(grouped([o.detail for o in of["refused"]]))
    if other_callbacks:
        types = Counter(o.record["callback_type"] for o in other_callbacks)
        p(f"  other callback types      {dict(types)}")
    p(f"  never answered            {kinds['unanswered']}")
    for o in of["unanswered"][:10]:
        p(f"      {o.job.prompt!r}: {o.detail}")
    p(f"  finished with an image    {kinds['image']}")
    p(f"  finished with an error    {kinds['error']}   (embed {ERROR_TITLE!r} + Retry)")
    out.extend(grouped([o.detail for o in of["error"]]))
    if of["other"]:
        p(f"  ended some other way      {kinds['other']}")
        for o in of["other"][:10]:
            p(f"      {o.job.prompt!r}: {o.detail}")
    lost_accepted = of["lost"]
    p(f"  LOST (accepted, no ending) {len(lost_accepted)}")
    for o in lost_accepted[:20]:
        p(f"      {o.id} {o.job.model} {o.job.prompt!r}: {o.detail}")
    if len(lost_accepted) > 20:
        p(f"      ... and {len(lost_accepted) - 20} more")
    if run.timed_out:
        p(f"  (the wait for every ending timed out after {args.drain_timeout:g}s)")
    if run.active_left:
        p(f"  jobs the bot still held as active 10 s after the last ending: {run.active_left}")
    p(f"  job log (SQLite) states   {dict(sorted(run.states.items()))}")

    acks = [o.record["ack_latency"] * 1000 for o in outcomes if o.record["ack_latency"] is not None]
    late_acks = sum(1 for o in outcomes for _, code in o.record["errors"] if code == 10062)
    edits = [len(o.record["edits"]) for o in accepted]
    p("")
    p("Discord")
    p(f"  429s sent by the fake     {stats['count_429']}")
    p(
        f"  ack ms p50/p99/max        {percentile(acks, 50):.1f} / {percentile(acks, 99):.1f} / "
        f"{max(acks, default=math.nan):.1f}   (answers after the 3 s deadline: {late_acks})"
    )
    if edits:
        p(f"  edits per accepted job    mean {sum(edits) / len(edits):.2f}, max {max(edits)}")
    p(
        f"  gateway                   {stats['resumes']} RESUME(s), {stats['identifies']} "
        f"IDENTIFY(s), {stats['gateway_connects']} connection(s) for {args.drops} drop(s)"
    )
    for drop in run.drops:
        how = "TCP abort" if drop.code is None else f"close {drop.code}"
        resumed = (
            f"RESUMEd after {drop.resumed_after * 1000:.0f} ms"
            if drop.resumed_after is not None
            else "no RESUME within 30 s"
        )
        again = f", {drop.identified} new IDENTIFY" if drop.identified else ""
        p(f"    at {drop.at:5.1f}s: {how} of {drop.connections} connection(s), {resumed}{again}")
        sent = next((o for o in outcomes if o.job.index == drop.job), None)
        if sent is not None:
            record = sent.record
            created = (record["created_at"] - drop.dropped_at) * 1000
            waited = (
                f"delivered {(record['delivered_at'] - record['created_at']) * 1000:.0f} ms "
                "after its creation"
                if record["delivered_at"] is not None
                else "never delivered"
            )
            if drop.job_waited:
                waited = f"created before the RESUME, {waited}"
            ack = record["ack_latency"]
            p(
                f"      a job sent {created:.0f} ms after the drop: {waited}, acked in "
                f"{ack * 1000:.0f} ms, ended: {sent.kind}"
                if ack is not None
                else f"      a job sent {created:.0f} ms after the drop: {waited}, never acked"
            )
    if stats["internal_errors"] or stats["unknown_routes"]:
        p(f"  fake internal errors      {stats['internal_errors'][:5]}")
        p(f"  unknown routes            {stats['unknown_routes'][:5]}")

    failures = run.space["failures"]
    failed_jobs = [o for o in outcomes if o.failures]
    p("")
    p("fake Space")
    p(
        f"  generations completed     {len(run.space['completions'])}; failures injected "
        f"{len(failures)} in {len(failed_jobs)} job(s)"
    )
    table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for o in failed_jobs:
        first = o.failures[0]
        table[(first["kind"], o.job.model)][o.kind] += 1
    p("    first failure              model      jobs  -> image (retried)  -> error  other")
    for (kind, model), counts in sorted(table.items()):
        others = sum(n for k, n in counts.items() if k not in ("image", "error"))
        p(
            f"    {kind:26} {model:9} {sum(counts.values()):5}  {counts['image']:17}  "
            f"{counts['error']:7}  {others:5}"
        )
    twice = [o for o in failed_jobs if len(o.failures) > 1]
    if twice:
        p(f"    jobs whose retry failed too: {len(twice)}")
        for o in twice[:10]:
            steps = " -> ".join(f"{f['kind']} (attempt {f['attempt']})" for f in o.failures)
            p(f"      {o.job.model} {o.job.prompt!r}: {steps}: {o.kind}")
    unexplained = [o for o in of["error"] if not o.failures]
    p(f"  errors without an injected failure: {len(unexplained)}")
    for o in unexplained[:10]:
        p(f"      {o.job.model} {o.job.prompt!r}: {o.detail}")
    images = Counter(c["prompt"] for c in run.space["completions"])
    extra = sum(n - 1 for n in images.values() if n > 1)
    if extra:
        p(f"  prompts generated more than once: {extra} extra generation(s)")

    p("")
    p("bot process (this one)")
    p(f"  peak RSS                  {run.peak_rss:.0f} MB")
    p(f"  CPU                       {run.cpu:.1f} s (bot + this driver's control calls)")
    fakes = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in run.fake_cpu.items())
    p(f"  fakes' CPU                {fakes}")
    p(
        f"  wall                      {run.wall:.1f} s in all; {run.run_wall:.1f} s from the first "
        f"send to the last ending (sends at most {run.send_late * 1000:.0f} ms late)"
    )
    if run.logs:
        p(f"  bot log WARNING+          {len(run.logs)}")
        out.extend(grouped([f"{r.levelname} {r.name}: {r.getMessage()[:150]}" for r in run.logs]))
        if any("Can't keep up" in r.getMessage() for r in run.logs):
            p(
                "      (\"Can't keep up\": discord.py's heartbeat thread records the send after "
                "the loop has already read the fake's instant ACK; the figure is the heartbeat "
                "interval, not a lag)"
            )
    p("")
    p(command)

    bad = []
    if lost:
        bad.append(f"{len(lost)} job(s) lost")
    if stats["count_429"]:
        bad.append(f"{stats['count_429']} 429(s)")
    p("")
    p(f"RESULT: {'FAIL: ' + ', '.join(bad) if bad else 'ok: nothing lost, no 429'}")
    print("\n".join(out))
    return 1 if bad else 0


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="/imagine commands to send")
    parser.add_argument("--users", type=int, default=100, help="distinct users sending them")
    parser.add_argument("--minutes", type=float, default=3.0, help="spread over this long")
    parser.add_argument(
        "--failure-rate", type=float, default=0.05, help="share of generations the Space fails"
    )
    parser.add_argument("--drops", type=int, default=2, help="gateway drops during the run")
    parser.add_argument("--delay", type=float, default=1.0, help="generation seconds per job")
    parser.add_argument("--seed", type=int, default=1, help="seed of the load and the faults")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=240.0,
        help="seconds to wait, after the last send, for every job to end",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.users < 1 or args.minutes <= 0 or args.drops < 0:
        parser.error("--jobs and --users must be >= 1, --minutes > 0, --drops >= 0")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    command = " ".join(
        [".venv/bin/python -m bench.soak", *(argv if argv is not None else sys.argv[1:])]
    )
    print(f"{command}: running (progress below)...", file=sys.stderr, flush=True)
    run = await soak(args, logs)
    return report(run, command)


if __name__ == "__main__":
    from bot import loop_factory  # the bot's own event loop (uvloop where installed)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        sys.exit(runner.run(main()))
