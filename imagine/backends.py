"""Backends as configuration: which Spaces and APIs draw which model, in which order.

The built-in table keeps the seed's routing first (``flux`` → the G4F flux endpoint,
``flux-dev`` → the FluxDev Space, ``janus-pro-7b-image`` → Janus-Pro-7B) and adds the official
Spaces behind it, so a model lives on when a community Space sleeps, vanishes or runs out of
quota; the AI Horde (``HORDE_FLUX_MODEL``) stands last behind ``flux`` and ``flux-dev``, and
serves the models of ``HORDE_MODELS`` as ``horde:<name>``. ``flux-kontext-dev`` edits an input
image. Describe models (image to prompts, ``janus-pro-7b``), the upscaler (``upscale``) and the
fill model (``flux-fill-dev``: Zoom Out, Pan, Vary (Region)) have routes of their own, one table
per task: they are not drawing models, so ``models()`` (what /imagine offers) does not list
them. An optional TOML file (``IMAGINE_BACKENDS``) adds backends (a duplicated Space is just a
URL), maps models to ordered lists of backends, and disables built-in ones::

    disable = ["sd-3.5-large"]

    [backends.my-flux-dev]
    kind = "flux-dev-official"       # the API it speaks: one of KINDS
    url = "https://me-flux-1-dev.hf.space"
    space = "me/FLUX.1-dev"          # hub id for ZeroGPU tokens (optional)

    [models]
    flux-dev = ["my-flux-dev", "g4f-flux-dev"]

    [describe]
    janus-pro-7b = ["janus-official-describe"]

    [upscale]                         # and [fill]: the other tasks' models, likewise
    upscale = ["my-upscaler", "upscaler"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from yarl import URL

from .errors import BadInput, UnknownModel
from .i18n import _
from .logsafe import HIDDEN_ADDRESS
from .providers.base import GradioQueueProvider, ImageProvider
from .providers.describe import (
    DESCRIBE_MODEL,
    DescribeProvider,
    JanusDescribe,
    JanusOfficialDescribe,
    OpenAIVision,
)
from .providers.fill import FluxFill
from .providers.flux_dev import FluxDev
from .providers.g4f import G4F
from .providers.horde import Horde, horde_models
from .providers.infer import FluxDevOfficial, FluxSchnell, StableDiffusion35Large
from .providers.janus import JanusPro7B
from .providers.kontext import FluxKontext
from .providers.openai import OpenAIImages
from .providers.upscale import FinegrainUpscaler
from .settings import ANONYMOUS_HORDE_KEY, Settings

Provider = type[ImageProvider] | type[DescribeProvider]

IMAGE = "image"
DESCRIBE = "describe"
UPSCALE = "upscale"
FILL = "fill"
TASKS = (IMAGE, DESCRIBE, UPSCALE, FILL)
SECTIONS = {IMAGE: "models", DESCRIBE: "describe", UPSCALE: "upscale", FILL: "fill"}
"""Each task's table in an ``IMAGINE_BACKENDS`` file."""
TASK_NAMES = {IMAGE: "drawing", DESCRIBE: "describing", UPSCALE: "upscaling", FILL: "filling"}
DEFAULT_MODELS = {
    IMAGE: "flux", DESCRIBE: DESCRIBE_MODEL, UPSCALE: "upscale", FILL: "flux-fill-dev",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Kind:
    """An API a backend can speak, the settings that hold its address, and its task: drawing
    images (``image``), turning an image into prompts (``describe``), upscaling an image
    (``upscale``) or painting a mask's white into one (``fill``)."""

    provider: Provider
    models: tuple[str, ...]
    url_setting: str
    space_setting: str | None
    task: str = IMAGE


def _space_kind(provider: type[GradioQueueProvider], task: str = IMAGE) -> Kind:
    return Kind(provider, provider.models[:1], provider.url_setting, provider.space_setting, task)


def _describe_kind(provider: type[JanusDescribe]) -> Kind:
    return Kind(provider, (DESCRIBE_MODEL,), provider.url_setting, provider.space_setting, DESCRIBE)


KINDS: dict[str, Kind] = {
    # G4F's flux path is a direct POST, not a queue: its settings are its own.
    "g4f-flux": Kind(G4F, ("flux",), "g4f_flux_url", "g4f_flux_space_id"),
    "g4f-flux-dev": _space_kind(FluxDev),
    "g4f-janus": _space_kind(JanusPro7B),
    "flux-schnell": _space_kind(FluxSchnell),
    "flux-dev-official": _space_kind(FluxDevOfficial),
    "sd-3.5-large": _space_kind(StableDiffusion35Large),
    "flux-kontext-dev": _space_kind(FluxKontext),
    "openai": Kind(OpenAIImages, (), "openai_base_url", None),
    "horde": Kind(Horde, (), "horde_url", None),
    "janus-describe": _describe_kind(JanusDescribe),
    "janus-official-describe": _describe_kind(JanusOfficialDescribe),
    "openai-vision": Kind(OpenAIVision, (DESCRIBE_MODEL,), "openai_base_url", None, DESCRIBE),
    "upscaler": _space_kind(FinegrainUpscaler, UPSCALE),
    "fill": _space_kind(FluxFill, FILL),
}

BUILTIN_ORDER = (
    "g4f-flux",
    "g4f-flux-dev",
    "g4f-janus",
    "flux-schnell",
    "flux-dev-official",
    "sd-3.5-large",
    "flux-kontext-dev",
    "janus-describe",
    "janus-official-describe",
    "upscaler",
    "fill",
)
"""Built-in backends, named after their kind; the seed's come first for their models."""

ALIASES = {"flux-schnell": "flux"}


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    kind: str
    models: tuple[str, ...]
    settings: Settings
    builtin: bool = True

    @property
    def provider(self) -> Provider:
        return KINDS[self.kind].provider

    @property
    def task(self) -> str:
        return KINDS[self.kind].task

    @property
    def label(self) -> str:
        return self.provider.label if self.builtin else f"{self.name} ({self.provider.label})"

    @property
    def url(self) -> str:
        return getattr(self.settings, KINDS[self.kind].url_setting) or ""

    @property
    def space(self) -> str | None:
        setting = KINDS[self.kind].space_setting
        return getattr(self.settings, setting) if setting else None


class BackendTable:
    """Models, their aliases, and the ordered backends that draw each; likewise, per task,
    the describe, upscale and fill models and their ordered backends."""

    def __init__(
        self,
        backends: dict[str, Backend],
        routes: dict[str, list[str]],
        describers: dict[str, list[str]] | None = None,
        others: dict[str, dict[str, list[str]]] | None = None,
    ) -> None:
        self.backends = backends
        self.routes = {m: names for m, names in routes.items() if names}
        self.describers = {m: names for m, names in (describers or {}).items() if names}
        self.tasks: dict[str, dict[str, list[str]]] = {
            task: {m: names for m, names in (others or {}).get(task, {}).items() if names}
            for task in TASKS
        }
        self.tasks[IMAGE], self.tasks[DESCRIBE] = self.routes, self.describers

    def models(self, *, aliases: bool = False) -> list[str]:
        names = list(self.routes)
        if aliases:
            names += [
                a for a, target in ALIASES.items() if target in self.routes and a not in names
            ]
        return names

    def resolve(self, name: str | None) -> str:
        """The canonical model for ``name`` (default ``flux``), case aside (the Horde's model
        names have capitals); ``UnknownModel`` otherwise."""
        raw = (name or "flux").strip()
        for candidate in (raw, raw.lower()):
            candidate = ALIASES.get(candidate, candidate)
            if candidate in self.routes:
                return candidate
        folded = raw.casefold()
        for model in self.routes:
            if model.casefold() == folded:
                return model
        known = ", ".join(sorted(self.models(aliases=True)))
        raise UnknownModel(
            _("Unknown model {name}. Available models: {known}.", name=repr(name), known=known)
        )

    def secrets(self) -> list[str]:
        """Every secret the backends hold (keys named by ``api_key_env`` included)."""
        found: set[str] = set()
        for backend in self.backends.values():
            found.update(backend.settings.secrets())
        return sorted(found)

    def addresses(self) -> dict[str, str]:
        """Each backend's URL and host, mapped to the label people know the backend by (a host
        that several backends share maps to no one name, so it is only hidden)."""
        found: dict[str, str] = {}
        hosts: dict[str, set[str]] = {}
        for backend in self.backends.values():
            url = backend.url.rstrip("/")
            if not url:
                continue
            found.setdefault(url, backend.label)
            parsed = URL(url)
            for part in (parsed.authority, parsed.host):
                if part:
                    hosts.setdefault(part, set()).add(backend.label)
        for part, labels in hosts.items():
            found[part] = labels.pop() if len(labels) == 1 else HIDDEN_ADDRESS
        return found

    def backends_for(self, model: str, *, images: bool = False) -> list[Backend]:
        """The model's backends in order; with ``images``, those that take an input image."""
        found = [self.backends[name] for name in self.routes[self.resolve(model)]]
        return [b for b in found if b.provider.accepts_images] if images else found

    def accepts_images(self, model: str) -> bool:
        """Does some backend of ``model`` take an input image? (False for unknown models.)"""
        try:
            return bool(self.backends_for(model, images=True))
        except UnknownModel:
            return False

    def image_models(self) -> list[str]:
        """The models that take an input image (image-to-image)."""
        return [m for m in self.models() if self.accepts_images(m)]

    def describe_models(self) -> list[str]:
        return list(self.describers)

    def resolve_describer(self, name: str | None) -> str:
        """The describe model for ``name`` (default ``janus-pro-7b``); ``UnknownModel``
        otherwise."""
        raw = (name or DESCRIBE_MODEL).strip()
        for candidate in (raw, raw.lower()):
            if candidate in self.describers:
                return candidate
        known = ", ".join(sorted(self.describers)) or "none configured"
        raise UnknownModel(
            _("Unknown describe model {name}. Available: {known}.", name=repr(name), known=known)
        )

    def describers_for(self, model: str | None) -> list[Backend]:
        return [self.backends[n] for n in self.describers[self.resolve_describer(model)]]

    def task_models(self, task: str) -> list[str]:
        """The models of an upscale or fill task (or any other), in table order."""
        return list(self.tasks[task])

    def resolve_task(self, task: str, name: str | None) -> str:
        """The ``task`` model for ``name`` (default: the task's own, e.g. ``upscale``);
        ``UnknownModel`` otherwise, also when no backend of the task is configured."""
        raw = (name or DEFAULT_MODELS[task]).strip()
        for candidate in (raw, raw.lower()):
            if candidate in self.tasks[task]:
                return candidate
        known = ", ".join(sorted(self.tasks[task])) or _("none is configured")
        raise UnknownModel(
            _("Unknown model {name}. Available models: {known}.", name=repr(name or raw),
              known=known)
        )  # fmt: skip

    def task_backends(self, task: str, model: str | None) -> list[Backend]:
        """The ordered backends of a ``task`` model."""
        return [self.backends[n] for n in self.tasks[task][self.resolve_task(task, model)]]

    def chat_models(self) -> dict[str, list[Backend]]:
        """The OpenAI-compatible chat models the table knows, each with the backends that
        serve it, in table order: the model each ``openai-vision`` backend asks
        (``OPENAI_VISION_MODEL``, or its ``vision_model`` in the file). A vision chat model
        answers text alone as well. The ``openai`` backends' models are left out: those are
        image models, which draw and do not chat."""
        found: dict[str, list[Backend]] = {}
        for backend in self.backends.values():
            model = (backend.settings.openai_vision_model or "").strip()
            if backend.kind == "openai-vision" and backend.url and model:
                found.setdefault(model, []).append(backend)
        return found

    @classmethod
    def build(cls, settings: Settings, *, openai_models: list[str] | None = None) -> BackendTable:
        """The built-in table, the OpenAI-compatible API if configured, then the TOML file."""
        backends: dict[str, Backend] = {}
        tables: dict[str, dict[str, list[str]]] = {task: {} for task in TASKS}
        for name in BUILTIN_ORDER:
            backends[name] = Backend(name, name, KINDS[name].models, settings)
        if settings.openai_base_url:
            models = tuple(openai_models or configured_openai_models(settings))
            backends["openai"] = Backend("openai", "openai", models, settings)
            vision = settings.openai_vision_model
            if vision:
                models = (DESCRIBE_MODEL,) if vision == DESCRIBE_MODEL else (DESCRIBE_MODEL, vision)
                backends["openai-vision"] = Backend(
                    "openai-vision", "openai-vision", models, settings
                )
        horde = horde_models(settings)
        if horde:  # last: behind every Space of flux and flux-dev
            backends["horde"] = Backend("horde", "horde", horde, settings)
        for name, backend in backends.items():
            _route(backend, name, tables)
        if settings.imagine_backends:
            _apply_file(Path(settings.imagine_backends), settings, backends, tables)
        return cls(backends, tables[IMAGE], tables[DESCRIBE], tables)


def _route(backend: Backend, name: str, tables: dict[str, dict[str, list[str]]]) -> None:
    """Add ``backend`` behind the others for each of its models, in its task's table."""
    table = tables[backend.task]
    for model in backend.models:
        if name not in table.setdefault(model, []):
            table[model].append(name)


def configured_openai_models(settings: Settings) -> list[str]:
    raw = settings.openai_image_models or ""
    return [m.strip() for m in raw.split(",") if m.strip()]


def _apply_file(
    path: Path,
    settings: Settings,
    backends: dict[str, Backend],
    tables: dict[str, dict[str, list[str]]],
) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"IMAGINE_BACKENDS: cannot read {path} ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"IMAGINE_BACKENDS: {path} is not valid TOML ({exc})") from None
    for name, spec in (data.get("backends") or {}).items():
        backends[name] = _backend_from(name, spec, settings)
        _route(backends[name], name, tables)
    for task, section in SECTIONS.items():
        table = tables[task]
        for model, names in (data.get(section) or {}).items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadInput(
                    f"IMAGINE_BACKENDS: {section}.{model} must be a list of backend names"
                )
            unknown = [n for n in names if n not in backends]
            if unknown:
                raise BadInput(
                    f"IMAGINE_BACKENDS: {section}.{model} names unknown backends: {unknown}"
                )
            wrong = [n for n in names if backends[n].task != task]
            if wrong:
                others = ", ".join(sorted({TASK_NAMES[backends[n].task] for n in wrong}))
                raise BadInput(
                    f"IMAGINE_BACKENDS: {section}.{model} names backends of another task "
                    f"({others}): {wrong}"
                )
            table[model] = list(names)
    disabled = data.get("disable") or []
    if not isinstance(disabled, list):
        raise BadInput("IMAGINE_BACKENDS: disable must be a list of backend names")
    for name in disabled:
        backends.pop(name, None)
        for table in tables.values():
            for names in table.values():
                if name in names:
                    names.remove(name)


def _backend_from(name: str, spec: Any, settings: Settings) -> Backend:
    if not isinstance(spec, dict):
        raise BadInput(f"IMAGINE_BACKENDS: backends.{name} must be a table")
    kind_name = spec.get("kind")
    if kind_name not in KINDS:
        raise BadInput(f"IMAGINE_BACKENDS: backends.{name}.kind must be one of {', '.join(KINDS)}")
    kind = KINDS[kind_name]
    url = spec.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadInput(f"IMAGINE_BACKENDS: backends.{name}.url must be an http(s) URL")
    changes: dict[str, Any] = {kind.url_setting: url}
    if kind.space_setting and isinstance(spec.get("space"), str):
        changes[kind.space_setting] = spec["space"]
    if kind_name == "openai-vision" and spec.get("vision_model") is not None:
        if not isinstance(spec["vision_model"], str) or not spec["vision_model"].strip():
            raise BadInput(f"IMAGINE_BACKENDS: backends.{name}.vision_model must be a model name")
        changes["openai_vision_model"] = spec["vision_model"].strip()
    if kind_name in ("openai", "openai-vision"):
        # A backend gets only its own key (named by api_key_env; keys stay out of files), never
        # OPENAI_API_KEY: its URL may be a third party's.
        key_env = spec.get("api_key_env")
        if key_env is not None and not isinstance(key_env, str):
            raise BadInput(f"IMAGINE_BACKENDS: backends.{name}.api_key_env must be a name")
        changes["openai_api_key"] = os.environ.get(key_env) if key_env else None
    if kind_name == "horde":
        # The same rule for HORDE_API_KEY: another Horde gets its own key, or none (anonymous).
        key_env = spec.get("api_key_env")
        if key_env is not None and not isinstance(key_env, str):
            raise BadInput(f"IMAGINE_BACKENDS: backends.{name}.api_key_env must be a name")
        key = os.environ.get(key_env) if key_env else None
        changes["horde_api_key"] = key or ANONYMOUS_HORDE_KEY
    models = spec.get("models", list(kind.models))
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise BadInput(f"IMAGINE_BACKENDS: backends.{name}.models must list model names")
    return Backend(name, kind_name, tuple(models), replace(settings, **changes), builtin=False)
