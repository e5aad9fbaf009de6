"""deploy/: the sample Grafana dashboard and the Prometheus alert rules load, and every
metric they use is one a process of the bot really exports (read from a rendered registry,
as Prometheus would read it), with the labels it really has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from discord_jobs.watching import DiscordRequests
from imagine.engine import Engine
from imagine.metrics import Metrics
from imagine.outcomes import Outcome
from imagine.settings import Settings
from imagine.store import JobRecord

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for every target (not the bot's to export)."""
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


async def exported() -> dict[str, set[str]]:
    """Every sample name a process exports, with its label names: a real ``Metrics`` (and
    the Discord side's counter) after one of each kind of event, rendered and parsed."""
    metrics = Metrics()
    discord_requests = DiscordRequests(metrics.registry)
    async with Engine(Settings.from_env({})) as engine:
        metrics.watch_engine(engine)
        metrics.watch_queue(lambda: (0, 0))
        job = JobRecord(1, 1, None, None, "slash", "a fox", "flux", 1024, 1024, None, "done")
        metrics.job_started(job)
        metrics.job_ended(job, Outcome.DONE, "G4F flux")
        metrics.backend_tried("g4f-flux", "ok", 1.0)
        metrics.horde_wait_announced("horde", 30.0)
        discord_requests.requests.labels("200").inc()
        text = generate_latest(metrics.registry).decode()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def used(expr: str) -> list[tuple[str, set[str]]]:
    """The bot's (and Prometheus's own) series an expression selects, with the label names
    its selector matches on."""
    found = []
    for name, selector in SELECTOR.findall(expr):
        if name.startswith(("imagine_", "process_")) or name in PROMETHEUS_OWN:
            found.append((name, set(LABEL.findall(selector))))
    return found


def check(expr: str, names: dict[str, set[str]], where: str) -> list[str]:
    problems = []
    selected = used(expr)
    if not selected:
        problems.append(f"{where}: no metric of the bot in {expr!r}")
    for name, labels in selected:
        if name in PROMETHEUS_OWN:
            continue
        if name not in names:
            problems.append(f"{where}: {name} is not exported")
        elif labels - names[name]:
            problems.append(f"{where}: {name} has no label {sorted(labels - names[name])}")
    return problems


async def test_the_check_sees_what_is_not_exported():
    """The checks below could fail: a misspelled name, a label the metric lacks."""
    names = await exported()
    assert {"imagine_jobs_total", "imagine_job_seconds_bucket", "imagine_backend_state"} <= set(
        names
    )
    assert check('rate(imagine_job_total{outcome="done"}[5m])', names, "x") == [
        "x: imagine_job_total is not exported"
    ]
    assert check('imagine_backend_state{model="flux"}', names, "x") == [
        "x: imagine_backend_state has no label ['model']"
    ]
    assert check("sum(rate(foo[5m]))", names, "x") == [
        "x: no metric of the bot in 'sum(rate(foo[5m]))'"
    ]


async def test_the_grafana_dashboard_uses_only_exported_metrics():
    dashboard: dict[str, Any] = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    names = await exported()
    assert dashboard["title"] and dashboard["panels"]
    problems = []
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            exprs.append(target["expr"])
            problems += check(target["expr"], names, panel["title"])
    assert problems == []
    # The names DESIGN fixes are all on it.
    shown = " ".join(exprs)
    for name in (
        "imagine_jobs_total",
        "imagine_job_seconds",
        "imagine_queue_waiting",
        "imagine_jobs_running",
        "imagine_backend_state",
        "imagine_discord_requests_total",
    ):
        assert name in shown, name


async def test_the_alert_rules_load_and_use_only_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    names = await exported()
    (group,) = rules["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    problems = []
    for alert, rule in alerts.items():
        assert rule["annotations"]["summary"], alert
        problems += check(rule["expr"], names, alert)
    assert problems == []
    # What the issue asks to be alerted on: not ready, a backend down, queue wait, 429s.
    assert "imagine_ready == 0" in alerts["ImagineBotNotReady"]["expr"]
    assert "imagine_backend_state" in alerts["ImagineBackendDown"]["expr"]
    assert "imagine_queue_wait_seconds_bucket" in alerts["ImagineQueueWaitHigh"]["expr"]
    assert 'status="429"' in alerts["ImagineDiscord429s"]["expr"]
