"""Prompts in other languages: when to ask a chat model for English, what to ask, and which
answers to believe.

The engine never translates on its own initiative: a caller (the bot, for a server whose
admins chose a translation model) asks ``Engine.translate_prompt``. Asking costs a request
and seconds, so a prompt is sent only when it has a letter outside ASCII: every English
prompt stays local, while French, German, Russian, Chinese... prompts (nearly all of which
have such a letter) are asked about. The price of that cheap test is that an all-ASCII
non-English prompt (``un gato con sombrero``) is drawn as written; the price of asking about
every prompt would be a round trip for every English one. A model that answers with the
prompt unchanged (``Pokémon``, ``café``) means nothing needed translating.

The answer is checked, never trusted blindly: an empty answer, one far longer than the prompt
(a chatty model explaining itself) or one that changed the prompt's inline ``--flags`` is the
backend's failure, not a translation.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .errors import BackendError
from .flags import FLAGS

SYSTEM_PROMPT = (
    "You translate prompts for an image generator into English. Translate the user's message "
    "into natural English and answer with the translation only: no quotes, no notes, no "
    "explanations. Keep names of people, places, brands and artists as they are. Keep inline "
    "options that start with -- (such as --ar 16:9, --seed 7, --model flux, --count 2) "
    "exactly as written, in the same place; translate only the text of a --no option. If the "
    "message is already English, answer with it unchanged."
)

ANSWER_SLACK = 200
"""Characters a translation may have beyond ``ANSWER_RATIO`` times the prompt's."""
ANSWER_RATIO = 4
MAX_TOKENS_CEILING = 2048
"""The most tokens a translation may take (a prompt of a few thousand characters)."""

_FLAG = re.compile(r"(?<!\S)(?:--|[—–])([A-Za-z]+)")
_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "„": "“", "「": "」"}


@dataclass(frozen=True, slots=True)
class Translation:
    """A prompt and its English translation, for a result that shows both: ``model`` is the
    chat model that translated and ``backend`` the backend that served it, by label."""

    original: str
    english: str
    model: str
    backend: str = ""


def needs_translation(prompt: str) -> bool:
    """Does ``prompt`` have a letter outside ASCII? (See the module notes for why that test.)"""
    return any(ch.isalpha() and not ch.isascii() for ch in prompt)


def max_tokens(prompt: str) -> int:
    """A bound on the answer: an English translation takes fewer tokens than the prompt has
    characters, plus room for names the tokenizer splits badly."""
    return min(MAX_TOKENS_CEILING, 64 + 2 * len(prompt))


def translation_payload(prompt: str, model: str) -> dict[str, Any]:
    """The ``/chat/completions`` body: deterministic (temperature 0) and bounded."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ],
        "temperature": 0,
        "max_tokens": max_tokens(prompt),
    }


def checked_answer(prompt: str, answer: str, label: str) -> str | None:
    """The English in ``answer``, or None when it is ``prompt`` again; ``BackendError`` for an
    answer that is no translation (empty, far too long, or with other ``--flags``)."""
    english = _unwrapped(_THINKING.sub("", answer, count=1).strip(), prompt)
    if not english:
        raise BackendError(f"{label} answered without a translation", backend=label)
    if len(english) > ANSWER_RATIO * len(prompt) + ANSWER_SLACK:
        raise BackendError(
            f"{label} answered with {len(english)} characters for a {len(prompt)}-character "
            "prompt: that is no translation",
            backend=label,
        )
    if flag_names(english) != flag_names(prompt):
        raise BackendError(f"{label} changed the prompt's --flags", backend=label)
    if _plain(english) == _plain(prompt):
        return None
    return english


def flag_names(text: str) -> Counter[str]:
    """The inline flags ``text`` sets (``--ar`` and ``—ar`` both count as ``aspect``)."""
    return Counter(FLAGS[word.lower()] for word in _FLAG.findall(text) if word.lower() in FLAGS)


def _unwrapped(text: str, prompt: str) -> str:
    """``text`` without quotes around the whole of it, unless the prompt had them too."""
    closing = _QUOTES.get(text[:1])
    if closing and len(text) >= 2 and text.endswith(closing):
        stripped = prompt.strip()
        if not (stripped[:1] == text[:1] and stripped.endswith(closing)):
            return text[1:-1].strip()
    return text


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()
