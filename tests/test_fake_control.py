"""The fakes' control APIs, used by benchmarks that run each fake in its own process.

The fake Discord runs as ``python -m tests.fakes.discord_server`` in a subprocess and is
driven over HTTP only; the fake Space's completion records are checked in-process, through
the real engine. What ``bench.soak`` adds is checked too: the Space's ``failure_rate`` knob
(and its ``--failure-rate`` flag), and the fake Discord's ``drop_gateway``, ``gateway`` (an
outage) and ``replies`` control routes, with a real discord.py client connected to an
in-process fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bench._fakes import fake_process
from imagine.engine import Engine
from imagine.errors import ImagineError
from imagine.responses import ImageResponse
from tests.conftest import space_settings
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.space import RANDOM_FAILURES, FakeSpace, fault_kind

pytestmark = pytest.mark.timeout(20)
ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def discord_process() -> AsyncIterator[tuple[dict, asyncio.subprocess.Process]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.discord_server",
        "--port",
        "0",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line, "the fake exited before it was ready"
        yield json.loads(line), process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_control_api_drives_the_fake_from_another_process():
    async with discord_process() as (ready, process), aiohttp.ClientSession() as http:
        control = ready["control"]
        assert ready["rest_base"].endswith("/api/v10")
        assert ready["gateway_url"].startswith("ws://127.0.0.1:")

        async def call(method: str, path: str, body=None, status: int = 200):
            async with http.request(method, control + path, json=body) as response:
                data = await response.json()
                assert response.status == status, data
                return data

        info = await call("GET", "/info")
        assert info["ready"] is False and info["commands"] == []
        assert info["ready_sessions"] == 0
        assert info["rest_base"] == ready["rest_base"]

        # Servers spread over shards (bench.scale): server i on shard i % shards.
        spread = (await call("POST", "/guilds", {"names": list("abcd"), "shards": 2}))["guilds"]
        assert [(int(g["id"]) >> 22) % 2 for g in spread] == [0, 1, 0, 1]

        (guild,) = (await call("POST", "/guilds", {"names": ["Bench"]}))["guilds"]
        assert guild["name"] == "Bench" and guild["channel_id"]
        users = (
            await call(
                "POST",
                "/users",
                {"users": [{"name": f"user{i}", "guild_ids": [guild["id"]]} for i in range(3)]},
            )
        )["users"]
        assert [u["username"] for u in users] == ["user0", "user1", "user2"]
        member = await call(
            "POST", "/members", {"guild_id": guild["id"], "user_ids": [users[0]["id"]]}
        )
        assert member == {"guild_id": guild["id"], "members": 1}

        # No bot is connected: the interactions are queued for the first session, unanswered.
        before = time.monotonic()
        one = await call(
            "POST",
            "/slash",
            {
                "name": "imagine",
                "options": {"prompt": "a fox"},
                "user_id": users[0]["id"],
                "guild_id": guild["id"],
            },
        )
        batch = await call(
            "POST",
            "/slash",
            [
                {"name": "imagine", "options": {"prompt": f"fox {i}"}, "user_id": u["id"]}
                for i, u in enumerate(users[1:])
            ],
        )
        after = time.monotonic()
        assert isinstance(batch, list) and len(batch) == 2
        ids = [one["id"], *(b["id"] for b in batch)]
        # One clock for the machine (CLOCK_MONOTONIC): the fake's times fall within ours.
        assert before <= one["created_at"] <= batch[0]["created_at"] <= after

        result = await call("GET", f"/interactions?ids={','.join(ids)}&wait=0.3&until=callback")
        assert result["timed_out"] is True  # nobody answers
        assert result["count_429"] == 0 and result["now"] >= after
        records = result["interactions"]
        assert [r["id"] for r in records] == ids
        for record in records:
            assert record["type"] == 2
            assert record["callback_at"] is None and record["ack_latency"] is None
            assert record["callback_type"] is None and record["original_id"] is None
            assert record["delivered_at"] is None  # queued: no gateway session yet
            assert record["edits"] == [] and record["errors"] == [] and record["count_429"] == 0
        assert records[0]["guild_id"] == guild["id"] and records[1]["guild_id"] is None
        assert records[0]["user_id"] == users[0]["id"]
        posted = await call("POST", "/interactions", {"ids": ids[:1]})
        assert [r["id"] for r in posted["interactions"]] == ids[:1]
        assert len((await call("GET", "/interactions"))["interactions"]) == 3

        # Bad input is a 400 that says what is wrong, and sends nothing.
        bad = await call("POST", "/slash", {"name": "imagine", "user_id": "1"}, status=400)
        assert "unknown user" in bad["error"]
        bad = await call("GET", "/interactions?ids=12345", status=400)
        assert "unknown interaction" in bad["error"]
        await call("POST", "/users", {"users": [{"name": "x", "guild_ids": ["99"]}]}, status=400)

        # The Discord API beside it is unchanged, and control calls are not in its records.
        async with http.get(ready["rest_base"] + "/gateway") as response:
            assert (await response.json())["url"] == ready["gateway_url"]
        stats = await call("GET", "/stats")
        assert stats["requests"] == {"GET /gateway 200": 1}
        assert stats["internal_errors"] == [] and stats["unknown_routes"] == []

        process.terminate()
        assert await asyncio.wait_for(process.wait(), 5) == 0


@pytest.mark.parametrize(("model", "space_name"), [("flux", "g4f-flux"), ("flux-dev", "flux-dev")])
async def test_space_records_when_each_result_was_sent(model, space_name):
    async with FakeSpace(generation_delay=0.1) as space:
        async with Engine(space_settings(space)) as engine:
            started = time.monotonic()
            seen_at = None
            async for item in engine.generate(model, prompt=f"a {model} fox", seed=5):
                if isinstance(item, ImageResponse):
                    seen_at = time.monotonic()
        assert seen_at is not None
        (completion,) = space.completions
        assert completion.space == space_name
        assert completion.prompt == f"a {model} fox" and completion.seed == 5
        assert completion.session_hash
        assert started + 0.1 <= completion.at <= seen_at
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{space.url}/_control/completions") as response,
        ):
            data = await response.json()
        assert data["completions"] == [completion.to_json()]
        assert data["now"] >= completion.at
        assert not any(r.path.startswith("/_control") for r in space.requests)


# ------------------------------------------------------------ the Space's failure_rate knob


async def _draw(engine: Engine, model: str, prompt: str) -> bool:
    """One job through the real engine (it retries a transient failure once): drawn?"""
    try:
        async for item in engine.generate(model, prompt=prompt, width=256, height=256, seed=5):
            if isinstance(item, ImageResponse):
                return True
    except ImagineError:
        return False
    return False


async def test_failure_rate_fails_about_that_share_of_requests_and_only_those(tmp_path):
    space = FakeSpace(failure_rate=0.25, failure_seed=3)
    async with space, Engine(space_settings(space, tmp_path)) as engine:
        engine.retry_backoff = 0.0
        jobs = [(("flux", "flux-dev")[i % 2], f"job {i}") for i in range(80)]
        drawn = await asyncio.gather(*(_draw(engine, m, p) for m, p in jobs))

    requests = [
        (r.space, str(r.json["data"][0]))
        for name in ("g4f-flux", "flux-dev")
        for r in space.joins(name)
    ]
    share = len(space.failures) / len(requests)
    assert 0.15 <= share <= 0.35, (len(space.failures), len(requests))
    assert {f.kind for f in space.failures} == {fault_kind(f) for f in RANDOM_FAILURES}
    failed = Counter((f.space, f.prompt) for f in space.failures)
    completed = Counter((c.space, c.prompt) for c in space.completions)
    # Every generation request either failed on purpose or produced its image: nothing else.
    assert Counter(requests) == failed + completed
    assert max(completed.values()) == 1
    for (model, prompt), ok in zip(jobs, drawn, strict=True):
        key = ("g4f-flux" if model == "flux" else "flux-dev", prompt)
        assert ok == (completed[key] == 1)
        if not failed[key]:
            assert ok  # a job the knob left alone is drawn at the first try
        attempts = [f.attempt for f in space.failures if (f.space, f.prompt) == key]
        assert attempts == list(range(len(attempts)))  # one record per failing attempt
    assert not all(drawn) and any(failed[k] and completed[k] for k in failed)  # some retried

    # Seeded by prompt and attempt: the same requests fail again, in any order.
    again = FakeSpace(failure_rate=0.25, failure_seed=3)
    for space_name, prompt in reversed(requests):
        again._random_failure(space_name, [prompt])
    key = lambda f: (f.space, f.prompt, f.attempt, f.kind)  # noqa: E731
    assert sorted(map(key, again.failures)) == sorted(map(key, space.failures))


async def test_failure_rate_is_a_per_space_knob_and_a_cli_flag(tmp_path):
    async with FakeSpace() as space:
        space.set_knobs("flux-dev", failure_rate=1.0)
        async with Engine(space_settings(space, tmp_path)) as engine:
            engine.retry_backoff = 0.0
            assert await _draw(engine, "flux", "left alone")
            assert not await _draw(engine, "flux-dev", "always fails")
        assert {f.space for f in space.failures} == {"flux-dev"}
        assert [c.prompt for c in space.completions] == ["left alone"]
    with pytest.raises(ValueError, match="failure_rate"):
        FakeSpace(failure_rate=1.5)

    async with fake_process("tests.fakes.space", "--port", "0", "--failure-rate", "1") as ready:
        body = {
            "data": ["from the CLI", 7, 256, 256, True, 1],
            "fn_index": 3,
            "trigger_id": 10,
            "session_hash": "abc",
        }
        async with aiohttp.ClientSession() as http:
            try:
                async with http.post(ready["env"]["G4F_FLUX_URL"], json=body) as response:
                    failed_with: int | None = response.status
            except aiohttp.ClientError:
                failed_with = None  # a StreamBreak cuts the connection
            async with http.get(f"{ready['url']}/_control/completions") as response:
                records = await response.json()
    assert records["completions"] == []
    (failure,) = records["failures"]
    assert failure["space"] == "g4f-flux" and failure["prompt"] == "from the CLI"
    assert failure["attempt"] == 0
    expected = {"ServerError(503)": 503, "CompletedError": 500, "StreamBreak": None}
    assert failed_with == expected[failure["kind"]]


# ------------------------------------------------ the fake Discord's drop and replies routes


class _Client(discord.Client):
    """A real discord.py client: /ping defers, then edits its reply (embed + button)."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready = asyncio.Event()

        @self.tree.command(name="ping", description="Defer, then an embed and a button")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            view = discord.ui.View()
            view.add_item(discord.ui.Button(label="Retry", custom_id="imagine:retry:1"))
            embed = discord.Embed(title="Couldn't make this image", description="CUDA OOM")
            await interaction.edit_original_response(embed=embed, view=view)
            await interaction.followup.send("and a followup")

    async def on_ready(self) -> None:
        self.ready.set()


@asynccontextmanager
async def _connected(fake: FakeDiscord) -> AsyncIterator[_Client]:
    client = _Client()
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = fake.rest_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    runner = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.ready.wait(), 10)
        await client.tree.sync()
        yield client
    finally:
        await client.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(runner, 5)
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


async def test_drop_gateway_route_drops_the_connection_and_the_client_resumes():
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        guild = fake.add_guild()

        async def control(path: str, body: object, status: int = 200) -> dict:
            async with http.post(fake.control_url + path, json=body) as response:
                data = await response.json()
                assert response.status == status, data
                return data

        nobody = await control("/drop_gateway", {"code": None})
        assert nobody == {"dropped": 0, "resumes": 0, "identifies": 0, "gateway_connects": 0}
        await control("/drop_gateway", {"code": "4000"}, status=400)
        async with _connected(fake):
            before = await control("/drop_gateway", {"code": None})  # a TCP abort
            assert before == {"dropped": 1, "resumes": 0, "identifies": 1, "gateway_connects": 1}
            await fake.wait_until(lambda: fake.resumes == 1, 5)
            before = await control("/drop_gateway", {"code": 4000})
            assert before == {"dropped": 1, "resumes": 1, "identifies": 1, "gateway_connects": 2}
            await fake.wait_until(lambda: fake.resumes == 2, 5)
            assert fake.identifies == 1 and fake.gateway_connects == 3

            # The connection is back: an interaction is answered, and /replies shows it.
            interaction = await fake.send_slash(
                "ping", {}, user=fake.add_user("alice"), guild_id=guild.id
            )
            await interaction.wait_for(lambda i: len(i.followups) == 1, timeout=5)
            (reply,) = (await control("/replies", {"ids": [str(interaction.id)]}))["replies"]
        assert reply["id"] == str(interaction.id) and reply["callback_type"] == 5
        original = reply["original"]
        assert original["embeds"] == [
            {"title": "Couldn't make this image", "description": "CUDA OOM"}
        ]
        assert original["buttons"] == [
            {"label": "Retry", "custom_id": "imagine:retry:1", "disabled": False}
        ]
        assert original["attachments"] == 0 and original["deleted"] is False
        assert original["content"] == "" and original["edits"] == 1
        assert [f["content"] for f in reply["followups"]] == ["and a followup"]
        everything = (await control("/replies", {}))["replies"]
        assert [r["id"] for r in everything] == [str(interaction.id)]
        await control("/replies", {"ids": ["12345"]}, status=400)
        stats = await (await http.get(fake.control_url + "/stats")).json()
        assert stats["resumes"] == 2 and stats["count_429"] == 0


async def test_gateway_route_holds_connections_through_an_outage_then_the_client_resumes():
    """``POST /_control/gateway {"up": false}``: the connection drops and the client's
    reconnection is held (no HELLO) for as long as the outage lasts: the client stays
    disconnected; ``{"up": true}``: it gets its HELLO and RESUMEs the same session."""
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:

        async def control(body: object, status: int = 200) -> dict:
            async with http.post(fake.control_url + "/gateway", json=body) as response:
                data = await response.json()
                assert response.status == status, data
                return data

        await control({"up": "no"}, status=400)
        await control({"up": False, "code": "4000"}, status=400)
        async with _connected(fake) as client:
            down = await control({"up": False})
            assert down == {"down": True, "held": 0, "resumes": 0, "identifies": 1}
            await fake.wait_until(lambda: fake.gateway.held == 1, 5)  # the client came back
            await asyncio.sleep(0.5)  # ... and is still held, not connected
            assert client.ws is None or not client.ws.open
            assert fake.resumes == 0 and fake.gateway.held == 1
            up = await control({"up": True})
            assert up["down"] is False
            await fake.wait_until(lambda: fake.resumes == 1, 5)
            await fake.wait_until(lambda: client.ws is not None and client.ws.open, 5)
            assert fake.identifies == 1 and fake.gateway.held == 0
