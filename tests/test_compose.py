"""docker-compose.yml gives every bot and worker process the time its stop needs (issue 16).

``docker compose stop`` (and a deploy) sends the service's ``stop_signal`` to PID 1, then
SIGKILL once ``stop_grace_period`` has passed (10 s unless set). A period shorter than
``SHUTDOWN_GRACE_SECONDS`` plus the time to tell or hand back the jobs and close would cut
running jobs off untold; a signal sent to ``sh`` (``sh -c "… && python bot.py"``) never
reaches python at all, so each command must ``exec`` it.

PyYAML is no dependency of the project, so the file is read by ``read_yaml`` below: the
small part of YAML this file uses, anything else refused (swap in ``yaml.safe_load`` if
PyYAML ever becomes a test dependency).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOSING_MARGIN = 10.0
"""Seconds a process needs after SHUTDOWN_GRACE_SECONDS at least: the told or handed-back
jobs' replies, the database, the HTTP sessions."""
PROCESS = re.compile(r"(?:^|\bexec\s+)python\s+(bot|worker)\.py\b")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
KEY = re.compile(r"(?P<key>[^\s:#\-][^:]*?|<<)\s*:(?:\s+(?P<rest>.*))?$")


def duration(text: str) -> float:
    """Seconds in a compose duration (``45s``, ``1m15s``, ``1h``, ``500ms``)."""
    parts = DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def test_every_bot_and_worker_gets_time_to_stop():
    compose = read_yaml((ROOT / "docker-compose.yml").read_text())
    kinds: dict[str, str] = {}
    for name, service in compose["services"].items():
        command = str(service.get("command", ""))
        assert "imagine.worker" not in command, f"{name}: the worker is python worker.py now"
        if "bot.py" not in command and "worker.py" not in command:
            continue
        process = PROCESS.search(command)
        assert process, f"{name}: sh would keep the stop signal from python: exec it ({command})"
        kinds[name] = process.group(1)
        assert service.get("stop_signal") == "SIGTERM", name
        grace = float(service["environment"]["SHUTDOWN_GRACE_SECONDS"])
        period = duration(str(service.get("stop_grace_period", "10s")))
        assert period >= grace + CLOSING_MARGIN, (name, period, grace)
    assert sorted(set(kinds.values())) == ["bot", "worker"], kinds


def test_the_yaml_reader_reads_anchors_merges_and_lists():
    text = """
x-base: &base  # a comment
  environment:
    URL: postgresql://a:b@host:5432/db
    QUOTED: "30"
  restart: unless-stopped
services:
  one:
    <<: *base
    restart: "no"
    volumes:
      - data:/var/lib/data
    test: ["CMD", "true"]
"""
    one = read_yaml(text)["services"]["one"]
    assert one["environment"] == {"URL": "postgresql://a:b@host:5432/db", "QUOTED": "30"}
    assert one["restart"] == "no"  # the mapping's own key wins over the merged one
    assert one["volumes"] == ["data:/var/lib/data"]
    assert one["test"] == '["CMD", "true"]'  # flow collections stay text


# -- a reader for the YAML docker-compose.yml uses ------------------------------------------


def read_yaml(text: str) -> dict[str, Any]:
    """Block mappings and lists of scalars, plain and quoted scalars, comments, ``&anchor``
    after a key and ``<<: *anchor`` merges; flow collections are kept as text."""
    lines = []
    for raw in text.splitlines():
        content = _without_comment(raw).rstrip()
        if content.strip():
            lines.append((len(content) - len(content.lstrip(" ")), content.strip()))
    anchors: dict[str, Any] = {}
    value, end = _block(lines, 0, lines[0][0], anchors)
    assert end == len(lines), f"cannot read line {lines[end]}"
    assert isinstance(value, dict)
    return value


def _without_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'" and (index == 0 or line[index - 1] in " :-["):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] == " "):
            return line[:index]
    return line


def _block(lines: list[tuple[int, str]], start: int, indent: int, anchors: dict) -> tuple:
    if lines[start][1].startswith("- "):
        items = []
        index = start
        while index < len(lines) and lines[index][0] == indent:
            item = lines[index][1]
            assert item.startswith("- ") and not KEY.match(item[2:]), f"unsupported: {item}"
            items.append(_scalar(item[2:]))
            index += 1
        return items, index
    own: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    index = start
    while index < len(lines) and lines[index][0] == indent:
        match = KEY.match(lines[index][1])
        assert match, f"unsupported: {lines[index][1]}"
        key, rest = match["key"], (match["rest"] or "").strip()
        index += 1
        if rest.startswith("*"):
            value = anchors[rest[1:]]
        elif not rest or rest.startswith("&"):
            value = None
            if index < len(lines) and lines[index][0] > indent:
                value, index = _block(lines, index, lines[index][0], anchors)
            if rest:
                anchors[rest[1:]] = value
        else:
            value = _scalar(rest)
        if key == "<<":
            merged.update(value)
        else:
            own[key] = value
    assert index == len(lines) or lines[index][0] < indent, f"bad indent: {lines[index]}"
    return {**merged, **own}, index


def _scalar(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        assert "\\" not in text, f"escapes are not supported: {text}"
        return text[1:-1]
    return text
