"""Prompt cleaning and blocked-word matching that see through disguised letters.

A blocked word must not slip through because someone wrote it with invisible characters
(``nu\\u2060de``), fullwidth or styled letters (``ｎｕｄｅ``, ``𝐧𝐮𝐝𝐞``), combining marks
(``n̶u̶d̶e̶``) or letters of another script that look the same (``nуde`` with a Cyrillic ``у``).
Two forms exist for that:

- ``clean_text``: what a model is sent. Invisible and control characters go, compatibility
  characters become plain ones, and obfuscating marks on Latin, Greek and Cyrillic letters go;
  the text stays what the user wrote in every script, accents included.
- ``matching_form``: what blocked words are compared on, never shown or sent: no marks, case
  folded, and every look-alike folded to its prototype from Unicode's confusables data
  (UTS #39), as the ``confusable-homoglyphs`` package ships it.

Both sides of a comparison (the prompt and each blocked word) go through the same folding,
character by character, so a word found in a prompt is found in its disguised spellings too.

Look-alike folding goes by shape: Cyrillic ``у`` is drawn like ``y``, so ``nуde`` folds to
``nyde``. Readers still take it for ``nude``, so a word that mixes Latin letters
with Cyrillic or Greek ones is also compared with those letters transliterated (``anyascii``):
``nуde`` → ``nude``, Greek ``νude`` → ``nude``. Only mixed words are: a Russian prompt is
not transliterated, or ``горе`` (grief) would match ``gore``.

Letters spread out with spaces or dots (``n u d e``, ``n.u.d.e``) are not joined up: that
would need word-level rules that misfire on ordinary text.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from functools import cache, lru_cache

_MARKS = frozenset({"Mn", "Me"})
_INVISIBLE = frozenset({"Cf", "Cc", "Cs"})
_LINE_BREAKS = frozenset({"Zl", "Zp"})
_MARKLESS_SCRIPTS = frozenset({"LATIN", "GREEK", "CYRILLIC"})
"""Scripts whose accents NFKC precomposes: a mark still on one of their letters is decoration."""
_DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")


def clean_text(text: str) -> str:
    """The text a model is sent: what the user wrote, without what only serves to hide words.

    - Line breaks become ``\\n`` and tabs a space; every other control character (Cc), format
      character (Cf: zero-width space and joiners, U+2060 word joiner, U+00AD soft hyphen,
      U+FEFF, bidi controls, tags...) and lone surrogate goes. U+2028/U+2029 become ``\\n``.
    - NFKC: fullwidth, mathematical and other compatibility letters become plain ones, and a
      letter followed by a combining accent becomes the precomposed letter. (It also rewrites a
      few compatibility characters elsewhere, e.g. Thai SARA AM into NIKHAHIT + SARA AA, which
      render the same; SentencePiece tokenizers such as T5's apply NFKC themselves.)
    - Combining marks (Mn, Me) still attached to a Latin, Greek or Cyrillic letter after NFKC
      go: every accent those scripts use in practice has a precomposed letter, so what remains
      is strike-through or zalgo stacking. The cost: rare sequences with no precomposed form
      (Yoruba ẹ́, a Russian stress mark on е́) lose that mark. Marks on letters of any other
      script stay, because Devanagari, Thai, Arabic, Hebrew and others cannot be written
      without them: a Hindi prompt comes through unchanged.

    Leading and trailing whitespace is left alone (``clean_prompt`` strips it). Idempotent.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = unicodedata.normalize("NFKC", _drop_invisible(text))
    return _drop_stray_marks(_drop_invisible(text))


def matching_form(text: str) -> str:
    """The form blocked words are compared on: ``clean_text``, no marks, case and look-alikes
    folded (``nуde``, ``NUDE``, ``nu\\u0301de`` all become ``nude``).

    Plain ASCII only has its case folded: the confusables data also maps ``m`` to ``rn`` and
    ``1`` to ``l``, which would make ordinary words match blocked words they do not contain.
    """
    return _skeleton(clean_text(text))


def find_blocked_word(prompt: str, words: Iterable[str]) -> str | None:
    """The first of ``words`` (as given) found in the prompt, else None.

    Found: the word's matching form occurs in the prompt's, or, where either has words mixing
    Latin with Cyrillic or Greek letters, the transliterated forms match. A word whose
    matching form is blank (only invisible characters or marks) blocks nothing, instead of
    matching every prompt.
    """
    haystacks: tuple[str, str] | None = None
    for word in words:
        needles = _forms(word)
        if not needles[0].strip():
            continue
        if haystacks is None:
            haystacks = _forms(prompt)
        if any(n in h for n, h in zip(needles, haystacks, strict=True)):
            return word
    return None


def _forms(text: str) -> tuple[str, str]:
    """The matching form, and the matching form with mixed-script words transliterated."""
    cleaned = clean_text(text)
    visual = _skeleton(cleaned)
    if cleaned.isascii():
        return visual, visual
    spoken = _WORD.sub(_transliterate_mixed, cleaned)
    return visual, visual if spoken == cleaned else _skeleton(spoken)


def _skeleton(cleaned: str) -> str:
    """``matching_form`` of text that has been through ``clean_text``."""
    decomposed = unicodedata.normalize("NFD", cleaned)
    if decomposed.isascii():
        return decomposed.casefold()
    return "".join(_fold_char(ch) for ch in decomposed)


_WORD = re.compile(r"\w+")
_TRANSLITERATED_SCRIPTS = frozenset({"CYRILLIC", "GREEK"})


def _transliterate_mixed(match: re.Match[str]) -> str:
    """A word mixing Latin and Cyrillic or Greek letters with the latter transliterated."""
    word = match.group()
    scripts = {_script(ch) for ch in word if ch.isalpha()}
    if "LATIN" not in scripts or not scripts & _TRANSLITERATED_SCRIPTS:
        return word
    from anyascii import anyascii

    return "".join(anyascii(ch) if _script(ch) in _TRANSLITERATED_SCRIPTS else ch for ch in word)


def _drop_invisible(text: str) -> str:
    if text.isascii() and text.replace("\n", "").isprintable():
        return text
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in _INVISIBLE and ch != "\n":
            continue
        kept.append("\n" if category in _LINE_BREAKS else ch)
    return "".join(kept)


def _drop_stray_marks(text: str) -> str:
    if text.isascii():
        return text
    kept = []
    base = ""
    for ch in text:
        if unicodedata.category(ch) in _MARKS:
            if base and _is_markless_letter(base):
                continue
        else:
            base = ch
        kept.append(ch)
    return "".join(kept)


def _is_markless_letter(ch: str) -> bool:
    """A letter of Latin, Greek or Cyrillic."""
    return unicodedata.category(ch).startswith("L") and _script(ch) in _MARKLESS_SCRIPTS


@lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    """The character's script (``LATIN``, ``CYRILLIC``, ``COMMON``...): Unicode's Scripts.txt
    as ``confusable-homoglyphs`` ships it (``unicodedata`` has no script property)."""
    if ch.isascii():
        return "LATIN" if ch.isalpha() else "COMMON"
    from confusable_homoglyphs import categories

    return categories.alias(ch)


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """One character's matching form; repeated until stable, since a prototype may fold on."""
    current = ch
    for _ in range(4):
        following = "".join(_fold_step(part) for part in current)
        if following == current:
            break
        current = following
    return current


def _fold_step(ch: str) -> str:
    """Decompose, drop marks, casefold, then replace each look-alike by its prototype."""
    if ch.isascii():
        return ch.casefold()
    table = _prototypes()
    out = []
    for part in unicodedata.normalize("NFKD", ch):
        if unicodedata.category(part) in _MARKS:
            continue
        lowered = part.casefold()
        folded = "".join(table.get(c, c) for c in lowered)
        if not folded.isascii() and part in table:
            # Cyrillic В looks like B, but its lower case в only like small-capital ʙ.
            upper = table[part].casefold()
            if upper.isascii() or folded == lowered:
                folded = upper
        out.append(folded)
    return "".join(out)


@cache
def _prototypes() -> dict[str, str]:
    """Each look-alike character and the prototype it folds to, from Unicode's confusables.

    ``confusable-homoglyphs`` ships confusables.txt as a symmetric graph (each character lists
    what it is confusable with). In the source data every character maps to one prototype and
    prototypes map to themselves, so each connected group is a star around its prototype; for
    a lone pair the ASCII side wins, otherwise the lower code point, so both spellings still
    fold to one form. A prototype that is a sequence (``rn``) gives way to a single ASCII
    member of its group (``m``), because ASCII never folds. ASCII characters are never keys.
    """
    from confusable_homoglyphs import utils

    neighbours: defaultdict[str, set[str]] = defaultdict(set)
    for key, entries in utils.load("confusables.json").items():
        # The data keeps the LRM/RLM that confusables.txt's comments put around RTL letters.
        a = key.translate(_DIRECTION_MARKS)
        for entry in entries:
            b = entry["c"].translate(_DIRECTION_MARKS)
            if a and b and a != b:
                neighbours[a].add(b)
                neighbours[b].add(a)
    table: dict[str, str] = {}
    seen: set[str] = set()
    for start in neighbours:
        if start in seen:
            continue
        group = _connected(start, neighbours)
        seen |= group
        prototype = _prototype_of(group, neighbours)
        for member in group:
            if len(member) == 1 and not member.isascii() and member != prototype:
                table[member] = prototype
    return table


def _connected(start: str, neighbours: dict[str, set[str]]) -> set[str]:
    group: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if node not in group:
            group.add(node)
            stack.extend(neighbours[node] - group)
    return group


def _prototype_of(group: set[str], neighbours: dict[str, set[str]]) -> str:
    hubs = [node for node in group if len(neighbours[node]) > 1]
    if len(hubs) == 1:
        prototype = hubs[0]
    else:  # a lone pair, or (never in the data so far) something that is not a star
        ascii_members = sorted(node for node in group if node.isascii())
        prototype = ascii_members[0] if len(ascii_members) == 1 else min(group)
    if len(prototype) != 1:
        single_ascii = sorted(node for node in group if len(node) == 1 and node.isascii())
        if single_ascii:
            prototype = single_ascii[0]
    return prototype
