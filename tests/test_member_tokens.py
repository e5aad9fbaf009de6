"""Issue 17, part 3: members' own Hugging Face tokens.

A member connects a token in ``/settings`` (a modal); the bot asks the fake hub's
``whoami-v2`` whose it is and keeps it sealed under ``SECRETS_KEY``; that member's jobs then
fetch their ZeroGPU tokens with it (the fake hub records which bearer asked, and which account
each ZeroGPU token it handed out belongs to), every other member's jobs the bot's. The real bot
between the fake Discord and the fake hub and Spaces; PostgreSQL and ``python worker.py`` for
the worker's side.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

import bot as bot_module
from imagine import logsafe
from imagine.engine import Engine
from imagine.i18n import Language, _, texts
from imagine.member_tokens import TOKENS_OFF
from imagine.quota import BOT_ACCOUNT, account_of
from imagine.settings import Settings
from imagine.store import Store, user_secrets
from imagine.vault import Vault
from tests.fakes.space import FakeSpace, JsonError, QuotaExceeded
from tests.harness import Harness, running_bot
from tests.test_worker_mode import Workers, worker_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch):
    """Each test starts with no learned secret, so what it sees redacted, it redacted."""
    monkeypatch.setattr(logsafe, "LEARNED", logsafe.LearnedSecrets())


KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()
ALICE_HF = "hf_AliceOwnToken0123456789abcdefXYZ"
BOB_HF = "hf_BobsOwnToken0123456789abcdefXYZ"
BOT_HF = "hf_TheBotsToken0123456789abcdefXYZ"
TOKEN_INPUT = "settings:hf-token"
RU = texts(Language.RU)


# -- helpers ---------------------------------------------------------------------------------


async def open_settings(h: Harness, user: dict):
    interaction = await h.discord.send_slash("settings", {}, user=user, guild_id=h.guild.id)
    callback = await interaction.wait_callback(3)
    assert callback["type"] == 4 and callback["data"]["flags"] & 64, callback
    return await h.discord.wait_until(lambda: interaction.original, 5)


def hugging_face_field(page) -> str:
    return next(f["value"] for f in page.embeds[0]["fields"] if f["name"] == "Hugging Face")


def labels(page) -> list[str]:
    return [c.get("label") for row in page.components for c in row["components"]]


async def connect(h: Harness, user: dict, typed: str):
    """The member opens /settings, presses Hugging Face and submits ``typed``; the page and
    the modal's submission."""
    page = await open_settings(h, user)
    before = page.edit_count
    pressed = await h.discord.press_button(page, "settings:hf", user=user)
    modal = await pressed.wait_modal(3)
    field = modal["components"][0]["components"][0]
    assert field["custom_id"] == TOKEN_INPUT and not field.get("value")  # never pre-filled
    submitted = await h.discord.submit_modal(pressed, {TOKEN_INPUT: typed})
    callback = await submitted.wait_callback(3)
    assert callback["type"] == 6, callback  # the page is updated once the hub answered
    return page, submitted, before


async def connected(h: Harness, user: dict, typed: str, account: str):
    page, _submitted, before = await connect(h, user, typed)
    await h.discord.wait_until(lambda: page.edit_count > before, 10)
    assert hugging_face_field(page) == f"connected as {account}"
    return page


async def forget(h: Harness, user: dict) -> None:
    page = await open_settings(h, user)
    assert "Forget token" in labels(page)
    before = page.edit_count
    pressed = await h.discord.press_button(page, "settings:hf-forget", user=user)
    assert (await pressed.wait_callback(3))["type"] == 7
    await h.discord.wait_until(lambda: page.edit_count > before, 5)
    assert hugging_face_field(page).startswith("not connected")
    assert "Forget token" not in labels(page)


async def drawn_on(h: Harness, user: dict, prompt: str) -> tuple[str | None, str | None]:
    """Draw ``prompt`` for ``user``; the bearer the ZeroGPU token the Space received was
    fetched with (None: an anonymous one), and the hub account it is on."""
    reply = await h.final(await h.slash({"prompt": prompt}, user=user), 30)
    assert reply.attachments, reply.embeds
    join = next(r for r in h.space.joins("g4f-flux") if r.json["data"][0] == prompt)
    issued = h.space.issued_for(join.headers.get("x-zerogpu-token"))
    assert issued is not None
    return issued.bearer, issued.user


def secret_rows(h: Harness) -> list[tuple]:
    with sqlite3.connect(h.database) as db:
        return db.execute("SELECT user_id, hf_token, hf_account FROM user_secrets").fetchall()


def database_bytes(h: Harness) -> bytes:
    """The SQLite database as its files hold it (the write-ahead log too), as a backup would."""
    files = [h.database, *(Path(f"{h.database}{suffix}") for suffix in ("-wal", "-shm"))]
    return b"".join(path.read_bytes() for path in files if path.exists())


def sent_to_discord(h: Harness) -> str:
    """Everything the bot sent to the fake Discord: every version of every message, every
    interaction answer and modal."""
    parts: list[str] = []
    for message in h.discord.messages.values():
        parts.append(json.dumps(message.to_json(), default=str))
        parts += [json.dumps(version, default=str) for version in message.versions]
    for interaction in h.discord.interactions.values():
        parts.append(json.dumps([interaction.callback, interaction.modal], default=str))
    return "\n".join(parts)


def debug_logging(h: Harness) -> tuple[io.StringIO, int]:
    """The bot's own logging (secrets redacted), at DEBUG, into a string; and the root
    logger's level before, for ``stop_logging``."""
    level = logging.getLogger().level
    stream = io.StringIO()
    bot_module.setup_logging(h.settings, handler=logging.StreamHandler(stream))
    return stream, level


def stop_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(level)


# -- the vault -------------------------------------------------------------------------------


def test_the_vault_seals_opens_and_rotates():
    old, new = Vault([KEY]), Vault([OTHER_KEY, KEY])
    sealed = old.seal(ALICE_HF)
    assert ALICE_HF not in sealed and old.open(sealed) == ALICE_HF
    assert Vault([OTHER_KEY]).open(sealed) is None  # a wrong key: absent, no error
    assert old.open("not a sealed token") is None
    # Rotation: the new key in front opens what the old one sealed, and seals with the new.
    assert new.open(sealed) == ALICE_HF and not new.is_current(sealed)
    resealed = new.reseal(sealed)
    assert resealed is not None and new.is_current(resealed)
    assert Vault([OTHER_KEY]).open(resealed) == ALICE_HF and old.open(resealed) is None
    assert Vault([OTHER_KEY]).reseal(old.seal("x" * 10)) is None


def test_a_missing_or_malformed_key_turns_the_feature_off(caplog):
    assert Vault.from_setting(None) is None and Vault.from_setting(" , ") is None
    with caplog.at_level(logging.WARNING):
        assert Vault.from_setting(f"{KEY},not-a-fernet-key") is None
    assert "key 2 of 2 is not a Fernet key" in caplog.text and KEY not in caplog.text
    assert Vault.from_setting(f" {OTHER_KEY} , {KEY} ") is not None
    assert KEY in Settings.from_env({"SECRETS_KEY": f"{OTHER_KEY},{KEY}"}).secrets()
    assert "secrets_key" not in repr(Settings.from_env({"SECRETS_KEY": KEY})).lower()


# -- the redactor ---------------------------------------------------------------------------


def test_a_learned_secret_and_a_secret_modal_field_never_reach_the_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logsafe.RedactingFilter())
    logger = logging.getLogger("tests.member_tokens.redactor")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logsafe.secret_input(TOKEN_INPUT)
        field = {"type": 4, "custom_id": TOKEN_INPUT, "value": ALICE_HF}
        other = {"type": 4, "custom_id": "edit:change", "value": "make it night"}
        event = {"t": "INTERACTION_CREATE", "d": {"data": {"components": [field, other]}}}
        logger.debug("For Shard ID %s: WebSocket Event: %s", 0, event)
        assert field["value"] == ALICE_HF  # the event itself is untouched
        logger.info("the hub said: no such token %s", BOB_HF)
        assert BOB_HF in stream.getvalue()  # not a secret it knows of, yet
        logsafe.remember(BOB_HF)
        logger.info("the hub said: no such token %s", BOB_HF)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert ALICE_HF not in lines[0] and "make it night" in lines[0] and "[redacted]" in lines[0]
    assert lines[2] == "the hub said: no such token [redacted]"
    shown = logsafe.Redactor()(f"Response 400: bad header {BOB_HF}")
    assert shown == "Response 400: bad header [redacted]"


# -- the engine: one cache per account --------------------------------------------------------


async def test_the_engine_fetches_each_accounts_zerogpu_tokens_with_its_own_token(tmp_path):
    async with FakeSpace() as space:
        settings = Settings.from_env({**space.env(), "HF_TOKEN": BOT_HF})
        async with Engine(settings) as engine:
            assert engine.zerogpu_tokens(None) is engine.tokens
            assert engine.tokens.account == BOT_ACCOUNT
            alice = engine.zerogpu_tokens(ALICE_HF)
            assert alice is engine.zerogpu_tokens(ALICE_HF)  # kept
            assert alice.account == account_of(ALICE_HF) != account_of(BOB_HF)
            whose = {"alice": ALICE_HF, "bob": BOB_HF, "nobody": None, "alice again": ALICE_HF}
            for prompt, token in whose.items():
                async for _item in engine.generate("flux-dev", prompt=prompt, hf_token=token):
                    pass
            described = await engine.describe((_png(), "cat.png"), hf_token=BOB_HF)
            assert described.prompts
            # Each job's ZeroGPU token was fetched with its own account's token: a member's,
            # else the bot's; one fetch per account (Alice's second job used her cached one).
            expected = {**whose, "nobody": BOT_HF}
            for request in space.joins("flux-dev"):
                issued = space.issued_for(request.headers.get("x-zerogpu-token"))
                assert issued is not None and issued.bearer == expected[request.json["data"][0]]
            [describing] = space.joins("janus")
            assert space.issued_for(describing.headers.get("x-zerogpu-token")).bearer == BOB_HF
            assert space.jwt_bearers.count(ALICE_HF) == 1
            bot_token = engine.tokens.cached("roxky/FLUX.1-dev")  # the bot's cache: its own
            assert bot_token is not None and space.issued_for(bot_token.token).bearer == BOT_HF
            assert engine.tokens.cached("roxky/Janus-Pro-7B") is None


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


# -- /settings and jobs ------------------------------------------------------------------------


async def test_a_members_own_token_is_used_for_their_jobs_only_and_never_leaks(tmp_path):
    async with running_bot(
        tmp_path, start=False, SECRETS_KEY=KEY, HF_TOKEN=BOT_HF, LOG_LEVEL="DEBUG"
    ) as h:
        stream, level = debug_logging(h)
        try:
            await h.start_bot()
            h.space.add_hub_user("alicehf", ALICE_HF, pro=True)
            page = await open_settings(h, h.alice)
            assert hugging_face_field(page).startswith("not connected")
            assert "Forget token" not in labels(page) and "Hugging Face" in labels(page)

            page = await connected(h, h.alice, f"  {ALICE_HF}\n", "alicehf")
            assert h.space.whoami_bearers == [ALICE_HF]
            assert "Forget token" in labels(page)
            [(user_id, sealed, account)] = secret_rows(h)
            assert (user_id, account) == (int(h.alice["id"]), "alicehf")
            assert ALICE_HF not in sealed and Vault([KEY]).open(sealed) == ALICE_HF

            # Her job: a ZeroGPU token fetched with her token, on her account; Bob's: the bot's.
            assert await drawn_on(h, h.alice, "alice's fox") == (ALICE_HF, "alicehf")
            assert await drawn_on(h, h.bob, "bob's fox") == (BOT_HF, None)
            assert await drawn_on(h, h.alice, "alice's owl") == (ALICE_HF, "alicehf")

            # A backend that echoes her token back shows it to nobody.
            h.space.set_fault("g4f-flux", JsonError(400, f"bad header {ALICE_HF}"), times=1)
            failed = await h.final(await h.slash({"prompt": "echo"}, user=h.alice), 30)
            description = failed.embeds[0]["description"]
            assert ALICE_HF not in description and "[redacted]" in description

            await forget(h, h.alice)
            assert secret_rows(h) == []
            assert await drawn_on(h, h.alice, "alice's cat") == (BOT_HF, None)
            await h.bot.store.flush()
        finally:
            stop_logging(level)
        log = stream.getvalue()
        assert "DEBUG" in log and TOKEN_INPUT in log  # the modal's submission was logged …
        assert "'value': '[redacted]'" in log  # … without it
        assert ALICE_HF not in log
        assert ALICE_HF not in sent_to_discord(h)
        assert ALICE_HF.encode() not in database_bytes(h)


async def test_a_token_the_hub_refuses_is_not_kept(tmp_path):
    async with running_bot(tmp_path, SECRETS_KEY=KEY) as h:
        wrong = "hf_NotATokenTheHubKnows0123456789"
        page, submitted, before = await connect(h, h.bob, wrong)
        told = await h.discord.wait_until(lambda: submitted.followups, 10)
        assert "did not accept that token, so nothing was stored" in told[0].content
        assert h.space.whoami_bearers == [wrong]
        assert secret_rows(h) == [] and h.bot.store.sealed_token(int(h.bob["id"])) is None
        # Not something that could be a token at all: refused before the hub is asked.
        _page, shapeless, _before = await connect(h, h.bob, "this is not a token at all")
        told = await h.discord.wait_until(lambda: shapeless.followups, 10)
        assert "does not look like a Hugging Face access token" in told[0].content
        assert h.space.whoami_bearers == [wrong]
        # The hub down: said so, nothing kept.
        h.space.add_hub_user("bobhf", BOB_HF)
        h.space.set_fault("hub", JsonError(503, "Service Unavailable"), times=1)
        _page, unlucky, _before = await connect(h, h.bob, BOB_HF)
        told = await h.discord.wait_until(lambda: unlucky.followups, 10)
        assert "could not check the token" in told[0].content and "503" in told[0].content
        assert secret_rows(h) == []
        assert page.edit_count == before  # the page still says: not connected
        assert wrong not in sent_to_discord(h) and BOB_HF not in sent_to_discord(h)


async def test_without_a_usable_secrets_key_the_button_says_the_feature_is_off(tmp_path):
    for key in (None, "not-a-fernet-key"):
        env = {} if key is None else {"SECRETS_KEY": key}
        folder = tmp_path / (key or "none")
        folder.mkdir()
        async with running_bot(folder, **env) as h:
            page = await open_settings(h, h.alice)
            assert hugging_face_field(page) == "off on this bot"
            assert "Hugging Face: off" in labels(page)
            pressed = await h.discord.press_button(page, "settings:hf", user=h.alice)
            assert await h.ephemeral(pressed) == TOKENS_OFF  # plainly said; no modal
            assert pressed.modal is None
            ivan = h.discord.add_user("ivan", locale="ru")
            h.discord.add_member(h.guild.id, ivan)
            page = await open_settings(h, ivan)
            assert RU(_("Hugging Face: off")) != "Hugging Face: off"
            assert RU(_("Hugging Face: off")) in labels(page)
            # Everything else still works.
            assert (await h.final(await h.slash({"prompt": "a fox"}), 30)).attachments


async def test_a_token_no_key_opens_counts_as_absent(tmp_path):
    async with running_bot(tmp_path, SECRETS_KEY=KEY, HF_TOKEN=BOT_HF) as h:
        h.space.add_hub_user("alicehf", ALICE_HF)
        await connected(h, h.alice, ALICE_HF, "alicehf")
        await h.stop_bot()
        await h.start_bot(SECRETS_KEY=OTHER_KEY)  # the key changed without a rotation
        page = await open_settings(h, h.alice)
        assert hugging_face_field(page) == "your token can no longer be read: connect it again"
        assert "Forget token" in labels(page)
        assert await drawn_on(h, h.alice, "after the key changed") == (BOT_HF, None)
        assert len(secret_rows(h)) == 1  # kept: the old key may come back
        # Connecting again seals it under the key in use.
        await connected(h, h.alice, ALICE_HF, "alicehf")
        assert await drawn_on(h, h.alice, "connected again") == (ALICE_HF, "alicehf")


async def test_rotating_the_key_keeps_every_token(tmp_path):
    async with running_bot(tmp_path, SECRETS_KEY=KEY, HF_TOKEN=BOT_HF) as h:
        h.space.add_hub_user("alicehf", ALICE_HF)
        await connected(h, h.alice, ALICE_HF, "alicehf")
        [(_user, under_old, _account)] = secret_rows(h)
        await h.stop_bot()
        # The new key in front of the old one: at start every token is sealed again with it.
        await h.start_bot(SECRETS_KEY=f"{OTHER_KEY},{KEY}")
        [(_user, under_new, _account)] = secret_rows(h)
        assert under_new != under_old and Vault([OTHER_KEY]).open(under_new) == ALICE_HF
        assert await drawn_on(h, h.alice, "during the rotation") == (ALICE_HF, "alicehf")
        await h.stop_bot()
        await h.start_bot(SECRETS_KEY=OTHER_KEY)  # the old key dropped
        assert secret_rows(h)[0][1] == under_new  # nothing left to reseal: left as it was
        assert hugging_face_field(await open_settings(h, h.alice)) == "connected as alicehf"
        assert await drawn_on(h, h.alice, "after the rotation") == (ALICE_HF, "alicehf")


async def test_when_a_members_quota_runs_out_only_their_account_rests(tmp_path):
    """Part 2's routing with a member's own account: a ZeroGPU refusal of her token rests the
    Space for her alone; her job goes on with the next backend, and the bot's account (Bob's
    job) still draws on that Space."""
    async with running_bot(tmp_path, all_backends=True, SECRETS_KEY=KEY, HF_TOKEN=BOT_HF) as h:
        h.space.add_hub_user("alicehf", ALICE_HF)
        await connected(h, h.alice, ALICE_HF, "alicehf")
        first, second = h.bot.engine.table.backends_for("flux")[:2]
        h.space.set_fault("g4f-flux", QuotaExceeded("0:09:48"), times=1)
        mine = await h.final(await h.slash({"prompt": "her fox", "model": "flux"}, user=h.alice))
        assert mine.attachments and second.label in mine.embeds[0]["footer"]["text"]
        assert h.bot.engine.rests.resting(first.name, account_of(ALICE_HF)) is not None
        assert h.bot.engine.rests.resting(first.name, BOT_ACCOUNT) is None
        [refused] = h.space.joins("g4f-flux")
        assert h.space.issued_for(refused.headers.get("x-zerogpu-token")).bearer == ALICE_HF
        assert await drawn_on(h, h.bob, "his fox") == (BOT_HF, None)  # the Space, for the bot


# -- other processes ----------------------------------------------------------------------------


async def test_a_connect_and_a_forget_reach_the_other_processes(postgres_url):
    from imagine.signals import Signals

    here, there = await Store.open(postgres_url), await Store.open(postgres_url)
    signals = await Signals.connect(postgres_url)
    try:
        await signals.follow_settings(there)
        sealed = Vault([KEY]).seal(ALICE_HF)
        await here.save_sealed_token(7, sealed, "alicehf")
        await _until(lambda: there.sealed_token(7) is not None)
        assert there.sealed_token(7).account == "alicehf"
        await here.forget_sealed_token(7)
        await _until(lambda: there.sealed_token(7) is None)
    finally:
        await signals.close()
        await here.close()
        await there.close()


async def test_a_worker_draws_with_the_members_token(tmp_path, postgres_url):
    env = worker_env(SECRETS_KEY=KEY, HF_TOKEN=BOT_HF)
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **env) as h:
        workers = Workers(h, tmp_path)
        try:
            h.space.add_hub_user("alicehf", ALICE_HF)
            workers.start()
            await connected(h, h.alice, ALICE_HF, "alicehf")
            async with h.bot.store.engine.connect() as conn:
                stored = (await conn.execute(sa.select(user_secrets))).all()
            assert len(stored) == 1 and ALICE_HF not in repr(stored)  # ciphertext only
            assert await drawn_on(h, h.alice, "worker, alice") == (ALICE_HF, "alicehf")
            assert await drawn_on(h, h.bob, "worker, bob") == (BOT_HF, None)
            await forget(h, h.alice)
            assert await drawn_on(h, h.alice, "worker, alice again") == (BOT_HF, None)
        finally:
            await workers.stop_all()
        log = "".join(workers.log(process) for process in workers.processes)
        assert "ready" in log and ALICE_HF not in log


async def _until(check, within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)
