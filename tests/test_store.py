"""The store: schema creation and migration, settings per server, the job log.

Each test taking ``database_url`` runs on SQLite and on PostgreSQL (tests/postgres.py).
"""

import asyncio

import sqlalchemy as sa

from imagine.store import MIGRATIONS, Store, async_url


def test_urls_map_to_async_drivers():
    assert async_url("sqlite:///data/x.db") == "sqlite+aiosqlite:///data/x.db"
    assert async_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"


async def test_settings_per_server_survive_reopening(database_url):
    url = database_url
    store = await Store.open(url)
    await store.update_guild(1, default_model="flux-dev", allowed_models=("flux", "flux-dev"))
    await store.update_guild(1, cooldown_seconds=30, channels=(111, 222))
    await store.update_guild(2, max_size=512)
    await store.close()
    store = await Store.open(url)
    one, two, three = await store.guild(1), await store.guild(2), await store.guild(3)
    assert (one.default_model, one.allowed_models) == ("flux-dev", ("flux", "flux-dev"))
    assert (one.cooldown_seconds, one.channels, one.max_size) == (30, (111, 222), None)
    assert (two.max_size, two.default_model) == (512, None)
    assert three.allowed_models is None and three.channels == ()
    await store.close()


async def test_migrate_is_idempotent_and_versioned(database_url):
    store = await Store.open(database_url)
    assert await store.migrate() == len(MIGRATIONS)
    assert await store.get_meta("schema_version") == str(len(MIGRATIONS))
    async with store.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    assert {"guild_settings", "jobs", "meta"} <= set(tables)
    await store.close()


async def test_job_log(database_url):
    store = await Store.open(database_url)
    job = await store.create_job(
        user_id=5, guild_id=None, channel_id=9, source="dm", prompt="p", model="flux",
        width=512, height=512, seed=None,
    )  # fmt: skip
    await store.update_job(job.id, state="running")
    assert [j.id for j in await store.jobs_in_states(["running"])] == [job.id]
    await store.update_job(job.id, state="done", result_seed=7)
    loaded = await store.job(job.id)
    assert (loaded.state, loaded.result_seed, loaded.prompt) == ("done", 7, "p")
    assert await store.count_jobs(state="done") == 1
    await store.close()


async def test_the_writer_runs_a_burst_of_one_shape_as_one_statement_in_order(database_url):
    """A burst of inserts and updates (a herd of jobs starting and ending) goes through the
    writer as executemany runs: every insert gets its own id, in order; updates of one job
    keep their order; a bad write in the batch sinks only itself."""
    from imagine.store import jobs
    from imagine.store.database import Statement

    store = await Store.open(database_url)
    try:
        values = dict(
            user_id=7, guild_id=1, channel_id=2, source="slash", model="flux", width=8,
            height=8, seed=None,
        )  # fmt: skip
        made = await asyncio.gather(
            *(store.create_job(prompt=f"job {n}", **values) for n in range(40))
        )
        ids = [job.id for job in made]
        assert len(set(ids)) == 40 and ids == sorted(ids)
        async with store.engine.connect() as conn:
            prompts = dict((await conn.execute(sa.select(jobs.c.id, jobs.c.prompt))).all())
        assert [prompts[i] for i in ids] == [f"job {n}" for n in range(40)]

        bad = Statement(jobs.insert(), {"user_id": 1})  # NOT NULL columns missing
        writes = []
        for job_id in ids:
            writes.append(store.update_job(job_id, state="running", started_at=1.0))
            writes.append(store.update_job(job_id, state="done", finished_at=2.0))
        writes.append(store._write(bad))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert all(o is None for o in outcomes[:-1])
        assert isinstance(outcomes[-1], Exception)
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(jobs.c.state, jobs.c.finished_at))).all()
        assert {tuple(r) for r in rows} == {("done", 2.0)}
    finally:
        await store.close()
