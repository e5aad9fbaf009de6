"""Issue 8, "Engine and backends": each defect found by attacking the engine has a test here,
named after its item. The real engine runs against the fake Spaces (and the fake OpenAI API).
"""

from __future__ import annotations

import logging

import pytest

from imagine.backends import BackendTable
from imagine.engine import Engine
from imagine.errors import BackendError
from imagine.responses import ImageResponse, Reasoning
from imagine.settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.space import GoSilent, JsonError, ServerError


async def draw(engine: Engine, model: str, **kwargs):
    items = [item async for item in engine.generate(model, prompt="a fox", **kwargs)]
    images = [i for i in items if isinstance(i, ImageResponse)]
    return items, (images[0] if images else None)


def statuses(items) -> list[str]:
    return [i.status for i in items if isinstance(i, Reasoning)]


@pytest.fixture
def all_backends(space) -> Settings:
    """The whole built-in table, every Space on the fake; no AI Horde behind them (its
    default address is the internet: its tests bring a fake, test_horde.py)."""
    return Settings.from_env(
        {**space.env(), "JOB_WATCHDOG_SECONDS": "1", "HORDE_FLUX_MODEL": "none"}
    )


# -- item 8: a breaker is asked only right before its backend is tried ----------------------


async def test_item08_half_open_slot_is_not_taken_by_a_backend_never_tried(space, all_backends):
    async with Engine(all_backends) as engine:
        engine.retry_backoff = 0.01
        schnell = engine.breaker("flux-schnell")
        schnell.failure("503 a while ago")
        schnell.open_until = schnell.clock()  # its window has passed: half-open, one trial
        # Job 1 is drawn by the first backend; the second was never tried...
        _, image = await draw(engine, "flux")
        assert image.backend == "G4F flux"
        assert schnell.state == "half-open" and schnell.allows()  # ...so its trial is free
        schnell.release_probe()
        # Job 2: the first backend fails, and the recovered one takes over at once.
        space.set_fault("g4f-flux", ServerError(503))
        _, image = await draw(engine, "flux")
        assert image.backend == "FLUX.1-schnell (official Space)"
        assert len(space.joins("g4f-flux")) == 2  # job 1, and job 2's one try: no retry
        assert schnell.state == "closed"


# -- item 10: every notice names the backend it is about ------------------------------------


async def test_item10_retry_notice_names_the_backend_and_its_own_error(space, all_backends):
    space.set_fault("g4f-flux", ServerError(503))
    space.set_fault("flux-schnell", JsonError(502, "schnell is rebooting"))
    async with Engine(all_backends) as engine:
        engine.retry_backoff = 0.01
        items = []
        with pytest.raises(BackendError):
            async for item in engine.generate("flux", prompt="a fox"):
                items.append(item)
    notices = [s for s in statuses(items) if "trying" in s or "retrying" in s]
    assert notices, statuses(items)
    for notice in notices:
        # A notice about G4F flux quotes G4F flux's error, never FLUX.1-schnell's.
        if notice.startswith("G4F flux"):
            assert "Service Unavailable" in notice.split(";")[0], notice
            assert "rebooting" not in notice.split(";")[0], notice
        if notice.startswith("FLUX.1-schnell"):
            assert "rebooting" in notice.split(";")[0], notice


# -- item 11: a backend that stalled is not tried again in the same job ----------------------


async def test_item11_a_stalled_backend_is_not_retried(space, all_backends):
    space.set_fault("g4f-flux", GoSilent(after_events=1))
    space.set_fault("flux-schnell", ServerError(503))
    async with Engine(all_backends) as engine:
        engine.retry_backoff = 0.01
        items = []
        with pytest.raises(BackendError):
            async for item in engine.generate("flux", prompt="a fox"):
                items.append(item)
    assert len(space.joins("g4f-flux")) == 1  # one watchdog period, not two
    said = statuses(items)
    notice = next(s for s in said if s.startswith("G4F flux is not answering"))
    assert "FLUX.1-schnell (official Space)" in notice  # and what is tried next


async def test_item11_the_fallback_model_skips_a_backend_that_stalled(space, tmp_path):
    routes = tmp_path / "routes.toml"
    routes.write_text(
        'disable = ["flux-schnell", "flux-dev-official", "sd-3.5-large", "horde"]\n'
        '[models]\nflux = ["g4f-flux-dev", "g4f-flux"]\n'
    )
    settings = Settings.from_env(
        {**space.env(), "JOB_WATCHDOG_SECONDS": "1", "IMAGINE_BACKENDS": str(routes)}
    )
    space.set_fault("flux-dev", GoSilent(after_events=1))
    async with Engine(settings) as engine:
        engine.retry_backoff = 0.01
        avoid: set[str] = set()
        with pytest.raises(BackendError):
            await draw(engine, "flux-dev", avoid=avoid)
        assert avoid == {"g4f-flux-dev"}
        _, image = await draw(engine, "flux", avoid=avoid)
    assert image.backend == "G4F flux"
    assert len(space.joins("flux-dev")) == 1


# -- item 12: error text is redacted where it is made; backends shown by name ---------------


async def test_item12_backend_error_text_is_redacted_at_the_source(space):
    secret = "hf_SeCrEtToKeN0123456789"
    settings = Settings.from_env({**space.env(), "JOB_WATCHDOG_SECONDS": "1", "HF_TOKEN": secret})
    leak = f"auth {secret} refused by http://10.9.8.7:5000/internal/api"
    space.set_fault("g4f-flux", JsonError(503, leak))
    async with Engine(settings) as engine:
        items, image = await draw(engine, "flux")
        assert image.backend == "FLUX.1-schnell (official Space)"
        shown = "\n".join(statuses(items)) + "\n" + engine.breaker("g4f-flux").describe()
    assert secret not in shown and "10.9.8.7" not in shown, shown
    assert "G4F flux" in shown


# -- item 13: a backend gets only its own key ------------------------------------------------


async def test_item13_an_openai_backend_without_api_key_env_sends_no_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with FakeOpenAI() as third_party:
        config = tmp_path / "backends.toml"
        config.write_text(
            f'[backends.studio]\nkind = "openai"\nurl = "{third_party.url}"\n'
            'models = ["studio-xl"]\n'
        )
        settings = Settings(
            openai_base_url="http://127.0.0.1:9/v1",
            openai_api_key="sk-global-never-leaves-0123",
            openai_image_models="dall-e-3",
            imagine_backends=str(config),
        )
        table = BackendTable.build(settings)
        assert table.backends_for("studio-xl")[0].settings.openai_api_key is None
        async with Engine(settings, table=table) as engine:
            with pytest.raises(BackendError):
                await draw(engine, "studio-xl")  # the fake refuses a request without its key
        (call,) = third_party.requests
        assert "Authorization" not in call["headers"]
        assert "sk-global-never-leaves-0123" not in str(call)


async def test_item13_api_key_env_gives_that_backend_its_own_key(tmp_path, monkeypatch):
    async with FakeOpenAI() as studio:
        monkeypatch.setenv("STUDIO_KEY", studio.api_key)
        config = tmp_path / "backends.toml"
        config.write_text(
            f'[backends.studio]\nkind = "openai"\nurl = "{studio.url}"\n'
            'api_key_env = "STUDIO_KEY"\nmodels = ["studio-xl"]\n'
        )
        settings = Settings(
            openai_api_key="sk-global-never-leaves-0123", imagine_backends=str(config)
        )
        async with Engine(settings) as engine:
            _, image = await draw(engine, "studio-xl")
        assert image.backend == "studio (OpenAI-compatible API)"
        (call,) = studio.requests
        assert call["headers"]["Authorization"] == f"Bearer {studio.api_key}"
