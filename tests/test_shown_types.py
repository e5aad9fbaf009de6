"""What is shown to people is typed ``Shown`` (``imagine.i18n``): the type checker refuses a
plain ``str`` there, which is what an f-string, ``+``, ``.format`` or ``.join`` makes of a
translatable message (issue 16: "Generating 3/28" in English to a Russian member).

mypy runs here as CI runs it (pyproject's configuration) on two small files: one with each
misuse, one with the forms that keep a message translatable.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(180)

HEADER = """\
from imagine.i18n import Verbatim, _, joined, texts
from imagine.progress import JobStatus
from imagine.responses import Notice, Reasoning

GENERATING = _("Generating")
index, length = 3, 28


def status() -> JobStatus:
    raise NotImplementedError
"""

MISUSES = {
    "f-string": 'Reasoning(f"{GENERATING} {index}/{length}")',
    "concatenation": 'Reasoning(GENERATING + " 3/28")',
    "format": 'Notice("{} {}/{}".format(GENERATING, index, length))',
    "percent": 'Reasoning("%s %d/%d" % (GENERATING, index, length))',
    "join": 'Reasoning(" ".join([GENERATING, "3/28"]))',
    "str()": "Reasoning(str(GENERATING))",
    "a slice": "Reasoning(GENERATING[:4])",
    "translated by hand": 'texts("ru")(GENERATING + "!")',
    "a job's status": 'status().progress(f"{GENERATING} {index}/{length}")',
}

CORRECT = """\
Reasoning(GENERATING)
Reasoning(_("Generating {index}/{length}", index=index, length=length))
Reasoning(Verbatim(f"Sampling {index}/{length}"))  # a Space's own words, said so
Notice(joined("; ", [GENERATING, Verbatim("Sampling 3/28")]))
texts("ru")(_("{desc} {index}/{length}", desc=GENERATING, index=index, length=length))
"""


def mypy_errors(tmp_path: Path, name: str, body: str) -> list[tuple[int, str]]:
    source = tmp_path / name
    source.write_text(HEADER + textwrap.dedent(body))
    stdout, stderr, _status = api.run(
        [
            "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(tmp_path / "cache"),
            "--no-incremental",
            str(source),
        ]
    )  # fmt: skip
    assert not stderr, stderr
    found = []
    for line in stdout.splitlines():
        match = re.match(rf".*{re.escape(name)}:(\d+): error: (.*)", line)
        if match:
            found.append((int(match[1]), match[2]))
        else:
            assert not re.search(r": error:", line), line  # no error anywhere else
    return found


def test_the_checker_refuses_a_message_that_lost_its_translation(tmp_path):
    first = HEADER.count("\n") + 1
    body = "\n".join(MISUSES.values())
    errors = mypy_errors(tmp_path, "misuse.py", body + "\n")
    lines = {line for line, _message in errors}
    assert lines == set(range(first, first + len(MISUSES))), errors
    for _line, message in errors:
        assert '"Text | Verbatim"' in message and "[arg-type]" in message, message


def test_the_checker_accepts_messages_and_words_said_to_be_verbatim(tmp_path):
    assert mypy_errors(tmp_path, "correct.py", CORRECT) == []
