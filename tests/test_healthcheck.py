"""``python healthcheck.py``, the container's health check: 0 only when ``/healthz`` on
``METRICS_PORT`` answers 200. Run as Docker runs it (a process of its own, its exit status
read), against a local server standing in for the process's metrics server."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from healthcheck import healthz_url
from tests.test_docker import local_roots

ROOT = Path(__file__).resolve().parent.parent


async def check(**env: str) -> subprocess.CompletedProcess[str]:
    """``python healthcheck.py`` with only ``env`` of the METRICS_* and proxy settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS_", "HTTP"))}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "healthcheck.py")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def serving(status: int) -> tuple[web.AppRunner, int]:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=status, text="ok" if status == 200 else "no")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def test_healthy_only_when_healthz_answers_200():
    ok, ok_port = await serving(200)
    failing, failing_port = await serving(503)
    try:
        # A proxy set for the bot's own requests is not asked (it does not exist).
        healthy = await check(
            METRICS_PORT=str(ok_port), METRICS_HOST="0.0.0.0", HTTP_PROXY="http://127.0.0.1:9"
        )
        unhealthy = await check(METRICS_PORT=str(failing_port))
    finally:
        await ok.cleanup()
        await failing.cleanup()
    closed = await check(METRICS_PORT=str(ok_port))  # nothing listens there any more
    unset = await check()
    assert healthy.returncode == 0, healthy.stderr
    assert unhealthy.returncode == 1 and "HTTP 503" in unhealthy.stderr
    assert closed.returncode == 1 and f"127.0.0.1:{ok_port}/healthz" in closed.stderr
    assert unset.returncode == 1 and "METRICS_PORT is not set" in unset.stderr


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("", "http://127.0.0.1:9100/healthz"),
        ("0.0.0.0", "http://127.0.0.1:9100/healthz"),
        ("::", "http://[::1]:9100/healthz"),
        ("10.0.0.5", "http://10.0.0.5:9100/healthz"),
    ],
)
def test_a_wildcard_host_is_asked_on_the_loopback(host, url):
    assert healthz_url({"METRICS_PORT": "9100", "METRICS_HOST": host}) == url


def test_it_imports_the_standard_library_only():
    """Docker runs it every interval: it must not pay the bot's second of imports."""
    path = ROOT / "healthcheck.py"
    assert local_roots(path) == set()
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= sys.stdlib_module_names, roots - sys.stdlib_module_names
