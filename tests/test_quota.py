"""Issue 17, part 2: quota-aware routing. A ZeroGPU quota refusal rests that (Space, account)
pair until the time the Space gave, and no request reaches it before then, in this process
and in every other (the rests are shared through the database); the job goes on with the
model's next backend and says so; admins see the rests (``/imagine-config show``, ``--check``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from imagine.engine import Engine
from imagine.quota import BOT_ACCOUNT, Rest, account_of
from imagine.responses import ImageResponse, Reasoning
from imagine.settings import Settings
from imagine.store import Store
from imagine.store.quota_rests import SharedRests
from tests.fakes.horde import FakeHorde
from tests.fakes.space import QuotaExceeded
from tests.harness import MANAGE_GUILD, running_bot
from tests.processes import ROOT

REFUSAL = "0:09:48"  # ZeroGPU's "Try again in 0:09:48"
RESTED = 9 * 60 + 48


def all_backends(space, horde: FakeHorde | None = None) -> Settings:
    """Every built-in backend on the fakes; the AI Horde too when given, else left out."""
    behind = horde.env() if horde is not None else {"HORDE_FLUX_MODEL": "none"}
    return Settings.from_env({**space.env(), **behind, "JOB_WATCHDOG_SECONDS": "2"})


@pytest.fixture
async def horde() -> AsyncIterator[FakeHorde]:
    async with FakeHorde(queue_places=1, seconds_per_place=0.2, generation_seconds=0.2) as fake:
        yield fake


async def draw(engine: Engine, model: str, **kwargs):
    items = [item async for item in engine.generate(model, prompt="a fox", **kwargs)]
    images = [i for i in items if isinstance(i, ImageResponse)]
    return items, (images[0] if images else None)


async def test_a_refusal_rests_the_space_for_that_account_until_the_time_it_named(space):
    space.set_fault("g4f-flux", QuotaExceeded(REFUSAL))
    async with Engine(all_backends(space)) as engine:
        now = [time.time()]
        engine.rests.clock = lambda: now[0]
        first, second, *_ = engine.table.backends_for("flux")
        items, image = await draw(engine, "flux")
        assert image.backend == second.label
        notices = [i.status for i in items if isinstance(i, Reasoning) and "quota" in i.status]
        assert len(notices) == 1
        assert f"{first.label} is out of GPU quota until" in notices[0]
        assert f"{second.label} draws instead" in notices[0]
        rest = engine.rests.resting(first.name, BOT_ACCOUNT)
        assert rest is not None and rest.until == pytest.approx(now[0] + RESTED, abs=2)

        # Until then nothing is sent to it: the next job goes straight to the second, and
        # is told why.
        asked = len(space.joins("g4f-flux"))
        now[0] += RESTED - 5
        items, image = await draw(engine, "flux")
        assert image.backend == second.label
        assert len(space.joins("g4f-flux")) == asked
        assert any("out of GPU quota until" in i.status for i in items if isinstance(i, Reasoning))

        # A member with a token of their own spends their own quota: the Space is theirs.
        _, image = await draw(engine, "flux", hf_token="hf_member_own_token")
        assert len(space.joins("g4f-flux")) == asked + 1  # refused again: it is faulted
        assert engine.rests.resting(first.name, account_of("hf_member_own_token")) is not None

        # Once the time has come, the first backend is asked again.
        space.clear_faults()
        now[0] += 10
        _, image = await draw(engine, "flux")
        assert image.backend == first.label
        assert len(space.joins("g4f-flux")) == asked + 2


async def test_every_space_out_of_quota_the_horde_draws_and_no_space_is_asked(space, horde):
    """flux's Spaces all refuse for quota: the Horde's FLUX model (last behind flux) draws,
    the reply names it, and until the reset no request reaches either Space."""
    for name in ("g4f-flux", "flux-schnell"):
        space.set_fault(name, QuotaExceeded(REFUSAL))
    async with Engine(all_backends(space, horde)) as engine:
        labels = [b.label for b in engine.table.backends_for("flux")]
        assert labels[-1] == engine.table.backends["horde"].label
        items, image = await draw(engine, "flux")
        assert image.backend == labels[-1]
        notices = [i.status for i in items if isinstance(i, Reasoning) and "quota" in i.status]
        assert notices[-1].endswith(f"{labels[-1]} draws instead")
        asked = len(space.requests)
        submits = len(horde.submits())
        for _ in range(2):
            items, image = await draw(engine, "flux")
            assert image.backend == labels[-1]
        assert len(space.requests) == asked  # not one request to a resting Space
        assert len(horde.submits()) == submits + 2
        assert any("out of GPU quota until" in i.status for i in items if isinstance(i, Reasoning))


async def test_every_backend_out_of_quota_fails_clearly_and_sends_nothing_more(space):
    for name in ("g4f-flux", "flux-schnell"):
        space.set_fault(name, QuotaExceeded(REFUSAL))
    async with Engine(all_backends(space)) as engine:
        from imagine.errors import QuotaExceeded as Refused

        with pytest.raises(Refused) as first:
            await draw(engine, "flux")
        asked = len(space.requests)
        with pytest.raises(Refused) as again:
            await draw(engine, "flux")
        assert len(space.requests) == asked  # not one request to a resting Space
        assert "out of GPU quota" in str(again.value)
        assert again.value.retry_after == pytest.approx(RESTED, abs=5)
        assert first.value.retry_after is not None


async def test_rests_are_shared_by_every_process_through_the_database(space, database_url):
    """A worker that met the refusal keeps it; another process adopts it and sends nothing."""
    space.set_fault("g4f-flux", QuotaExceeded(REFUSAL))
    here, there = await Store.open(database_url), await Store.open(database_url)
    try:
        async with Engine(all_backends(space)) as met, Engine(all_backends(space)) as other:
            sharing = SharedRests(met.rests, here)
            await draw(met, "flux")
            await sharing.close()  # kept (in the background: waited for here)
            (kept,) = await there.quota_rests()
            assert (kept.backend, kept.account) == ("g4f-flux", BOT_ACCOUNT)
            assert kept.until == pytest.approx(time.time() + RESTED, abs=5)
            assert "quota" in str(kept.reason)
            await SharedRests(other.rests, there).refresh()
            asked = len(space.joins("g4f-flux"))
            _, image = await draw(other, "flux")
            assert image is not None and len(space.joins("g4f-flux")) == asked
            # A shorter rest learned later does not cut the kept one; expired ones go.
            await here.save_rest(Rest("g4f-flux", BOT_ACCOUNT, time.time() + 5))
            await here.save_rest(Rest("flux-schnell", BOT_ACCOUNT, time.time() - 1))
            assert [r.until for r in await there.quota_rests()] == [kept.until]
    finally:
        await here.close()
        await there.close()


async def test_the_reply_says_until_when_and_admins_see_the_rests(tmp_path):
    async with running_bot(tmp_path, all_backends=True) as h:
        h.space.set_fault("g4f-flux", QuotaExceeded(REFUSAL))
        h.space.generation_delay = 1.5  # long enough for the notice to be shown
        reply = await h.final(await h.slash({"prompt": "a lighthouse"}), 30)
        assert reply.attachments
        shown = [v.get("content") or "" for v in reply.versions]
        notice = next(text for text in shown if "out of GPU quota" in text)
        assert "<t:" in notice and ":R>" in notice  # Discord shows "in 9 minutes"
        assert "FLUX.1-schnell" in notice  # which backend draws instead

        admin = {"user": h.admin, "guild_id": h.guild.id, "permissions": MANAGE_GUILD}
        show = await h.discord.send_slash("imagine-config", {}, subcommand="show", **admin)
        callback = await show.wait_callback(5)
        fields = {f["name"]: f["value"] for f in callback["data"]["embeds"][0]["fields"]}
        assert "the bot's account" in fields["GPU quota"]
        assert "<t:" in fields["GPU quota"]

        # The rest outlives a restart: the next job sends nothing to the Space.
        await h.stop_bot()
        await h.start_bot()
        asked = len(h.space.joins("g4f-flux"))
        again = await h.final(await h.slash({"prompt": "a second lighthouse"}), 30)
        assert again.attachments and len(h.space.joins("g4f-flux")) == asked

        # --check reads them too.
        env = {**os.environ, **h.env}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "imagine", "--check"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "GPU quota rests: 1" in done.stdout, done.stdout + done.stderr
        assert "g4f-flux" in done.stdout.split("GPU quota rests")[1]
