"""Daily budgets in the store: charges that never pass a limit (however many connections or
processes charge at once), a job's charge given back once when it ends without an image, to
the day it was taken from, and the rows the usage report reads.

Each test taking ``database_url`` runs on SQLite and on PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from imagine.store import Store, daily_usage, utc_day
from tests.processes import ROOT

GUILD, OTHER_GUILD, ALICE, BOB = 10, 20, 1, 2
NOON = datetime(2026, 3, 14, 12, 0, tzinfo=UTC).timestamp()
DAY = "2026-03-14"


async def _job(store: Store, *, charged: int, created_at: float, guild_id: int | None = GUILD):
    return await store.create_job(
        user_id=ALICE, guild_id=guild_id, channel_id=3, source="slash", prompt="p",
        model="flux", width=512, height=512, seed=None, charged=charged, created_at=created_at,
    )  # fmt: skip


async def test_a_charge_is_taken_while_it_fits_and_refused_past_the_limit(database_url):
    store = await Store.open(database_url)
    try:
        assert await store.charge_usage(GUILD, ALICE, DAY, 2, 3) == 2
        assert await store.charge_usage(GUILD, ALICE, DAY, 2, 3) is None  # 4 > 3: nothing
        assert await store.used_on(GUILD, ALICE, DAY) == 2
        assert await store.charge_usage(GUILD, ALICE, DAY, 1, 3) == 3  # exactly the limit
        assert await store.charge_usage(GUILD, ALICE, DAY, 1, 3) is None
        assert await store.charge_usage(GUILD, ALICE, DAY, 4, 3) is None  # more than a day holds
        # Each member, server and day has its own count.
        assert await store.charge_usage(GUILD, BOB, DAY, 3, 3) == 3
        assert await store.charge_usage(OTHER_GUILD, ALICE, DAY, 1, 3) == 1
        assert await store.charge_usage(GUILD, ALICE, "2026-03-15", 1, 3) == 1
        assert await store.used_on(GUILD, ALICE, DAY) == 3
    finally:
        await store.close()


async def test_concurrent_charges_on_separate_connections_never_pass_the_limit(database_url):
    """Two stores (two connection pools, as two processes have), 24 charges of one image at
    once against a limit of 7: exactly 7 are taken."""
    stores = [await Store.open(database_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(stores[i % 2].charge_usage(GUILD, ALICE, DAY, 1, 7) for i in range(24))
        )
        assert sorted(r for r in results if r is not None) == list(range(1, 8))
        assert await stores[0].used_on(GUILD, ALICE, DAY) == 7
    finally:
        for store in stores:
            await store.close()


CHARGER = """
import asyncio, sys, time
from imagine.store import Store

async def main(url: str, at: float) -> None:
    store = await Store.open(url)
    await asyncio.sleep(max(0.0, at - time.time()))  # both processes start charging at once
    charges = (store.charge_usage(10, 1, "2026-03-14", 1, 7) for _ in range(12))
    taken = await asyncio.gather(*charges)
    await store.close()
    print(sum(t is not None for t in taken))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


async def test_charges_from_two_processes_never_pass_the_limit(postgres_url):
    """Two real processes on PostgreSQL, 12 charges each at the same instant, limit 7."""
    store = await Store.open(postgres_url)  # the schema, made once
    try:
        at = str(time.time() + 3)
        pipe = asyncio.subprocess.PIPE
        args = (sys.executable, "-c", CHARGER, postgres_url, at)
        charging = [
            await asyncio.create_subprocess_exec(*args, cwd=ROOT, stdout=pipe, stderr=pipe)
            for _ in range(2)
        ]
        outputs = [await asyncio.wait_for(p.communicate(), 60) for p in charging]
        taken = [int(out.decode().strip()) for out, _err in outputs]
        assert sum(taken) == 7, outputs
        assert await store.used_on(GUILD, ALICE, DAY) == 7
    finally:
        await store.close()


async def test_an_ending_without_an_image_gives_the_charge_back_once(database_url):
    store = await Store.open(database_url)
    try:
        assert await store.charge_usage(GUILD, ALICE, DAY, 3, 10) == 3
        job = await _job(store, charged=2, created_at=NOON)
        await store.update_job(job.id, state="running")  # not an ending: nothing given
        assert await store.used_on(GUILD, ALICE, DAY) == 3
        await store.update_job(job.id, state="failed")
        assert await store.used_on(GUILD, ALICE, DAY) == 1
        assert (await store.job(job.id)).charged == 0
        # A second ending (a reaper, recovery, another process) finds nothing to give.
        await store.update_job(job.id, state="interrupted")
        await store.update_job(job.id, state="cancelled")
        assert await store.used_on(GUILD, ALICE, DAY) == 1
    finally:
        await store.close()


async def test_a_delivered_job_keeps_its_charge(database_url):
    store = await Store.open(database_url)
    try:
        await store.charge_usage(GUILD, ALICE, DAY, 4, 10)
        job = await _job(store, charged=4, created_at=NOON)
        await store.update_job(job.id, state="done")
        assert await store.used_on(GUILD, ALICE, DAY) == 4
        assert (await store.job(job.id)).charged == 4
    finally:
        await store.close()


async def test_a_charge_goes_back_to_the_day_it_was_taken_from(database_url):
    """Charged at 23:59:59 UTC, failed after midnight: the first day gets it back."""
    store = await Store.open(database_url)
    try:
        late = datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC).timestamp()
        assert utc_day(late) == DAY and utc_day(late + 2) == "2026-03-15"
        await store.charge_usage(GUILD, ALICE, DAY, 2, 10)
        await store.charge_usage(GUILD, ALICE, "2026-03-15", 1, 10)
        job = await _job(store, charged=2, created_at=late)
        await store.update_job(job.id, state="failed", finished_at=late + 2)
        assert await store.used_on(GUILD, ALICE, DAY) == 0
        assert await store.used_on(GUILD, ALICE, "2026-03-15") == 1
    finally:
        await store.close()


async def test_endings_racing_in_two_stores_give_back_once(database_url):
    stores = [await Store.open(database_url) for _ in range(2)]
    try:
        await stores[0].charge_usage(GUILD, ALICE, DAY, 5, 10)
        job = await _job(stores[0], charged=2, created_at=NOON)
        await asyncio.gather(*(stores[i % 2].update_job(job.id, state="failed") for i in range(6)))
        assert await stores[0].used_on(GUILD, ALICE, DAY) == 3
    finally:
        for store in stores:
            await store.close()


async def test_a_usage_count_never_goes_below_zero(database_url):
    store = await Store.open(database_url)
    try:
        await store.charge_usage(GUILD, ALICE, DAY, 1, 10)
        await store.give_back_usage(GUILD, ALICE, DAY, 3)
        assert await store.used_on(GUILD, ALICE, DAY) == 0
    finally:
        await store.close()


async def test_the_report_reads_one_servers_jobs_of_the_week(database_url):
    store = await Store.open(database_url)
    try:
        mine = await _job(store, charged=0, created_at=NOON)
        await _job(store, charged=0, created_at=NOON, guild_id=OTHER_GUILD)
        await _job(store, charged=0, created_at=NOON - 8 * 86400)  # too old
        await store.update_job(mine.id, state="done", kudos=12.5)
        (job,) = await store.guild_jobs_since(GUILD, NOON - 7 * 86400)
        assert (job.user_id, job.state, job.kudos) == (ALICE, "done", 12.5)
    finally:
        await store.close()


async def test_old_days_are_purged(database_url):
    store = await Store.open(database_url)
    try:
        for day in ("2026-03-01", "2026-03-13", DAY):
            await store.charge_usage(GUILD, ALICE, day, 1, 10)
        assert await store.purge_usage("2026-03-13") == 1
        async with store.engine.connect() as conn:
            days = sorted(await conn.scalars(sa.select(daily_usage.c.day)))
        assert days == ["2026-03-13", DAY]
    finally:
        await store.close()
