"""Shared fixtures: a local fake of the Spaces, an engine pointed at it, and databases
(SQLite files and a throwaway PostgreSQL server, from tests/postgres.py).

Nothing here reaches the internet: every URL the engine is given lives on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from imagine.engine import Engine
from imagine.settings import Settings
from tests.fakes.space import FakeSpace
from tests.postgres import database_url, postgres_server, postgres_url  # noqa: F401

hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
"""CI explores the same examples every run (a red run is then a real regression, and can be
run again); a local run keeps exploring new ones, and keeps what it finds in @example."""
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything tries to resolve or reach a host other than loopback."""
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise OSError(f"test tried to reach {host!r}: tests must stay on 127.0.0.1")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


@pytest.fixture
async def space() -> AsyncIterator[FakeSpace]:
    async with FakeSpace() as fake:
        yield fake


SEED_BACKENDS_ONLY = 'disable = ["flux-schnell", "flux-dev-official", "sd-3.5-large", "horde"]\n'
"""Most engine and bot tests are about one backend per model (the seed's); those about
routing between backends (test_backends.py) use the whole table. The AI Horde (last behind
``flux`` and ``flux-dev`` by default) is left out unless a test brings the fake Horde."""
WITH_HORDE = 'disable = ["flux-schnell", "flux-dev-official", "sd-3.5-large"]\n'
NO_HORDE = 'disable = ["horde"]\n'
"""The whole table but the AI Horde (whose default address is the internet)."""


def seed_backends_file(folder: Path, *, horde: bool = False) -> str:
    """The seed's backends only; with ``horde``, the AI Horde behind them too."""
    path = folder / ("seed-horde-backends.toml" if horde else "seed-backends.toml")
    path.write_text(WITH_HORDE if horde else SEED_BACKENDS_ONLY)
    return str(path)


def all_but_horde_file(folder: Path) -> str:
    path = folder / "no-horde-backends.toml"
    path.write_text(NO_HORDE)
    return str(path)


def space_settings(space: FakeSpace, folder: Path | None = None, **overrides: str) -> Settings:
    env = {**space.env(), **overrides}
    if folder is not None:
        env.setdefault("IMAGINE_BACKENDS", seed_backends_file(folder))
    return Settings.from_env(env)


@pytest.fixture
def settings(space: FakeSpace, tmp_path: Path) -> Settings:
    return space_settings(space, tmp_path, JOB_WATCHDOG_SECONDS="5", JOB_TIMEOUT_SECONDS="20")


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as engine:
        yield engine
