"""Every job ends visibly, nothing is lost, nothing leaks: faults, restarts, abuse, secrets.

The real bot between the fake Discord and the fake Spaces, as in test_bot.py.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import bot as bot_module
from tests.fakes.space import (
    CompletedError,
    GoSilent,
    HtmlError,
    JsonError,
    MalformedJson,
    NotAnImage,
    QuotaExceeded,
    ServerError,
    StreamBreak,
    TextError,
)
from tests.harness import MANAGE_GUILD, running_bot

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[1]


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


def job_states(database: Path) -> dict[int, str]:
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT id, state FROM jobs"))


FAULTS = [
    ("json", "flux-dev", "flux-dev", JsonError(400, 'NSFW prompt refused <a href="x">why</a>'),
     "Response 400: NSFW prompt refused"),
    ("html", "flux-dev", "flux-dev", HtmlError(502), "Response 502: HTML content"),
    ("text", "g4f-flux", "flux", TextError(500, "worker crashed"), "Response 500: worker crashed"),
    ("cut", "flux-dev", "flux-dev", StreamBreak(after_events=2), "broke off its answer"),
    ("malformed", "janus", "janus-pro-7b-image", MalformedJson(), "sent malformed data"),
    ("failed-job", "flux-dev", "flux-dev", CompletedError("CUDA out of memory"),
     "CUDA out of memory"),
    ("silent", "flux-dev", "flux-dev", GoSilent(after_events=2), "sent nothing for 1s"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "space", "model", "fault", "text"), FAULTS, ids=[f[0] for f in FAULTS]
)
async def test_backend_faults_end_in_a_clear_reply_with_retry(
    tmp_path, kind, space, model, fault, text
):
    async with running_bot(tmp_path, JOB_WATCHDOG_SECONDS="1") as h:
        h.bot.engine.retry_backoff = 0.05
        h.space.set_fault(space, fault)
        interaction = await h.slash({"prompt": "a storm", "model": model})
        message = await h.final(interaction, within=30)
        (embed,) = message.embeds
        assert embed["title"] == "Couldn't make this image"
        assert text in embed["description"], embed["description"]
        assert [b.split(":")[1] for b in buttons(message)] == ["retry"]
        (job_id,) = job_states(h.database)
        assert await h.job_state(job_id, "failed") == "failed"
        # Retry, once the backend is healthy again, draws the same request.
        h.space.clear_faults()
        again = await h.discord.press_button(message, buttons(message)[0], user=h.alice)
        redone = await h.final(again)
        assert redone.attachments and redone.embeds[0]["title"] == "a storm"


async def test_unreachable_host_and_undownloadable_image(tmp_path):
    async with running_bot(tmp_path, G4F_FLUX_URL="http://127.0.0.1:9/run/predict") as h:
        h.bot.engine.retry_backoff = 0.05
        message = await h.final(await h.slash({"prompt": "x", "model": "flux"}))
        assert "Could not connect to G4F flux" in message.embeds[0]["description"]
        h.space.file_fault = NotAnImage()
        message = await h.final(await h.slash({"prompt": "y", "model": "flux-dev"}, user=h.bob))
        assert "not an image" in message.embeds[0]["description"]


async def test_transient_failure_is_retried_once_then_succeeds(tmp_path):
    async with running_bot(tmp_path) as h:
        h.bot.engine.retry_backoff = 1.5  # long enough for the status to be shown
        h.space.set_fault("flux-dev", ServerError(503), times=1)
        message = await h.final(await h.slash({"prompt": "a kite", "model": "flux-dev"}))
        assert message.attachments
        assert len(h.space.joins("flux-dev")) == 2
        statuses = " ".join(v.get("content") or "" for v in message.versions)
        assert "retrying" in statuses


async def test_fallback_model_takes_the_job_and_the_reply_says_so(tmp_path):
    async with running_bot(tmp_path, FALLBACK_MODEL="flux") as h:
        h.bot.engine.retry_backoff = 0.05
        h.space.set_fault("flux-dev", ServerError(503))  # stays down
        message = await h.final(await h.slash({"prompt": "a kite", "model": "flux-dev"}))
        assert message.attachments
        embed = message.embeds[0]
        assert field(embed, "Model") == "flux (fallback: flux-dev failed)"
        assert "Response 503" in embed["footer"]["text"]
        assert len(h.space.joins("flux-dev")) == 2  # tried, retried once
        assert len(h.space.joins("g4f-flux")) == 1


async def test_servers_own_fallback_wins(tmp_path):
    async with running_bot(tmp_path, FALLBACK_MODEL="flux") as h:
        h.bot.engine.retry_backoff = 0.05
        await h.discord.send_slash(
            "imagine-config", {"model": "janus-pro-7b-image"}, subcommand="fallback",
            user=h.admin, guild_id=h.guild.id, permissions=MANAGE_GUILD,
        )  # fmt: skip
        await asyncio.sleep(0.2)
        h.space.set_fault("flux-dev", JsonError(500, "boom"))
        message = await h.final(await h.slash({"prompt": "a kite", "model": "flux-dev"}))
        assert field(message.embeds[0], "Model").startswith("janus-pro-7b-image (fallback")


async def test_quota_refusal_shows_when_to_retry(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.set_fault("flux-dev", QuotaExceeded("0:09:48"))
        before = time.time()
        message = await h.final(await h.slash({"prompt": "x", "model": "flux-dev"}))
        description = message.embeds[0]["description"]
        assert "GPU quota" in description and "<a" not in description
        stamp = int(description.split("<t:")[1].split(":R>")[0])
        assert before + 588 - 2 <= stamp <= time.time() + 588 + 2
        assert len(h.space.joins("flux-dev")) == 1  # a quota refusal is not retried


async def test_quota_refusal_goes_to_the_fallback(tmp_path):
    async with running_bot(tmp_path, FALLBACK_MODEL="flux") as h:
        h.space.set_fault("flux-dev", QuotaExceeded("0:09:48"))
        message = await h.final(await h.slash({"prompt": "x", "model": "flux-dev"}))
        assert message.attachments
        assert field(message.embeds[0], "Model") == "flux (fallback: flux-dev failed)"


async def test_watchdog_fails_a_silent_backend_visibly(tmp_path):
    async with running_bot(tmp_path, JOB_WATCHDOG_SECONDS="1") as h:
        h.space.set_fault("g4f-flux", GoSilent())
        started = time.monotonic()
        message = await h.final(await h.slash({"prompt": "x", "model": "flux"}), within=20)
        assert "sent nothing for 1s" in message.embeds[0]["description"]
        assert time.monotonic() - started < 10


async def test_small_attachment_limit_reencodes_the_image(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.noise = True  # incompressible: a 512x512 PNG is ~770 KB
        limit = 200_000
        message = await h.final(
            await h.slash({"prompt": "static", "width": 512, "height": 512},
                          attachment_size_limit=limit)
        )  # fmt: skip
        (attachment,) = message.attachments
        data = message.attachment_bytes(0)
        assert len(h.space.served[-1].bytes) > limit
        assert len(data) <= limit
        assert attachment["filename"].endswith((".webp", ".jpg"))
        assert Image.open(io.BytesIO(data)).size[0] <= 512
        assert "re-encoded" in message.embeds[0]["footer"]["text"]


async def test_decompression_bomb_is_refused(tmp_path):
    from imagine.errors import FetchError
    from imagine.images import image_size

    header = Image.new("1", (1, 1))
    buffer = io.BytesIO()
    header.save(buffer, "PNG")
    png = bytearray(buffer.getvalue())
    # Rewrite IHDR to claim 100000x100000 (and fix its CRC): a classic bomb header.
    import struct
    import zlib

    png[16:24] = struct.pack(">II", 100_000, 100_000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    with pytest.raises(FetchError, match="decompression bomb"):
        image_size(bytes(png))


async def test_result_outliving_its_token_goes_to_the_channel(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 2.5
        h.discord.expire_tokens_after(1.0)
        interaction = await h.slash({"prompt": "a comet"})

        def delivered():
            return next(
                (m for m in h.bot_messages() if m.attachments and m.id != interaction.original.id),
                None,
            )

        message = await h.discord.wait_until(delivered, 20)
        assert message.channel_id == h.channel_id
        assert message.message_reference["message_id"] == str(interaction.original.id)
        assert f"<@{h.alice['id']}>" in message.content
        assert not message.would_ping
        assert message.embeds[0]["title"] == "a comet"


async def test_gateway_drop_mid_job_changes_nothing(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 2.0
        interaction = await h.slash({"prompt": "a lantern"})
        await interaction.wait_callback(3)
        await asyncio.sleep(0.5)
        await h.discord.drop_gateway()
        message = await h.final(interaction)
        assert message.attachments
        await h.discord.wait_until(lambda: h.discord.resumes >= 1, 10)
        # An interaction sent while the gateway was down is delivered after the RESUME.
        await h.discord.drop_gateway(4000)
        late = await h.slash({"prompt": "after the drop"}, user=h.bob)
        assert (await h.final(late)).attachments


async def test_restart_with_jobs_in_flight_tells_every_one(tmp_path):
    async with running_bot(tmp_path, MAX_CONCURRENT_JOBS="2") as h:
        h.space.generation_delay = 60
        users = [h.discord.add_user(f"u{i}") for i in range(5)]
        for user in users:
            h.discord.add_member(h.guild.id, user)
        interactions = [await h.slash({"prompt": f"job {i}"}, user=u) for i, u in enumerate(users)]
        await h.discord.wait_until(
            lambda: all(
                i.original is not None and i.original.edit_count >= 1 for i in interactions
            ),
            10,
        )
        # A crash: the process dies with two jobs running and three waiting.
        for active in list(h.bot.runner.active.values()):
            active.task.cancel()
        await h.stop_bot()
        assert sorted(job_states(h.database).values()) == ["queued"] * 3 + ["running"] * 2
        h.space.generation_delay = 0
        await h.start_bot()
        told = [await h.final(i) for i in interactions]
        assert all(m.embeds[0]["title"] == "Interrupted" for m in told)
        assert all("restarted" in m.embeds[0]["description"] for m in told)
        assert all(buttons(m)[0].startswith("imagine:retry:") for m in told)
        assert set(job_states(h.database).values()) == {"interrupted"}
        # Their Retry buttons still work after the restart.
        again = await h.discord.press_button(told[0], buttons(told[0])[0], user=users[0])
        assert (await h.final(again)).attachments


async def test_burst_of_100_commands_from_one_user(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 1.0
        interactions = await asyncio.gather(*(h.slash({"prompt": f"spam {i}"}) for i in range(100)))
        callbacks = await asyncio.gather(*(i.wait_callback(3) for i in interactions))
        accepted = [i for i, c in zip(interactions, callbacks, strict=True) if c["type"] == 5]
        refused = [c for c in callbacks if c["type"] == 4]
        assert len(accepted) == 3 and len(refused) == 97  # MAX_JOBS_PER_USER = 3
        assert all(c["data"]["flags"] & 64 for c in refused)
        assert all(
            "in progress" in c["data"]["content"] or "Slow down" in c["data"]["content"]
            for c in refused
        )
        finished = [await h.final(i, within=30) for i in accepted]
        assert all(m.attachments for m in finished)
        # One at a time: the Space never saw two of this user's jobs at once.
        assert len(h.space.joins("g4f-flux")) == 3
        assert h.discord.count_429 == 0


async def test_blocked_words(tmp_path):
    async with running_bot(tmp_path) as h:
        admin = {"user": h.admin, "guild_id": h.guild.id, "permissions": MANAGE_GUILD}
        await h.ephemeral(
            await h.discord.send_slash(
                "imagine-config", {"action": "add", "words": "Gore, spoilers"},
                subcommand="blocked-words", **admin,
            )
        )  # fmt: skip
        refusal = await h.ephemeral(await h.slash({"prompt": "a scene full of GORE"}))
        assert "blocked word" in refusal
        assert h.space.requests == []
        refused = await h.ephemeral(
            await h.discord.send_slash(
                "imagine-config", {"action": "clear"}, subcommand="blocked-words",
                user=h.bob, guild_id=h.guild.id, permissions=0,
            )
        )  # fmt: skip
        assert "Manage Server" in refused
        assert (await h.bot.store.guild(h.guild.id)).blocked_words == ("Gore", "spoilers")


async def test_long_prompt_and_control_characters(tmp_path):
    async with running_bot(tmp_path) as h:
        message = await h.final(await h.slash({"prompt": "a\x00 fox\x1b[31m in\u202e snow"}))
        assert h.space.joins("g4f-flux")[0].json["data"][0] == "a fox[31m in snow"
        assert message.attachments


async def test_debug_log_of_a_whole_run_holds_no_secret(tmp_path):
    token = "MTA5ODc2NTQzMjEwOTg3NjU0.GabcDE.secret-discord-token-value-xyz"
    hf = "hf_SECRETsecretSECRETsecret1234"
    stream = io.StringIO()
    async with running_bot(
        tmp_path, start=False, token=token, HF_TOKEN=hf, LOG_LEVEL="DEBUG",
        JOB_WATCHDOG_SECONDS="1",
    ) as h:  # fmt: skip
        bot_module.setup_logging(h.settings, handler=logging.StreamHandler(stream))
        try:
            await h.start_bot()
            h.bot.engine.retry_backoff = 0.05
            ok = await h.final(await h.slash({"prompt": "a fox", "model": "flux-dev"}))
            assert ok.attachments
            h.space.set_fault("flux-dev", JsonError(400, f"echoing your token {hf}"))
            failed = await h.final(await h.slash({"prompt": "b", "model": "flux-dev"}, user=h.bob))
            assert hf not in failed.embeds[0]["description"]
            assert "[redacted]" in failed.embeds[0]["description"]
        finally:
            for handler in logging.getLogger().handlers[:]:
                logging.getLogger().removeHandler(handler)
        log = stream.getvalue()
        assert "DEBUG" in log and "/webhooks/" in log  # it really logged the run
        assert token not in log and hf not in log
        for interaction in h.discord.interactions.values():
            assert interaction.token not in log  # webhook URLs are redacted too
        database = h.database.read_bytes()
        assert token.encode() not in database and hf.encode() not in database


async def test_sigterm_lets_jobs_finish_or_tells_them_and_exits_0(tmp_path):
    async with running_bot(tmp_path, start=False, SHUTDOWN_GRACE_SECONDS="2") as h:
        h.space.set_knobs("g4f-flux", generation_delay=0.8)
        h.space.set_knobs("flux-dev", generation_delay=60)
        env = {**os.environ, **h.env, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await h.discord.wait_until(lambda: h.discord.commands and h.discord.identifies, 30)
            await h.discord.wait_ready(30)
            quick = await h.slash({"prompt": "quick", "model": "flux"})
            slow = await h.slash({"prompt": "slow", "model": "flux-dev"}, user=h.bob)
            await asyncio.gather(quick.wait_callback(5), slow.wait_callback(5))
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
        assert code == 0, (await process.stderr.read()).decode()[-2000:]
        assert quick.original.attachments  # finished within the grace period
        assert slow.original.embeds[0]["title"] == "Interrupted"  # told, not left thinking
        assert sorted(job_states(h.database).values()) == ["done", "interrupted"]
