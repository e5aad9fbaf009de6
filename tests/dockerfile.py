"""The Dockerfile read as Docker reads its instructions, for the tests that check what it says
(no Docker engine is at hand to build it): and ``.dockerignore``'s rules, to tell what a build
would be sent."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, …
    arguments: str  # continuation lines joined with a space
    line: int


def instructions(text: str | None = None) -> list[Instruction]:
    """Comment and blank lines dropped (inside a continuation too, as Docker drops them),
    lines ending in a backslash joined to the next."""
    text = DOCKERFILE.read_text() if text is None else text
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not parts:
            start = number
        continued = line.endswith("\\")
        parts.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, arguments = " ".join(parts).partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip(), start))
            parts = []
    assert not parts, "the Dockerfile ends inside a continuation"
    return found


def all_of(keyword: str, text: str | None = None) -> list[Instruction]:
    return [i for i in instructions(text) if i.keyword == keyword]


def only(keyword: str, text: str | None = None) -> Instruction:
    found = all_of(keyword, text)
    assert len(found) == 1, f"{len(found)} {keyword} instructions"
    return found[0]


def exec_form(arguments: str) -> list[str]:
    """``["python", "bot.py"]``: the exec form (a JSON array of strings), no shell."""
    assert arguments.startswith("["), f"not the exec form: {arguments}"
    words = json.loads(arguments)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), arguments
    return words


def env() -> dict[str, str]:
    """Every ``ENV key=value`` of the Dockerfile (the later wins)."""
    found: dict[str, str] = {}
    for instruction in all_of("ENV"):
        for pair in shlex.split(instruction.arguments):
            key, equals, value = pair.partition("=")
            assert equals, f"ENV {pair}: use key=value"
            found[key] = value
    return found


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (``{"interval": "15s", …}``) and its exec-form command."""
    options, _, command = only("HEALTHCHECK").arguments.partition(" CMD ")
    flags = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    assert " ".join(f"--{k}={v}" for k, v in flags.items()) == options.strip(), options
    return flags, exec_form(command.strip())


def copied() -> list[str]:
    """The sources of every COPY (not its destination), as written."""
    sources: list[str] = []
    for instruction in all_of("COPY"):
        words = [w for w in instruction.arguments.split() if not w.startswith("--")]
        sources += words[:-1]
    return sources


# -- .dockerignore ---------------------------------------------------------------------------


def ignore_rules(text: str | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` as (exception?, pattern) rules, in order."""
    text = (ROOT / ".dockerignore").read_text() if text is None else text
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((exception, re.compile(_regex(pattern))))
    return rules


def _regex(pattern: str) -> str:
    """Docker's matching (Go's filepath.Match, plus ``**`` for any number of folders)."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return "".join(out) + r"\Z"


def sent_to_build(path: str, rules: list[tuple[bool, re.Pattern[str]]] | None = None) -> bool:
    """Whether a build would be sent ``path`` (relative to the repository): the last rule
    that matches the path or one of its folders decides, as in Docker."""
    rules = ignore_rules() if rules is None else rules
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    sent = True
    for exception, pattern in rules:
        if any(pattern.match(prefix) for prefix in prefixes):
            sent = exception
    return sent
