"""docker-compose.yml is valid Compose, and gives each process what it needs (issues 16, 19).

There is no Docker engine here, so the file is checked instead of run: against the Compose
specification's JSON schema, as check-jsonschema vendors it (``check-jsonschema
--builtin-schema vendor.compose-spec``, its documented interface, run as a command), then read
with PyYAML for what a schema cannot know:

- ``docker compose stop`` (and a deploy) sends the service's ``stop_signal`` to PID 1, then
  SIGKILL once ``stop_grace_period`` has passed (10 s unless set). A period shorter than
  ``SHUTDOWN_GRACE_SECONDS`` plus the time to tell or hand back the jobs and close would cut
  running jobs off untold; and a signal sent to a shell (``sh -c "… python bot.py"``) never
  reaches python, so each command is the exec form, python itself.
- Every service has a health check, and every ``depends_on`` waits for ``service_healthy``.
- The bot's services run the Dockerfile's image with its health check, stop signal and user.
- No secret is written in the file: they come from ``.env``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from imagine.settings import Settings
from tests import dockerfile

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
CLOSING_MARGIN = 10.0
"""Seconds a process needs after SHUTDOWN_GRACE_SECONDS at least: the told or handed-back
jobs' replies, the database, the HTTP sessions."""
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
PROGRAMS = ("bot.py", "worker.py")
INTERPOLATED = re.compile(r"\$\{[A-Z_]+(?::?[-?][^}]*)?\}")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@")
"""The password of ``scheme://user:password@host`` (a ``${…}`` may hold spaces)."""


def compose() -> dict[str, Any]:
    with COMPOSE.open() as file:
        return yaml.safe_load(file)  # merge keys (<<: *bot) resolved


def bot_services() -> dict[str, dict[str, Any]]:
    """The services that run bot.py or worker.py."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if any(program in str(service.get("command", "")) for program in PROGRAMS)
    }


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def duration(text: str) -> float:
    """Seconds in a compose duration (``45s``, ``1m15s``, ``1h``, ``500ms``)."""
    parts = DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * UNITS[unit] for number, unit in parts)


# -- the Compose specification ---------------------------------------------------------------


def test_the_file_is_valid_compose():
    checked = validate(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_catches_a_wrong_condition_and_an_unknown_key(tmp_path):
    """The check above could fail: the vendored schema is strict about services."""
    broken = COMPOSE.read_text().replace("service_healthy", "service_ready", 1)
    broken = broken.replace("stop_grace_period: 45s", "stop_grace_periode: 45s")
    assert broken.count("service_ready") == 1 and "stop_grace_periode" in broken
    path = tmp_path / "docker-compose.yml"
    path.write_text(broken)
    checked = validate(path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "'service_ready' is not one of" in checked.stdout
    assert "'stop_grace_periode' were unexpected" in checked.stdout


# -- the processes ---------------------------------------------------------------------------


def test_a_gateway_two_workers_and_postgresql_from_the_dockerfiles_image():
    services = compose()["services"]
    assert set(services) == {"postgres", "gateway", "worker1", "worker2"}
    commands = {name: service.get("command") for name, service in bot_services().items()}
    assert commands == {
        "gateway": ["python", "bot.py"],
        "worker1": ["python", "worker.py"],
        "worker2": ["python", "worker.py"],
    }
    assert dockerfile.exec_form(dockerfile.only("CMD").arguments) == ["python", "bot.py"]
    images = {(s.get("build"), s.get("image")) for s in bot_services().values()}
    assert images == {(".", "imagine-bot")}  # from ./Dockerfile, the tag docs/operations.md uses


def test_every_bot_and_worker_gets_time_to_stop():
    stop_signal = dockerfile.only("STOPSIGNAL").arguments
    assert stop_signal == "SIGTERM"
    for name, service in bot_services().items():
        command = service["command"]
        assert isinstance(command, list) and command[0] == "python", (
            f"{name}: the exec form, so that python gets the stop signal, not a shell: {command}"
        )
        program = command[1]
        assert f"signal.{stop_signal}" in (ROOT / program).read_text()  # it handles it
        assert service.get("stop_signal") == stop_signal, name
        environment = service.get("environment", {})
        grace = float(environment.get("SHUTDOWN_GRACE_SECONDS", Settings().shutdown_grace_seconds))
        period = duration(str(service.get("stop_grace_period", "10s")))
        assert period >= grace + CLOSING_MARGIN, (name, period, grace)


def test_health_checks_and_start_order():
    services = compose()["services"]
    flags, command = dockerfile.healthcheck()
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, (name, dependency, how)
            assert services[dependency].get("healthcheck"), dependency
    for name, service in bot_services().items():
        assert "postgres" in service["depends_on"], name
        check = service["healthcheck"]
        assert check["test"] == ["CMD", *command], f"{name}: not the image's check"
        wanted = {key.replace("-", "_"): value for key, value in flags.items()}
        assert {key: str(check.get(key)) for key in wanted} == wanted, name


def test_the_health_check_asks_the_port_the_process_serves():
    """``/healthz`` is served on METRICS_PORT, on every interface of the container."""
    image = dockerfile.env()
    assert image["METRICS_HOST"] == "0.0.0.0" and image["METRICS_PORT"].isdigit()
    assert dockerfile.only("EXPOSE").arguments == image["METRICS_PORT"]
    for name, service in bot_services().items():
        environment = service["environment"]
        assert str(environment["METRICS_PORT"]) == image["METRICS_PORT"], name
        assert environment["METRICS_HOST"] == "0.0.0.0", name
        assert service.get("user") in (None, dockerfile.only("USER").arguments), name


# -- secrets ---------------------------------------------------------------------------------


def secret_names() -> set[str]:
    """The settings kept out of ``repr`` (tokens, keys), by their variable's name."""
    return {f.name.upper() for f in fields(Settings) if not f.repr}


def written_secrets(services: dict[str, Any]) -> list[str]:
    """Where the services' environment holds a secret itself, not a ``${…}`` from .env."""
    found = []
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            password_here = "PASSWORD" in key and not INTERPOLATED.fullmatch(text)
            if key in secret_names() or password_here:
                found.append(f"{name}: {key}")
            for password in URL_PASSWORD.findall(text):
                if not INTERPOLATED.fullmatch(password):
                    found.append(f"{name}: {key} (a URL's password)")
    return found


def test_no_secret_is_written_in_the_file():
    for name, service in bot_services().items():
        assert service.get("env_file") == ".env", name  # the secrets come from there
        (password,) = URL_PASSWORD.findall(service["environment"]["DATABASE_URL"])
        assert password.startswith("${POSTGRES_PASSWORD"), name  # seen, and from .env
    assert written_secrets(compose()["services"]) == []


def test_the_secret_check_finds_a_written_secret():
    services = {
        "postgres": {"environment": {"POSTGRES_PASSWORD": "imagine"}},
        "gateway": {
            "environment": {
                "DATABASE_URL": "postgresql://imagine:imagine@postgres:5432/imagine",
                "DISCORD_TOKEN": "MTA5ODc2NTQzMjEwOTg3NjU0.GabcDE.xyz",
                "LOG_LEVEL": "INFO",
            }
        },
    }
    assert written_secrets(services) == [
        "postgres: POSTGRES_PASSWORD",
        "gateway: DATABASE_URL (a URL's password)",
        "gateway: DISCORD_TOKEN",
    ]
