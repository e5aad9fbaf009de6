"""Issue 19: metrics, health and readiness in every process, read as Prometheus reads them.

The real bot (and, on PostgreSQL, a real ``python worker.py``) runs with ``METRICS_PORT=0``
(any free port) against the fakes; the tests run jobs through them, then fetch ``/metrics``
over HTTP and parse it with prometheus-client's own parser, and watch ``/readyz`` while the
fake Discord's gateway is down."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagine.errors import BadInput
from imagine.settings import Settings
from tests.fakes.discord.protocol import API_PREFIX
from tests.fakes.space import CompletedError, ServerError
from tests.harness import Harness, running_bot
from tests.test_worker_mode import Workers, eventually, worker_env

Labels = tuple[tuple[str, str], ...]


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def scrape(base: str) -> dict[str, dict[Labels, float]]:
    """Every sample of ``/metrics``, by sample name, then by its labels."""
    status, text = await fetch(base + "/metrics")
    assert status == 200, text
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def by(samples: dict[Labels, float], *names: str) -> dict[tuple[str, ...], float]:
    """The samples keyed by the values of the labels ``names`` (in that order)."""
    return {tuple(dict(labels)[n] for n in names): value for labels, value in samples.items()}


def base_of(h: Harness) -> str:
    assert h.bot is not None and h.bot.ops is not None
    return f"http://127.0.0.1:{h.bot.ops.port}"


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


def test_metrics_settings():
    assert Settings.from_env({}).metrics_port is None  # off unless asked
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    chosen = Settings.from_env({"METRICS_PORT": "9108", "METRICS_HOST": "0.0.0.0"})
    assert (chosen.metrics_port, chosen.metrics_host) == (9108, "0.0.0.0")
    assert Settings.from_env({"METRICS_PORT": "0"}).metrics_port == 0
    for bad in ("http", "70000", "-1", "9108.5"):
        with pytest.raises(BadInput, match="METRICS_PORT"):
            Settings.from_env({"METRICS_PORT": bad})


async def test_one_process_counts_every_job_by_model_backend_and_outcome(tmp_path):
    """Jobs that end every way, then ``/metrics``: each job counted once with its model, the
    backend that drew it (or failed it) and its ending; their times; the queue; the state of
    each backend; every request the bot sent Discord by status, 429s included."""
    async with running_bot(tmp_path, horde=True, METRICS_PORT="0") as h:
        base = base_of(h)
        # Done on the first backend, and on the AI Horde (whose wait is announced).
        await h.final(await h.slash({"prompt": "a red fox", "model": "flux"}))
        await h.final(await h.slash({"prompt": "a lighthouse", "model": "horde:Deliberate"}))
        # A DM under a global rate limit of 1 request a second: Discord answers 429s.
        h.discord.global_limit = 1
        channel = h.discord.dm_channel_for(h.alice)
        h.discord.post_user_message(channel, h.alice, "a tiny robot")

        def dm_done():
            replies = [m for m in h.discord.channel_history(channel) if m in h.bot_messages()]
            return replies and replies[-1].embeds

        await h.discord.wait_until(dm_done, 30)
        h.discord.global_limit = 50
        assert h.discord.count_429 >= 1
        # Failed: FLUX.1-dev's Space refuses the job itself (not transient: no failover).
        h.space.set_fault("flux-dev", CompletedError("CUDA out of memory"), times=1)
        failed = await h.final(await h.slash({"prompt": "a blue bird", "model": "flux-dev"}))
        assert "CUDA out of memory" in failed.embeds[0]["description"]
        # Cancelled while it draws; the queue gauges see it running first.
        h.space.generation_delay = 30
        slow = await h.slash({"prompt": "a slow painting", "model": "flux-dev"}, user=h.bob)
        running = await h.discord.wait_until(
            lambda: slow.original and slow.original.components and slow.original, 10
        )
        during = await scrape(base)
        assert during["imagine_jobs_running"] == {(): 1.0}
        assert during["imagine_queue_waiting"] == {(): 0.0}
        await h.discord.press_button(running, buttons(running)[0], user=h.bob)
        assert (await h.final(slow)).content.startswith("Cancelled by bob")
        h.space.generation_delay = 0
        # The first flux backend breaks (503): its breaker opens, the Horde draws instead.
        h.space.set_fault("g4f-flux", ServerError(503))
        fallen = await h.final(await h.slash({"prompt": "a green owl", "model": "flux"}))
        assert "AI Horde" in fallen.embeds[0]["footer"]["text"]
        await asyncio.sleep(0.3)  # the job log's last writes, the last edits' answers

        m = await scrape(base)
        assert by(m["imagine_jobs_total"], "model", "backend", "outcome") == {
            ("flux", "g4f-flux", "done"): 2.0,  # the fox and the DM's robot
            ("horde:Deliberate", "horde", "done"): 1.0,
            ("flux-dev", "g4f-flux-dev", "failed"): 1.0,
            ("flux-dev", "none", "cancelled"): 1.0,
            ("flux", "horde", "done"): 1.0,
        }
        assert by(m["imagine_job_seconds_count"], "outcome") == {
            ("done",): 4.0,
            ("failed",): 1.0,
            ("cancelled",): 1.0,
        }
        assert m["imagine_queue_wait_seconds_count"] == {(): 6.0}
        assert m["imagine_jobs_running"] == {(): 0.0}
        assert m["imagine_queue_waiting"] == {(): 0.0}
        # Backends: each attempt by how it went; g4f-flux failed once and is down now.
        tried = by(m["imagine_backend_attempts_total"], "backend", "outcome")
        assert tried == {
            ("g4f-flux", "ok"): 2.0,
            ("g4f-flux", "error"): 1.0,
            ("g4f-flux-dev", "error"): 1.0,
            ("horde", "ok"): 2.0,
        }
        answered = by(m["imagine_backend_seconds_count"], "backend")  # the oks' latency
        assert answered == {("g4f-flux",): 2.0, ("horde",): 2.0}
        state = by(m["imagine_backend_state"], "backend")
        assert state.pop(("g4f-flux",)) == 2.0  # down: its breaker is open
        assert {("g4f-flux-dev",), ("horde",)} <= set(state) and set(state.values()) == {0.0}
        assert set(by(m["imagine_quota_rests"], "backend", "account").values()) == {0.0}
        # The Horde announced its wait once per job it drew, from its first check.
        assert m["imagine_horde_wait_seconds_count"] == {(("backend", "horde"),): 2.0}
        assert 1.0 <= m["imagine_horde_wait_seconds_sum"][(("backend", "horde"),)] <= 6.0
        # Discord: every answer the fake gave the bot's REST calls, by status, 429s too.
        counted = by(m["imagine_discord_requests_total"], "status")
        answered = Counter(
            str(r.status) for r in h.discord.requests if r.url.startswith(API_PREFIX)
        )
        assert {s: v for (s,), v in counted.items() if s != "101"} == dict(answered)
        assert counted[("429",)] == h.discord.count_429
        assert counted[("101",)] == 1.0  # one gateway connection
        assert m["imagine_ready"] == {(): 1.0}
        assert m["process_resident_memory_bytes"][()] > 0


async def test_readyz_follows_the_gateway_and_healthz_the_loop(tmp_path):
    """``/readyz`` is 503 while Discord's gateway is down and 200 again once the bot has
    resumed; ``/healthz`` answers 200 all along; without METRICS_PORT nothing listens."""
    async with running_bot(tmp_path, METRICS_PORT="0") as h:
        base = base_of(h)
        assert await fetch(base + "/readyz") == (200, "ready\n")
        assert await fetch(base + "/healthz") == (200, "ok\n")
        await h.discord.take_gateway_down()
        down = await eventually(lambda: _not_ready(base), 10)
        assert down == "not ready: shard 0 is not connected to Discord's gateway\n"
        assert await fetch(base + "/healthz") == (200, "ok\n")
        assert (await scrape(base))["imagine_ready"] == {(): 0.0}
        await asyncio.sleep(1.0)  # still down while the outage lasts
        assert (await fetch(base + "/readyz"))[0] == 503
        assert h.discord.resumes == 0
        h.discord.bring_gateway_up()
        await eventually(lambda: _ready(base), 15)
        assert h.discord.resumes == 1 and h.discord.identifies == 1  # resumed, not anew
        assert await fetch(base + "/healthz") == (200, "ok\n")
        await asyncio.sleep(1.1)  # past the scrape's cached readiness
        assert (await scrape(base))["imagine_ready"] == {(): 1.0}
        done = await h.final(await h.slash({"prompt": "after the outage"}))
        assert done.attachments
    (tmp_path / "off").mkdir()
    async with running_bot(tmp_path / "off") as h:
        assert h.bot is not None and h.bot.ops is None


async def _not_ready(base: str) -> str | None:
    status, text = await fetch(base + "/readyz")
    return text if status == 503 else None


async def _ready(base: str) -> bool:
    return (await fetch(base + "/readyz"))[0] == 200


async def test_gateway_and_worker_each_serve_their_own_metrics(tmp_path, postgres_url):
    """On PostgreSQL: the gateway (this process) and a ``python worker.py`` each serve their
    own pages on their own port. The worker drew the jobs, so it counts them; the gateway
    counts none; both see the shared queue empty at the end, and both are ready."""
    env = worker_env(METRICS_PORT="0")
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **env) as h:
        workers = Workers(h, tmp_path)
        try:
            worker = workers.start()
            port = await eventually(lambda: _port_in(workers.log(worker)), 30)
            worker_base = f"http://127.0.0.1:{port}"
            await eventually(lambda: _ready(worker_base), 30)
            asked = [
                await h.slash({"prompt": f"shared painting {i}"}, user=user)
                for i, user in enumerate((h.alice, h.bob))
            ]
            h.space.set_fault("flux-dev", CompletedError("CUDA out of memory"), times=1)
            failing = await h.slash({"prompt": "a doomed one", "model": "flux-dev"}, user=h.admin)
            for interaction in asked:
                assert (await h.final(interaction, within=40)).attachments
            failed = await h.final(failing, within=40)
            assert "CUDA out of memory" in failed.embeds[0]["description"]

            async def counted() -> dict[str, dict[Labels, float]] | None:
                m = await scrape(worker_base)
                jobs = by(m.get("imagine_jobs_total", {}), "model", "backend", "outcome")
                return m if sum(jobs.values()) == 3 else None

            w = await eventually(counted, 10)
            assert by(w["imagine_jobs_total"], "model", "backend", "outcome") == {
                ("flux", "g4f-flux", "done"): 2.0,
                ("flux-dev", "g4f-flux-dev", "failed"): 1.0,
            }
            assert w["imagine_queue_wait_seconds_count"] == {(): 3.0}
            assert w["imagine_ready"] == {(): 1.0}
            worker_discord = by(w["imagine_discord_requests_total"], "status")
            assert worker_discord.get(("200",), 0) > 0  # its edits of the replies
            assert ("101",) not in worker_discord  # a worker never opens the gateway

            g = await scrape(base_of(h))
            assert g.get("imagine_jobs_total", {}) == {}  # the gateway drew nothing
            assert g["imagine_ready"] == {(): 1.0}

            async def queue_empty(base: str) -> bool:
                m = await scrape(base)
                return m["imagine_queue_waiting"] == {(): 0.0} and m["imagine_jobs_running"] == {
                    (): 0.0
                }

            await eventually(lambda: queue_empty(worker_base), 10)
            await eventually(lambda: queue_empty(base_of(h)), 10)
            assert await fetch(worker_base + "/healthz") == (200, "ok\n")
            assert await fetch(worker_base + "/readyz") == (200, "ready\n")
        finally:
            await workers.stop_all()


def _port_in(log: str) -> int | None:
    found = re.search(r"metrics, health and readiness on http://127\.0\.0\.1:(\d+)", log)
    return int(found.group(1)) if found else None
