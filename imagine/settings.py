"""Configuration from the environment: one place that knows every setting's name and default.

Names are fixed by DESIGN.md (users put them in ``.env``); each is documented in ``.env.example``.
Secrets are kept out of ``repr()`` so a settings object can be logged without leaking them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import BadInput

MAX_SIDE = 2048
"""The largest width or height anyone may ask for (before a Space's own range applies)."""
ANONYMOUS_HORDE_KEY = "0000000000"
"""The AI Horde's anonymous API key: free, lowest priority, and no secret."""
LOG_FORMATS = ("text", "json")
"""``LOG_FORMAT``: discord.py's lines (the default), or one JSON object a line."""
HORDE_FLUX_MODEL = "Flux.1-Schnell fp8 (Compact)"
"""The AI Horde's FLUX.1-schnell (its model reference's name): the Horde model behind
``flux`` and ``flux-dev`` unless ``HORDE_FLUX_MODEL`` names another (or ``none``)."""


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return default
    return value.strip()


def _text_or(env: Mapping[str, str], name: str, default: str) -> str:
    """A text setting that always has a value: its default when unset or blank."""
    return _text(env, name) or default


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise BadInput(f"{name} must be at least {minimum:g}, not {raw}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    value = _number(env, name, default, minimum=minimum)
    if value != int(value):
        raise BadInput(f"{name} must be a whole number, not {value:g}")
    return int(value)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (any case; the first when unset): a typo fails at start, loudly."""
    raw = _text_or(env, name, choices[0])
    if raw.lower() not in choices:
        raise BadInput(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw.lower()


def _port(env: Mapping[str, str], name: str) -> int | None:
    """A TCP port, or None when unset; 0 asks the system for any free one."""
    if _text(env, name) is None:
        return None
    port = _integer(env, name, 0)
    if port > 65535:
        raise BadInput(f"{name} must be a port number (0..65535), not {port}")
    return port


def _unless_none(value: str | None) -> str | None:
    """A setting that ``none`` turns off (an empty value means "the default", as elsewhere)."""
    return None if value is None or value.casefold() == "none" else value


def _shards(env: Mapping[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    """``SHARD_COUNT`` and ``SHARD_IDS``: (None, None) lets discord.py ask Discord for the
    count; a count alone runs every shard here; ids need the count they are taken from."""
    raw_count = _text(env, "SHARD_COUNT")
    count = _integer(env, "SHARD_COUNT", 1, minimum=1) if raw_count is not None else None
    raw_ids = _text(env, "SHARD_IDS")
    if raw_ids is None:
        return count, None
    if count is None:
        raise BadInput("SHARD_IDS needs SHARD_COUNT (the total number of shards of the bot)")
    ids: list[int] = []
    for part in raw_ids.split(","):
        part = part.strip()
        if not part.isdigit():
            raise BadInput(f"SHARD_IDS must be comma-separated whole numbers, not {raw_ids!r}")
        shard = int(part)
        if shard >= count:
            raise BadInput(f"SHARD_IDS: shard {shard} is out of range for SHARD_COUNT={count}")
        if shard in ids:
            raise BadInput(f"SHARD_IDS names shard {shard} twice")
        ids.append(shard)
    return count, tuple(ids)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the bot and the engine, with the defaults of DESIGN.md."""

    discord_token: str | None = field(default=None, repr=False)
    discord_api_base_url: str = "https://discord.com/api/v10"
    database_url: str = "sqlite:///data/imagine.db"
    g4f_flux_url: str = "https://roxky-g4f-flux.hf.space/run/predict"
    flux_dev_space_url: str = "https://roxky-flux-1-dev.hf.space"
    janus_space_url: str = "https://roxky-janus-pro-7b.hf.space"
    # The hub ids whose pages hand out ZeroGPU tokens for the endpoints above. gpt4free's G4F
    # takes the flux endpoint's token from the Janus space, so that is the default here too.
    g4f_flux_space_id: str = "roxky/Janus-Pro-7B"
    flux_dev_space_id: str = "roxky/FLUX.1-dev"
    janus_space_id: str = "roxky/Janus-Pro-7B"
    # The official Spaces (second backends for flux and flux-dev, and SD 3.5 Large).
    flux_schnell_space_url: str = "https://black-forest-labs-flux-1-schnell.hf.space"
    flux_schnell_space_id: str = "black-forest-labs/FLUX.1-schnell"
    flux_dev_official_space_url: str = "https://black-forest-labs-flux-1-dev.hf.space"
    flux_dev_official_space_id: str = "black-forest-labs/FLUX.1-dev"
    sd35_space_url: str = "https://stabilityai-stable-diffusion-3-5-large.hf.space"
    sd35_space_id: str = "stabilityai/stable-diffusion-3.5-large"
    # Image in: FLUX.1 Kontext [dev] (model flux-kontext-dev).
    kontext_space_url: str = "https://black-forest-labs-flux-1-kontext-dev.hf.space"
    kontext_space_id: str = "black-forest-labs/FLUX.1-Kontext-Dev"
    # Image understanding (describe): the official Janus-Pro-7B Space, behind JANUS_SPACE_URL.
    janus_official_space_url: str = "https://deepseek-ai-janus-pro-7b.hf.space"
    janus_official_space_id: str = "deepseek-ai/Janus-Pro-7B"
    # Beyond the grid: Upscale (finegrain's Image Enhancer) and Zoom Out, Pan and Vary (Region)
    # (FLUX.1 Fill [dev]).
    upscale_space_url: str = "https://finegrain-finegrain-image-enhancer.hf.space"
    upscale_space_id: str = "finegrain/finegrain-image-enhancer"
    fill_space_url: str = "https://black-forest-labs-flux-1-fill-dev.hf.space"
    fill_space_id: str = "black-forest-labs/FLUX.1-Fill-dev"
    hf_endpoint: str = "https://huggingface.co"
    hf_token: str | None = field(default=None, repr=False)
    secrets_key: str | None = field(default=None, repr=False)  # Fernet keys, newest first
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object a line, for a log shipper
    max_concurrent_jobs: int = 4
    max_jobs_per_user: int = 3
    job_watchdog_seconds: float = 120.0
    job_timeout_seconds: float = 600.0
    connect_timeout_seconds: float = 15.0
    shutdown_grace_seconds: float = 30.0
    history_limit: int = 10
    max_queued_jobs: int = 500
    job_retention_days: float = 30.0
    fallback_model: str | None = None
    max_image_bytes: int = 25 * 1024 * 1024
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_image_models: str | None = None
    openai_vision_model: str | None = None
    imagine_backends: str | None = None
    # The AI Horde: community GPUs (anonymous use is free and slowest).
    horde_url: str = "https://aihorde.net/api"
    horde_api_key: str = field(default=ANONYMOUS_HORDE_KEY, repr=False)
    horde_models: str | None = None  # comma-separated Horde model names, offered as horde:<name>
    horde_flux_model: str | None = HORDE_FLUX_MODEL  # behind flux and flux-dev; None: not used
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    workers: str | None = None  # "inline": one process even on PostgreSQL
    worker_concurrency: int = 4  # jobs one ``python worker.py`` runs at once
    job_lease_seconds: float = 30.0  # a worker that stops heartbeating loses its job after this
    metrics_port: int | None = None  # /metrics, /healthz, /readyz; None: not served; 0: any free
    metrics_host: str = "127.0.0.1"

    @property
    def uses_workers(self) -> bool:
        """Jobs run in ``python worker.py`` processes: PostgreSQL, not ``inline``."""
        postgres = self.database_url.startswith(("postgresql://", "postgres://"))
        return postgres and (self.workers or "").lower() != "inline"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a malformed number is a ``BadInput`` naming the variable."""
        env = os.environ if env is None else env
        d = cls()
        shard_count, shard_ids = _shards(env)
        return cls(
            discord_token=_text(env, "DISCORD_TOKEN"),
            discord_api_base_url=_text_or(env, "DISCORD_API_BASE_URL", d.discord_api_base_url),
            database_url=_text_or(env, "DATABASE_URL", d.database_url),
            g4f_flux_url=_text_or(env, "G4F_FLUX_URL", d.g4f_flux_url),
            flux_dev_space_url=_text_or(env, "FLUX_DEV_SPACE_URL", d.flux_dev_space_url),
            janus_space_url=_text_or(env, "JANUS_SPACE_URL", d.janus_space_url),
            g4f_flux_space_id=_text_or(env, "G4F_FLUX_SPACE_ID", d.g4f_flux_space_id),
            flux_dev_space_id=_text_or(env, "FLUX_DEV_SPACE_ID", d.flux_dev_space_id),
            janus_space_id=_text_or(env, "JANUS_SPACE_ID", d.janus_space_id),
            flux_schnell_space_url=_text_or(
                env, "FLUX_SCHNELL_SPACE_URL", d.flux_schnell_space_url
            ),
            flux_schnell_space_id=_text_or(env, "FLUX_SCHNELL_SPACE_ID", d.flux_schnell_space_id),
            flux_dev_official_space_url=_text_or(
                env, "FLUX_DEV_OFFICIAL_SPACE_URL", d.flux_dev_official_space_url
            ),
            flux_dev_official_space_id=_text_or(
                env, "FLUX_DEV_OFFICIAL_SPACE_ID", d.flux_dev_official_space_id
            ),
            sd35_space_url=_text_or(env, "SD35_SPACE_URL", d.sd35_space_url),
            sd35_space_id=_text_or(env, "SD35_SPACE_ID", d.sd35_space_id),
            kontext_space_url=_text_or(env, "KONTEXT_SPACE_URL", d.kontext_space_url),
            kontext_space_id=_text_or(env, "KONTEXT_SPACE_ID", d.kontext_space_id),
            janus_official_space_url=_text_or(
                env, "JANUS_OFFICIAL_SPACE_URL", d.janus_official_space_url
            ),
            janus_official_space_id=_text_or(
                env, "JANUS_OFFICIAL_SPACE_ID", d.janus_official_space_id
            ),
            upscale_space_url=_text_or(env, "UPSCALE_SPACE_URL", d.upscale_space_url),
            upscale_space_id=_text_or(env, "UPSCALE_SPACE_ID", d.upscale_space_id),
            fill_space_url=_text_or(env, "FILL_SPACE_URL", d.fill_space_url),
            fill_space_id=_text_or(env, "FILL_SPACE_ID", d.fill_space_id),
            hf_endpoint=_text_or(env, "HF_ENDPOINT", d.hf_endpoint),
            hf_token=_text(env, "HF_TOKEN"),
            secrets_key=_text(env, "SECRETS_KEY"),
            log_level=_text_or(env, "LOG_LEVEL", d.log_level).upper(),
            log_format=_choice(env, "LOG_FORMAT", LOG_FORMATS),
            max_concurrent_jobs=_integer(
                env, "MAX_CONCURRENT_JOBS", d.max_concurrent_jobs, minimum=1
            ),
            max_jobs_per_user=_integer(env, "MAX_JOBS_PER_USER", d.max_jobs_per_user, minimum=1),
            job_watchdog_seconds=_number(
                env, "JOB_WATCHDOG_SECONDS", d.job_watchdog_seconds, minimum=1
            ),
            job_timeout_seconds=_number(
                env, "JOB_TIMEOUT_SECONDS", d.job_timeout_seconds, minimum=1
            ),
            connect_timeout_seconds=_number(
                env, "CONNECT_TIMEOUT_SECONDS", d.connect_timeout_seconds, minimum=0.1
            ),
            shutdown_grace_seconds=_number(env, "SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds),
            history_limit=_integer(env, "HISTORY_LIMIT", d.history_limit, minimum=0),
            max_queued_jobs=_integer(env, "MAX_QUEUED_JOBS", d.max_queued_jobs, minimum=1),
            job_retention_days=_number(env, "JOB_RETENTION_DAYS", d.job_retention_days),
            fallback_model=_text(env, "FALLBACK_MODEL"),
            max_image_bytes=_integer(env, "MAX_IMAGE_BYTES", d.max_image_bytes, minimum=1024),
            openai_base_url=_text(env, "OPENAI_BASE_URL"),
            openai_api_key=_text(env, "OPENAI_API_KEY"),
            openai_image_models=_text(env, "OPENAI_IMAGE_MODELS"),
            openai_vision_model=_text(env, "OPENAI_VISION_MODEL"),
            imagine_backends=_text(env, "IMAGINE_BACKENDS"),
            horde_url=_text_or(env, "HORDE_URL", d.horde_url),
            horde_api_key=_text_or(env, "HORDE_API_KEY", d.horde_api_key),
            horde_models=_text(env, "HORDE_MODELS"),
            horde_flux_model=_unless_none(_text(env, "HORDE_FLUX_MODEL", d.horde_flux_model)),
            shard_count=shard_count,
            shard_ids=shard_ids,
            workers=_text(env, "WORKERS"),
            worker_concurrency=_integer(env, "WORKER_CONCURRENCY", d.worker_concurrency, minimum=1),
            job_lease_seconds=_number(env, "JOB_LEASE_SECONDS", d.job_lease_seconds, minimum=1),
            metrics_port=_port(env, "METRICS_PORT"),
            metrics_host=_text_or(env, "METRICS_HOST", d.metrics_host),
        )

    @property
    def runs_shard_zero(self) -> bool:
        """Whether this process runs shard 0: the one that gets DMs and syncs the commands."""
        return self.shard_ids is None or 0 in self.shard_ids

    def runs_shard_of(self, guild_id: int | None) -> bool:
        """Whether this process runs the shard a guild's events go to (DMs: shard 0)."""
        if self.shard_ids is None or self.shard_count is None:
            return True  # every shard runs here
        if guild_id is None:
            return 0 in self.shard_ids
        return (guild_id >> 22) % self.shard_count in self.shard_ids

    def secrets(self) -> list[str]:
        """The secret values set here, so logging can redact them wherever they turn up (each
        key of a comma-separated ``SECRETS_KEY`` too). The AI Horde's anonymous key is
        everyone's, not a secret (and ten zeros would otherwise be redacted out of any number
        that holds them)."""
        found: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.repr or not isinstance(value, str) or not value:
                continue
            if f.name == "horde_api_key" and value == ANONYMOUS_HORDE_KEY:
                continue
            found.append(value)
            found += [part.strip() for part in value.split(",") if "," in value]
        return [value for value in found if value]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///…`` database URL (None: another database, or in memory)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///") :])
    return None
