"""Data defects from the issue: lost settings changes (7), migrations (18), the job log's
retention and its interaction tokens (19).

The store-level tests run on SQLite and on a real PostgreSQL server (``database_url``).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

import imagine.store as store_module
import imagine.store.migrations as migrations_module
import imagine.store.retention as retention_module
from imagine.store import MIGRATIONS, GuildSettings, Store, async_url
from tests.harness import MANAGE_GUILD, running_bot

# -- item 7: settings changes are atomic ---------------------------------------------------


async def _two_admins(h) -> list[dict[str, Any]]:
    second = h.discord.add_user("admin2")
    h.discord.add_member(h.guild.id, second, permissions=MANAGE_GUILD)
    return [h.admin, second]


async def _config(h, user, sub: str, options: dict[str, Any]):
    return await h.discord.send_slash(
        "imagine-config", options, subcommand=sub, user=user, guild_id=h.guild.id,
        permissions=MANAGE_GUILD,
    )  # fmt: skip


async def _shown(h) -> str:
    shown = await _config(h, h.admin, "show", {})
    return (await shown.wait_callback(3))["data"]["embeds"][0]["description"]


async def test_item07_two_admins_adding_channels_at_once_both_kept(tmp_path):
    async with running_bot(tmp_path) as h:
        admins = await _two_admins(h)
        art = h.discord.add_channel(h.guild.id, "art")
        memes = h.discord.add_channel(h.guild.id, "memes")
        sent = await asyncio.gather(
            _config(h, admins[0], "channels", {"action": "add", "channel": art}),
            _config(h, admins[1], "channels", {"action": "add", "channel": memes}),
        )
        for interaction in sent:
            assert "now works in" in await h.ephemeral(interaction)
        assert set((await h.bot.store.guild(h.guild.id)).channels) == {art, memes}
        text = await _shown(h)
        assert f"<#{art}>" in text and f"<#{memes}>" in text, text
        await h.stop_bot()
        await h.start_bot()
        assert set((await h.bot.store.guild(h.guild.id)).channels) == {art, memes}


async def test_item07_two_admins_adding_blocked_words_at_once_both_kept(tmp_path):
    async with running_bot(tmp_path) as h:
        admins = await _two_admins(h)
        sent = await asyncio.gather(
            _config(h, admins[0], "blocked-words", {"action": "add", "words": "gore"}),
            _config(h, admins[1], "blocked-words", {"action": "add", "words": "spoilers, tax"}),
        )
        for interaction in sent:
            assert re.search(r"\d blocked words? now", await h.ephemeral(interaction))
        words = (await h.bot.store.guild(h.guild.id)).blocked_words
        assert sorted(words) == ["gore", "spoilers", "tax"]
        assert "**Blocked words:** 3" in await _shown(h)
        await h.stop_bot()
        await h.start_bot()
        assert sorted((await h.bot.store.guild(h.guild.id)).blocked_words) == sorted(words)


async def test_item07_default_model_and_allowed_models_at_once_stay_consistent(tmp_path):
    """`model` checks the allowed list and `models` fixes the default, both on the fresh value:
    the outcome is one of the two orders, and what each admin was told is true."""
    async with running_bot(tmp_path) as h:
        admins = await _two_admins(h)
        sent = await asyncio.gather(
            _config(h, admins[0], "model", {"model": "flux-dev"}),
            _config(h, admins[1], "models", {"models": "flux"}),
        )
        told_model, told_models = [await h.ephemeral(i) for i in sent]
        settings = await h.bot.store.guild(h.guild.id)
        assert settings.allowed_models == ("flux",)
        if "is now **flux-dev**" in told_model:  # model first, then models moved the default
            assert "The default model is now **flux**" in told_models
            assert settings.default_model == "flux"
        else:  # models first, then model was refused
            assert "not among the models" in told_model
            assert settings.default_model is None


async def test_item07_blocked_words_over_the_limit_change_nothing(tmp_path):
    async with running_bot(tmp_path) as h:
        words = ", ".join(f"w{i}" for i in range(199))
        await h.ephemeral(
            await _config(h, h.admin, "blocked-words", {"action": "add", "words": words})
        )
        answer = await h.ephemeral(
            await _config(h, h.admin, "blocked-words", {"action": "add", "words": "x, y"})
        )
        assert "nothing changed" in answer
        assert len((await h.bot.store.guild(h.guild.id)).blocked_words) == 199


async def test_item07_first_writes_from_two_processes_both_kept(database_url):
    """Two stores (two processes) on one database, each first to write a new server's row."""
    first, second = await Store.open(database_url), await Store.open(database_url)
    try:
        guilds = range(100, 110)
        await asyncio.gather(
            *(first.update_guild(g, channels=(g,)) for g in guilds),
            *(second.update_guild(g, blocked_words=(f"w{g}",)) for g in guilds),
        )
    finally:
        await first.close()
        await second.close()
    store = await Store.open(database_url)
    try:
        for g in guilds:
            settings = await store.guild(g)
            assert (settings.channels, settings.blocked_words) == ((g,), (f"w{g}",)), settings
    finally:
        await store.close()


async def test_item07_list_changes_from_two_processes_all_kept(database_url):
    """Appending to one list from two stores at once: every change is applied to the fresh row."""
    first, second = await Store.open(database_url), await Store.open(database_url)

    def adding(channel: int):
        return lambda s: replace(s, channels=(*s.channels, channel))

    try:
        stores = (first, second)
        await asyncio.gather(*(stores[c % 2].change_guild(7, adding(c)) for c in range(20)))
    finally:
        await first.close()
        await second.close()
    store = await Store.open(database_url)
    try:
        assert sorted((await store.guild(7)).channels) == list(range(20))
    finally:
        await store.close()


async def test_item07_refused_change_changes_nothing(database_url):
    store = await Store.open(database_url)

    class Refused(Exception):
        pass

    def refuse(settings: GuildSettings) -> GuildSettings:
        raise Refused("no")

    try:
        with pytest.raises(Refused):
            await store.change_guild(1, refuse)  # a new server: no row may appear
        await store.update_guild(2, cooldown_seconds=5)
        with pytest.raises(Refused):
            await store.change_guild(2, lambda s: refuse(replace(s, cooldown_seconds=9)))
        assert (await store.guild(1)) == GuildSettings(1)
        assert (await store.guild(2)).cooldown_seconds == 5
        async with store.engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("SELECT guild_id, cooldown_seconds FROM guild_settings"))
            ).all()
        assert [tuple(r) for r in rows] == [(2, 5)]
    finally:
        await store.close()


# -- item 18: migrations -------------------------------------------------------------------

V1 = sa.MetaData()
"""The schema as version 1 shipped it: frozen here, never imported from the live metadata."""
sa.Table(
    "guild_settings", V1,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("default_model", sa.String(100)),
    sa.Column("allowed_models", sa.Text),
    sa.Column("cooldown_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("channels", sa.Text),
    sa.Column("max_size", sa.Integer),
    sa.Column("fallback_model", sa.String(100)),
    sa.Column("blocked_words", sa.Text),
    sa.Column("updated_at", sa.Float),
)  # fmt: skip
sa.Table(
    "jobs", V1,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("guild_id", sa.BigInteger),
    sa.Column("channel_id", sa.BigInteger),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("application_id", sa.BigInteger),
    sa.Column("interaction_token", sa.Text),
    sa.Column("token_expires_at", sa.Float),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("result_seed", sa.BigInteger),
    sa.Column("result_model", sa.String(100)),
    sa.Column("result_backend", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Index("ix_jobs_state", "state"),
)  # fmt: skip
sa.Table(
    "meta", V1,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)  # fmt: skip


async def _make_version_1(url: str) -> None:
    """A database as a version-1 bot left it, with a server's settings and a finished job."""
    engine = create_async_engine(async_url(url))
    if url.startswith("sqlite"):
        from pathlib import Path

        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    async with engine.begin() as conn:
        await conn.run_sync(V1.create_all)
        await conn.execute(V1.tables["meta"].insert().values(key="schema_version", value="1"))
        await conn.execute(
            V1.tables["guild_settings"].insert().values(
                guild_id=42, default_model="flux-dev", cooldown_seconds=3, channels='["9"]',
            )
        )  # fmt: skip
        await conn.execute(
            V1.tables["jobs"].insert().values(
                user_id=5, source="slash", prompt="a fern", model="flux", width=512,
                height=512, state="done", created_at=1000.0, finished_at=1010.0,
            )
        )  # fmt: skip
    await engine.dispose()


async def _schema(store: Store) -> dict[str, Any]:
    """Each table's columns (name, type, nullable) and index names, as the database has them."""

    def inspect(conn) -> dict[str, Any]:
        inspector = sa.inspect(conn)
        if conn.dialect.name == "sqlite":  # its reflection skips expression indexes
            listed = "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"
        else:
            listed = "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
        indexes: dict[str, list[str]] = {}
        for table, name in conn.execute(sa.text(listed)):
            indexes.setdefault(table, []).append(name)
        return {
            table: (
                sorted(
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ),
                sorted(indexes.get(table, [])),
            )
            for table in sorted(inspector.get_table_names())
        }

    async with store.engine.connect() as conn:
        return await conn.run_sync(inspect)


@pytest.fixture
def counted_migrations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    monkeypatch.setattr(migrations_module, "MIGRATIONS", list(MIGRATIONS))
    calls: list[int] = []
    _counting_in(migrations_module.MIGRATIONS, calls)
    return calls


def _counting_in(migrations: list, calls: list[int]) -> None:
    for index, migration in enumerate(migrations):
        if migration is None:
            continue

        async def counted(conn: AsyncConnection, _m=migration, _i=index) -> None:
            calls.append(_i + 1)
            await _m(conn)

        migrations[index] = counted


async def test_item18_there_is_a_real_migration():
    assert len(MIGRATIONS) >= 2
    assert all(callable(m) for m in MIGRATIONS[1:])


async def test_item18_fresh_install_is_stamped_newest_without_migrations(
    database_url, counted_migrations
):
    store = await Store.open(database_url)
    try:
        assert await store.get_meta("schema_version") == str(len(MIGRATIONS))
        assert counted_migrations == []
        assert await store.migrate() == len(MIGRATIONS)
        assert counted_migrations == []
        assert "ix_jobs_state_ended_at" in (await _schema(store))["jobs"][1]
    finally:
        await store.close()


async def test_item18_version_1_database_is_upgraded_and_keeps_its_data(
    database_url, counted_migrations
):
    await _make_version_1(database_url)
    store = await Store.open(database_url)
    try:
        assert await store.get_meta("schema_version") == str(len(MIGRATIONS))
        assert counted_migrations == list(range(2, len(MIGRATIONS) + 1))
        assert "ix_jobs_state_ended_at" in (await _schema(store))["jobs"][1]
        settings = await store.guild(42)
        assert (settings.default_model, settings.cooldown_seconds, settings.channels) == (
            "flux-dev", 3, (9,),
        )  # fmt: skip
        job = await store.job(1)
        assert (job.prompt, job.state, job.finished_at) == ("a fern", "done", 1010.0)
    finally:
        await store.close()


async def test_item18_upgraded_and_fresh_schemas_match(database_url, request, tmp_path):
    """Both paths give the same tables, columns and indexes (on the same kind of database)."""
    await _make_version_1(database_url)
    upgraded_store = await Store.open(database_url)
    upgraded = await _schema(upgraded_store)
    await upgraded_store.close()
    assert "ix_jobs_state_ended_at" in upgraded["jobs"][1]
    if database_url.startswith("sqlite"):
        fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        fresh_url = server.create_database()
        request.addfinalizer(lambda: server.drop_database(fresh_url))
    fresh_store = await Store.open(fresh_url)
    try:
        assert await _schema(fresh_store) == upgraded
    finally:
        await fresh_store.close()


async def test_item18_two_processes_upgrading_at_once(database_url, counted_migrations):
    await _make_version_1(database_url)
    stores = await asyncio.gather(Store.open(database_url), Store.open(database_url))
    try:
        assert counted_migrations == list(range(2, len(MIGRATIONS) + 1))  # once, not twice
        assert "ix_jobs_state_ended_at" in (await _schema(stores[0]))["jobs"][1]
        for store in stores:
            assert await store.get_meta("schema_version") == str(len(MIGRATIONS))
            assert (await store.guild(42)).default_model == "flux-dev"
    finally:
        for store in stores:
            await store.close()


async def test_item18_two_processes_creating_a_fresh_database_at_once(
    database_url, counted_migrations
):
    stores = await asyncio.gather(*(Store.open(database_url) for _ in range(3)))
    try:
        assert counted_migrations == []
        assert [await s.get_meta("schema_version") for s in stores] == [str(len(MIGRATIONS))] * 3
    finally:
        for store in stores:
            await store.close()


async def test_item18_newer_schema_than_the_code_is_refused(database_url):
    store = await Store.open(database_url)
    await store.set_meta("schema_version", str(len(MIGRATIONS) + 1))
    await store.close()
    with pytest.raises(RuntimeError, match="newer"):
        await Store.open(database_url)


# -- item 19: retention and tokens ----------------------------------------------------------

NOW = 1_700_000_000.0
DAY = 86400.0


async def _job(store: Store, state: str, created: float, finished: float | None, **extra):
    job = await store.create_job(
        user_id=1, guild_id=None, channel_id=2, source="dm", prompt=state, model="flux",
        width=512, height=512, seed=None, state=state, created_at=created,
        finished_at=finished, **extra,
    )  # fmt: skip
    return job.id


async def test_item19_purge_deletes_only_old_final_jobs(database_url):
    store = await Store.open(database_url)
    try:
        old, recent = NOW - 40 * DAY, NOW - 2 * DAY
        gone = [await _job(store, state, old - DAY, old) for state in store_module.FINAL_STATES]
        gone.append(await _job(store, "interrupted", old, None))  # no finished_at: created_at
        kept = [
            await _job(store, "queued", old, None),  # active, however old
            await _job(store, "running", old, None),
            await _job(store, "done", old, recent),  # finished recently
            await _job(store, "failed", recent, None),
            await _job(store, "cancelled", recent - DAY, recent),
        ]
        assert await store.purge_jobs(NOW - 30 * DAY) == len(gone)
        for job_id in gone:
            assert await store.job(job_id) is None
        for job_id in kept:
            assert await store.job(job_id) is not None
        assert await store.purge_jobs(NOW - 30 * DAY) == 0
    finally:
        await store.close()


async def test_item19_clear_stale_tokens_clears_only_final_or_expired(database_url):
    store = await Store.open(database_url)
    try:
        live = {"interaction_token": "tok-live", "token_expires_at": NOW + 600}
        expired = {"interaction_token": "tok-old", "token_expires_at": NOW - 1}
        cleared = [
            await _job(store, "done", NOW - 60, NOW - 30, **live),  # final: token useless now
            await _job(store, "interrupted", NOW - 60, NOW - 30, **live),
            await _job(store, "running", NOW - 900, None, **expired),  # expired
            await _job(store, "failed", NOW - 900, NOW - 800, **expired),
        ]
        # A token without a recorded expiry lasts 15 minutes from the job's creation.
        cleared.append(await _job(store, "running", NOW - 16 * 60, None, interaction_token="t"))
        kept = [
            await _job(store, "running", NOW - 60, None, **live),
            await _job(store, "queued", NOW - 10, None, **live),
            await _job(store, "queued", NOW - 14 * 60, None, interaction_token="tok-live"),
        ]
        untouched = await _job(store, "done", NOW - 60, NOW - 30)  # never had a token
        assert await store.clear_stale_tokens(NOW) == len(cleared)
        for job_id in cleared:
            job = await store.job(job_id)
            assert job.interaction_token is None and job.state in (
                "done", "interrupted", "running", "failed",
            )  # fmt: skip
        for job_id in kept:
            assert (await store.job(job_id)).interaction_token == "tok-live"
        assert (await store.job(untouched)).interaction_token is None
        assert await store.clear_stale_tokens(NOW) == 0
    finally:
        await store.close()


async def test_item19_purge_goes_in_batches(database_url, monkeypatch):
    monkeypatch.setattr(retention_module, "PURGE_BATCH", 3)
    store = await Store.open(database_url)
    try:
        for _ in range(7):
            await _job(store, "done", NOW - 50 * DAY, NOW - 50 * DAY)
        kept = await _job(store, "done", NOW, NOW)
        assert await store.purge_jobs(NOW - DAY) == 7
        assert await store.count_jobs() == 1 and await store.job(kept) is not None
    finally:
        await store.close()


async def test_item19_purge_looks_up_the_index(tmp_path):
    """The purge's condition is spelled as the index is, so SQLite searches rather than scans."""
    store = await Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        query = sa.select(store_module.jobs.c.id).where(
            store_module.jobs.c.state.in_(store_module.FINAL_STATES),
            store_module.job_ended_at < NOW,
        )
        sql = query.compile(store.engine, compile_kwargs={"literal_binds": True})
        async with store.engine.connect() as conn:
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all()
        assert "USING INDEX ix_jobs_state_ended_at" in str(plan), plan
    finally:
        await store.close()


# -- item 19, end to end: the bot tidies the job log at start --------------------------------


async def test_item19_the_bot_purges_old_jobs_and_clears_stale_tokens_at_start(tmp_path):
    import time

    from tests.harness import running_bot

    async with running_bot(tmp_path, JOB_RETENTION_DAYS="30") as h:
        store = h.bot.store
        now = time.time()
        old = await store.create_job(
            user_id=1, guild_id=None, channel_id=None, source="dm", prompt="old", model="flux",
            width=64, height=64, seed=None, state="done", created_at=now - 40 * 86400,
            finished_at=now - 40 * 86400,
        )  # fmt: skip
        recent = await store.create_job(
            user_id=1, guild_id=None, channel_id=None, source="slash", prompt="recent",
            model="flux", width=64, height=64, seed=None, state="failed", created_at=now - 60,
            finished_at=now - 50, interaction_token="tok-" + "x" * 40, token_expires_at=now + 800,
        )  # fmt: skip
        await h.stop_bot()
        await h.start_bot()
        assert await h.bot.store.job(old.id) is None
        kept = await h.bot.store.job(recent.id)
        assert kept is not None and kept.interaction_token is None
