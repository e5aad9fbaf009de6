"""Image to prompts: the question a vision model is asked, and reading prompts from its answer.

Models answer a request for "4 prompts, one per line" in many shapes: numbered (``1.``,
``2)``, ``(3)``), bulleted, quoted, in bold, under a "Here are four prompts:" preamble,
with blank lines between, or all on one line. The parser accepts all of these; an answer with
no such structure becomes one prompt made of the whole text. Every prompt is cleaned as a
prompt is (``clean_text``), duplicates go, and each is capped at ``MAX_DESCRIBED_CHARS``.
"""

from __future__ import annotations

import re

from ..wordfilter import clean_text

MAX_DESCRIBED_CHARS = 1000
MAX_DESCRIBE_COUNT = 10
WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

_MARKER = re.compile(
    r"""^\s*(?:
        \(?\d{1,2}\s*[.):\]]           # 1.  2)  (3)  4:  5]
      | [-*+•‣◦·–—](?=\s)              # bullets and dashes (a space follows)
      | \#{1,6}(?=\s)                  # a markdown heading
    )\s*""",
    re.VERBOSE,
)
_LABEL = re.compile(r"^\s*(?:prompt|option|version|variant)\s*\d{0,2}\s*[:.)\-–—]\s*", re.I)
_LABEL_ONLY = re.compile(r"(?:prompts?|options?|versions?|variants?)\s*\d{0,2}\s*[:.]?", re.I)
_INLINE_NUMBERS = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]\s+")
_QUOTES = ('"', "'", "“", "”", "‘", "’", "«", "»", "`")
_EMPHASIS = re.compile(r"^(\*\*|__|\*|_)(.+)\1$")


def question_for(count: int) -> str:
    """What the vision model is asked: ``count`` different short prompts, one per line."""
    if count == 1:
        return (
            "Describe this image as one prompt for a text-to-image model: a single line of at "
            "most 60 words naming the subject, setting, style, lighting and colours. "
            "Answer with the prompt only."
        )
    return (
        f"Describe this image as {WORDS[count - 1]} different prompts for a text-to-image "
        "model, each a single line of at most 60 words naming the subject, setting, style, "
        f"lighting and colours. Answer with the {count} prompts only, numbered 1 to {count}, "
        "one per line."
    )


def parse_prompts(answer: str, count: int) -> list[str]:
    """Up to ``count`` clean, distinct prompts from a model's answer (maybe none, if the
    answer is empty once cleaned)."""
    text = clean_text(answer or "").replace("\r", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) == 1 and len(_INLINE_NUMBERS.findall(lines[0])) >= 2:
        lines = [part for part in _INLINE_NUMBERS.split(lines[0]) if part.strip()]
    prompts = [_unwrap(line) for line in lines if not _is_preamble(line, lines)]
    found = _distinct(p for p in prompts if p)
    if not found:
        whole = _unwrap(" ".join(text.split()))
        found = [whole] if whole else []
    return found[:count]


def _is_preamble(line: str, lines: list[str]) -> bool:
    """ "Here are four prompts:" and the like: a line that announces the others."""
    stripped = line.strip()
    return len(lines) > 1 and stripped.endswith(":") and not _MARKER.match(stripped)


def _unwrap(line: str) -> str:
    """One line without its list marker, label, quotes and emphasis; whitespace collapsed."""
    text = " ".join(line.split())
    for _ in range(3):  # "1. **Prompt 1:** "a fox"" peels in layers
        before = text
        text = _MARKER.sub("", text, count=1)
        match = _EMPHASIS.match(text)
        if match:
            text = match.group(2).strip()
        text = re.sub(r"^(\*\*|__)(.+?)\1\s*", _bold_label, text)
        text = _LABEL.sub("", text, count=1)
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
        if text == before:
            break
    text = text.strip()
    return "" if _LABEL_ONLY.fullmatch(text) else _cap(text)


def _bold_label(match: re.Match[str]) -> str:
    """``**Prompt 1:**`` is a label to drop; ``**a red fox**`` at the start is text to keep."""
    inner = match.group(2).strip()
    return "" if inner.endswith(":") or _LABEL.match(inner + ":") else inner + " "


def _cap(text: str) -> str:
    if len(text) <= MAX_DESCRIBED_CHARS:
        return text
    cut = text[:MAX_DESCRIBED_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > MAX_DESCRIBED_CHARS // 2 else cut).rstrip(" ,;")


def _distinct(prompts) -> list[str]:
    seen: set[str] = set()
    result = []
    for prompt in prompts:
        key = " ".join(prompt.casefold().split()).rstrip(".")
        if key not in seen:
            seen.add(key)
            result.append(prompt)
    return result
