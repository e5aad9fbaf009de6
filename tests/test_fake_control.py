"""The fakes' control APIs, used by benchmarks that run each fake in its own process.

The fake Discord runs as ``python -m tests.fakes.discord_server`` in a subprocess and is
driven over HTTP only; the fake Space's completion records are checked in-process, through
the real engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from imagine.engine import Engine
from imagine.responses import ImageResponse
from tests.conftest import space_settings
from tests.fakes.space import FakeSpace

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
        assert info["rest_base"] == ready["rest_base"]

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
