"""Tests of the FakeSpace fixture itself, with plain aiohttp (no engine code).

Why: the engine's tests trust this fake to speak the hub and gradio protocols faithfully
and to fail exactly as its fault knobs say; a silently broken fake would hide engine bugs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.fakes.space import (
    CompletedError,
    FakeSpace,
    GoSilent,
    Hang,
    HtmlError,
    JsonError,
    MalformedJson,
    NotAnImage,
    OtherHost,
    Oversize,
    QuotaExceeded,
    RedirectOtherHost,
    ServerError,
    StreamBreak,
    TextError,
    decode_jwt_payload,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def space() -> AsyncIterator[FakeSpace]:
    async with FakeSpace() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def flux_dev_body(session_hash: str = "s1", **changes: Any) -> dict[str, Any]:
    data = ["a red fox", 42, False, 1000, 776, 3.5, 28]
    body = {
        "data": data,
        "event_data": None,
        "fn_index": 2,
        "trigger_id": 4,
        "session_hash": session_hash,
    }
    for index, value in changes.pop("data_at", {}).items():
        data[index] = value
    return body | changes


def janus_body(session_hash: str = "j1") -> dict[str, Any]:
    return {
        "data": ["a lighthouse", 7, 5, 1],
        "event_data": None,
        "fn_index": 3,
        "trigger_id": 20,
        "session_hash": session_hash,
    }


def predict_body(width: int = 512, height: int = 384, seed: int = 5) -> dict[str, Any]:
    return {
        "data": ["a cat", seed, width, height, True, 1],
        "event_data": None,
        "fn_index": 3,
        "trigger_id": 10,
        "session_hash": "p1",
    }


async def join(
    http: aiohttp.ClientSession, base: str, body: dict[str, Any], **kw: Any
) -> tuple[int, Any]:
    async with http.post(f"{base}/gradio_api/queue/join", json=body, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def read_stream(
    http: aiohttp.ClientSession, base: str, session_hash: str, limit: int | None = None
) -> list[Any]:
    """SSE messages as parsed JSON (or raw text when a line is not JSON)."""
    messages: list[Any] = []
    url = f"{base}/gradio_api/queue/data"
    async with http.get(url, params={"session_hash": session_hash}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            try:
                messages.append(json.loads(line[6:]))
            except ValueError:
                messages.append(line)
            if limit is not None and len(messages) >= limit:
                break
    return messages


async def run_flux_dev(http: aiohttp.ClientSession, space: FakeSpace, **changes: Any) -> list[Any]:
    status, answer = await join(http, space.flux_dev_url, flux_dev_body(**changes))
    assert status == 200, answer
    return await read_stream(http, space.flux_dev_url, flux_dev_body(**changes)["session_hash"])


async def fetch_png(http: aiohttp.ClientSession, url: str) -> tuple[bytes, Image.Image]:
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        data = await resp.read()
    return data, Image.open(BytesIO(data))


def names(messages: list[Any]) -> list[str]:
    return [m["msg"] if isinstance(m, dict) else "<raw>" for m in messages]


# --------------------------------------------------------------------------- hub


async def test_page_token_and_jwt_route(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{space.hub_url}/spaces/black-forest-labs/FLUX.1-dev") as resp:
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert len(page) > 2000
    token = re.search(r"&quot;token&quot;:&quot;([^&]+?)&quot;", page)
    uuid_ = re.search(r"&quot;sessionUuid&quot;:&quot;([^&]+?)&quot;", page)
    assert token and uuid_
    claims = decode_jwt_payload(token.group(1))
    assert claims["sub"] == "/spaces/black-forest-labs/FLUX.1-dev"
    assert claims["exp"] > time.time() + 500
    assert claims["onBehalfOf"]["kind"] == "anonymous"
    assert space.page_fetches["black-forest-labs/FLUX.1-dev"] == 1

    jwt_url = f"{space.hub_url}/api/spaces/black-forest-labs/FLUX.1-dev/jwt"
    async with http.get(jwt_url) as resp:
        assert resp.status == 401
        assert await resp.json() == {"error": "Invalid credentials in Authorization header"}
    async with http.get(jwt_url, headers={"Authorization": "Bearer hf_secret"}) as resp:
        assert resp.status == 200
        jwt = (await resp.json())["token"]
    assert decode_jwt_payload(jwt)["user"] == "fake-user"
    assert space.jwt_fetches["black-forest-labs/FLUX.1-dev"] == 2
    assert space.jwt_bearers == ["hf_secret"]
    assert {token.group(1), jwt} <= set(space.issued_tokens)


async def test_hub_whoami_names_known_accounts_and_their_jwts_are_theirs(
    space: FakeSpace, http: aiohttp.ClientSession
):
    space.add_hub_user("ada", "hf_adas_token", pro=True)
    whoami = f"{space.hub_url}/api/whoami-v2"
    async with http.get(whoami, headers={"Authorization": "Bearer hf_adas_token"}) as resp:
        assert resp.status == 200
        account = await resp.json()
    assert (account["name"], account["type"], account["isPro"]) == ("ada", "user", True)
    for headers in ({"Authorization": "Bearer hf_unknown"}, {}):
        async with http.get(whoami, headers=headers) as resp:
            assert resp.status == 401
    assert space.whoami_bearers == ["hf_adas_token", "hf_unknown", ""]

    jwt_url = f"{space.hub_url}/api/spaces/roxky/FLUX.1-dev/jwt"
    async with http.get(jwt_url, headers={"Authorization": "Bearer hf_adas_token"}) as resp:
        jwt = (await resp.json())["token"]
    claims = decode_jwt_payload(jwt)
    assert claims["user"] == "ada" and claims["onBehalfOf"]["isPro"] is True
    issued = space.issued_for(jwt)
    assert issued is not None and (issued.bearer, issued.user) == ("hf_adas_token", "ada")
    async with http.get(jwt_url, headers={"Authorization": "Bearer hf_other"}) as resp:
        other = space.issued_for((await resp.json())["token"])
    assert other is not None and (other.bearer, other.user) == ("hf_other", None)


# ------------------------------------------------------------------- run/predict


async def test_run_predict_serves_png_of_requested_size(
    space: FakeSpace, http: aiohttp.ClientSession
) -> None:
    async with http.post(space.flux_predict_url, json=predict_body(512, 384, seed=5)) as resp:
        assert resp.status == 200
        answer = await resp.json()
    file_data, seed = answer["data"]
    assert seed == 5 and answer["is_generating"] is False
    assert file_data["meta"] == {"_type": "gradio.FileData"}
    assert file_data["url"] == f"{space.url}/g4f-flux/file={file_data['path']}"
    data, image = await fetch_png(http, file_data["url"])
    assert image.size == (512, 384)
    assert space.served[-1].bytes == data == space.images_by_url[file_data["url"]]
    assert space.joins("g4f-flux")[0].json["fn_index"] == 3


async def test_run_predict_validates(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    for body in (predict_body(500, 384), {**predict_body(), "fn_index": 2}):
        async with http.post(space.flux_predict_url, json=body) as resp:
            assert resp.status == 422
            assert "error" in await resp.json()


# ------------------------------------------------------------------ queue Spaces


async def test_flux_dev_event_sequence_and_image(
    space: FakeSpace, http: aiohttp.ClientSession
) -> None:
    space.log_lines = ["Loading pipeline"]
    messages = await run_flux_dev(http, space)
    # Previews come while the steps run (FLUX.1-dev streams them): after steps 1 and 2 of 4.
    assert names(messages) == [
        "estimation",
        "process_starts",
        "log",
        "progress",
        "process_generating",
        "progress",
        "process_generating",
        "progress",
        "progress",
        "process_completed",
        "close_stream",
    ]
    event_id = messages[0]["event_id"]
    assert all(m["event_id"] == event_id for m in messages[:-1])
    assert messages[-1] == {"msg": "close_stream", "event_id": None}
    assert messages[3]["progress_data"][0]["length"] == 4
    diff = messages[6]["output"]["data"]
    assert diff[0][0][:2] == ["replace", ["url"]] and diff[1] == []
    done = messages[9]
    assert done["msg"] == "process_completed"
    assert done["success"] is True and done["output"]["is_generating"] is False
    file_data, seed = done["output"]["data"]
    assert seed == 42
    _, image = await fetch_png(http, file_data["url"])
    assert image.size == (992, 768)  # FLUX rounds down to multiples of 16


async def test_flux_dev_input_validation_and_random_seed(
    space: FakeSpace, http: aiohttp.ClientSession
) -> None:
    bad_seed = await run_flux_dev(http, space, session_hash="a", data_at={1: None})
    assert bad_seed[-2]["success"] is False and "Seed" in bad_seed[-2]["output"]["error"]
    too_wide = await run_flux_dev(http, space, session_hash="b", data_at={3: 4096})
    assert "greater than maximum value 2048" in too_wide[-2]["output"]["error"]
    randomized = await run_flux_dev(http, space, session_hash="c", data_at={2: True})
    assert randomized[-2]["success"] is True
    assert randomized[-2]["output"]["data"][1] != 42
    status, answer = await join(http, space.flux_dev_url, flux_dev_body(fn_index=7))
    assert status == 422 and "detail" in answer


async def test_unknown_session_is_404(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    url = f"{space.flux_dev_url}/gradio_api/queue/data"
    async with http.get(url, params={"session_hash": "nobody"}) as resp:
        assert resp.status == 404
        assert await resp.json() == {"detail": "Session not found."}


async def test_one_stream_carries_several_events(
    space: FakeSpace, http: aiohttp.ClientSession
) -> None:
    space.previews = False
    for _ in range(2):
        assert (await join(http, space.flux_dev_url, flux_dev_body("shared")))[0] == 200
    messages = await read_stream(http, space.flux_dev_url, "shared")
    completed = [m for m in messages if m["msg"] == "process_completed"]
    assert len(completed) == 2 and len({m["event_id"] for m in completed}) == 2
    assert names(messages).count("close_stream") == 1 and messages[-1]["msg"] == "close_stream"
    assert "process_generating" not in names(messages)


async def test_heartbeats_while_idle(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.generation_delay, space.progress_steps, space.heartbeat_every = 0.3, 1, 0.05
    messages = await run_flux_dev(http, space)
    assert names(messages).count("heartbeat") >= 2
    assert {"msg": "heartbeat"} in messages


async def test_janus_gallery(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    assert (await join(http, space.janus_url, janus_body()))[0] == 200
    messages = await read_stream(http, space.janus_url, "j1")
    gallery = messages[-2]["output"]["data"][0]
    assert len(gallery) == 4 and all(item["caption"] is None for item in gallery)
    for item in gallery:
        _, image = await fetch_png(http, item["image"]["url"])
        assert image.size == (384, 384)


async def test_per_space_knobs(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.set_knobs("janus", previews=False, progress_steps=1)
    space.janus_images = 2
    await join(http, space.janus_url, janus_body())
    janus = await read_stream(http, space.janus_url, "j1")
    expected = ["estimation", "process_starts", "progress", "process_completed", "close_stream"]
    assert names(janus) == expected
    assert len(janus[-2]["output"]["data"][0]) == 2
    flux = await run_flux_dev(http, space)
    assert names(flux).count("process_generating") == 2 and names(flux).count("progress") == 4


async def test_token_enforcement(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.enforce_tokens = True
    space.token_ttl = 0.2
    async with http.get(f"{space.hub_url}/spaces/o/n") as resp:
        token = re.search(r"&quot;token&quot;:&quot;([^&]+?)&quot;", await resp.text())
    assert token
    headers = {"x-zerogpu-token": token.group(1)}
    await join(http, space.flux_dev_url, flux_dev_body("ok"), headers=headers)
    assert (await read_stream(http, space.flux_dev_url, "ok"))[-2]["success"] is True
    await join(http, space.flux_dev_url, flux_dev_body("none"))
    failed = (await read_stream(http, space.flux_dev_url, "none"))[-2]
    assert failed["success"] is False and failed["output"]["error"] == "ZeroGPU token expired"
    await asyncio.sleep(0.25)
    async with http.post(space.flux_predict_url, json=predict_body(), headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == {"error": "ZeroGPU token expired"}


# ------------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "needle"),
    [
        (JsonError(429, "You have exceeded your GPU quota"), 429, "application/json", "quota"),
        (HtmlError(503), 503, "text/html", "503 Service Unavailable"),
        (TextError(502, "Bad Gateway"), 502, "text/plain", "Bad Gateway"),
        (ServerError(), 503, "application/json", '"Service Unavailable"'),
    ],
)
async def test_request_faults_then_recovery(
    space: FakeSpace,
    http: aiohttp.ClientSession,
    fault: Any,
    status: int,
    content_type: str,
    needle: str,
) -> None:
    space.set_fault("flux-dev", fault, times=1)
    url = f"{space.flux_dev_url}/gradio_api/queue/join"
    async with http.post(url, json=flux_dev_body()) as resp:
        assert (resp.status, resp.content_type) == (status, content_type)
        assert needle in await resp.text()
    assert (await join(http, space.flux_dev_url, flux_dev_body()))[0] == 200


async def test_fault_until_cleared_and_on_predict(
    space: FakeSpace, http: aiohttp.ClientSession
) -> None:
    space.set_fault("g4f-flux", ServerError(503))
    for _ in range(2):
        async with http.post(space.flux_predict_url, json=predict_body()) as resp:
            assert resp.status == 503
    space.set_fault("g4f-flux", QuotaExceeded("0:01:00"))
    async with http.post(space.flux_predict_url, json=predict_body()) as resp:
        assert resp.status == 500
        assert "retry in 0:01:00" in (await resp.json())["error"]
    space.clear_faults()
    async with http.post(space.flux_predict_url, json=predict_body()) as resp:
        assert resp.status == 200


async def test_completed_error_and_quota(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.set_fault("flux-dev", CompletedError("CUDA out of memory"), times=1)
    failed = (await run_flux_dev(http, space, session_hash="e1"))[-2]
    assert failed == {
        "msg": "process_completed",
        "event_id": failed["event_id"],
        "output": {"error": "CUDA out of memory"},
        "success": False,
        "title": "Error",
    }
    space.set_fault("janus", QuotaExceeded(), times=1)
    await join(http, space.janus_url, janus_body())
    error = (await read_stream(http, space.janus_url, "j1"))[-2]["output"]["error"]
    assert " <a " in error and error.endswith("retry in 0:09:48")
    variant = QuotaExceeded(retry_first=True).error
    assert variant.index("0:09:48") < variant.index(" <a ")


async def test_stream_break_cuts_connection(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.set_fault("flux-dev", StreamBreak(after_events=2), times=1)
    await join(http, space.flux_dev_url, flux_dev_body())
    with pytest.raises(aiohttp.ClientPayloadError):
        await read_stream(http, space.flux_dev_url, "s1")
    space.set_fault("flux-dev", StreamBreak(after_events=3, abrupt=False), times=1)
    await join(http, space.flux_dev_url, flux_dev_body())
    messages = await read_stream(http, space.flux_dev_url, "s1")
    assert names(messages) == ["estimation", "process_starts", "progress"]


async def test_malformed_json(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.set_fault("flux-dev", MalformedJson(), times=1)
    messages = await run_flux_dev(http, space)
    assert messages[-1] == 'data: {"msg": "process_completed",'
    space.set_fault("g4f-flux", MalformedJson(), times=1)
    async with http.post(space.flux_predict_url, json=predict_body()) as resp:
        assert resp.status == 200
        with pytest.raises(ValueError):
            json.loads(await resp.text())


async def test_go_silent_and_hang_then_quick_close(http: aiohttp.ClientSession) -> None:
    space = FakeSpace(heartbeat_every=0.02)
    await space.start()
    space.set_fault("flux-dev", GoSilent(after_events=2), times=1)
    await join(http, space.flux_dev_url, flux_dev_body())
    url = f"{space.flux_dev_url}/gradio_api/queue/data?session_hash=s1"
    silent = await http.get(url)
    got = [await silent.content.readline() for _ in range(4)]  # two messages, two blank lines
    assert b"estimation" in got[0] and b"process_starts" in got[2]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(silent.content.readline(), 0.2)  # no heartbeats either
    space.set_fault("g4f-flux", Hang())
    hung = asyncio.create_task(http.post(space.flux_predict_url, json=predict_body()))
    done, _ = await asyncio.wait([hung], timeout=0.2)
    assert not done
    started = time.monotonic()
    await space.close()
    assert time.monotonic() - started < 1.5
    silent.release()
    (answer,) = await asyncio.gather(hung, return_exceptions=True)
    if isinstance(answer, aiohttp.ClientResponse):
        answer.release()


async def test_hub_faults(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.set_fault("hub", HtmlError(502), times=1)
    async with http.get(f"{space.hub_url}/spaces/o/n") as resp:
        assert resp.status == 502
    space.set_fault("hub", MalformedJson(), times=1)
    async with http.get(f"{space.hub_url}/spaces/o/n") as resp:
        assert "&quot;token&quot;" not in await resp.text()
    with pytest.raises(ValueError):
        space.set_fault("hub", StreamBreak())


# ------------------------------------------------------------------- file faults


async def result_url(http: aiohttp.ClientSession, space: FakeSpace) -> str:
    async with http.post(space.flux_predict_url, json=predict_body(64, 64)) as resp:
        return (await resp.json())["data"][0]["url"]


async def test_file_faults(space: FakeSpace, http: aiohttp.ClientSession) -> None:
    space.file_fault = OtherHost()
    assert (await result_url(http, space)).startswith(f"http://localhost:{space.port}/")

    space.file_fault = RedirectOtherHost()
    url = await result_url(http, space)
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"].startswith(f"http://localhost:{space.port}/g4f-flux/file=")

    space.file_fault = NotAnImage()
    async with http.get(await result_url(http, space)) as resp:
        assert resp.content_type == "image/png" and await resp.read() == b"<html>nope</html>"

    space.file_fault = Oversize(bytes=2_000_000)
    async with http.get(await result_url(http, space)) as resp:
        body = await resp.read()
    assert body.startswith(b"\x89PNG\r\n\x1a\n") and len(body) > 2_000_000

    space.clear_faults()
    _, image = await fetch_png(http, await result_url(http, space))
    assert image.size == (64, 64)


async def test_noise_images_are_large(http: aiohttp.ClientSession) -> None:
    async with FakeSpace(noise=True) as space:
        data, image = await fetch_png(http, await result_url(http, space))
    assert image.size == (64, 64) and len(data) > 64 * 64 * 3


# --------------------------------------------------------------------------- CLI


async def test_command_line_serves_and_stops_on_sigterm(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.space",
        "--port",
        "0",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 5))
        assert info["env"]["HF_ENDPOINT"] == info["url"] + "/hub"
        async with http.get(f"{info['env']['HF_ENDPOINT']}/spaces/o/n") as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
