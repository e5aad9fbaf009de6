"""Keep the translation catalogs in step with the code.

    python scripts/catalog.py update    # new messages into every locales/<lang>/.../imagine.po
    python scripts/catalog.py compile   # each .po into its .mo (what the bot reads)
    python scripts/catalog.py check     # exit 1 if a message is missing, empty or fuzzy

The messages are what the code marks with ``_()`` and ``n_()`` (Babel's extractor), and every
name, description and choice of the slash commands and menus (read off the command tree, as
discord.py hands them to the translator when it syncs). English's catalog holds each message
as itself, so "every message is in every catalog" is checkable; a translator fills in the
other languages' ``msgstr`` (a new message arrives empty, never guessed).
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imagine.i18n import DOMAIN, LOCALE_DIR, Language  # noqa: E402

SOURCES = ("imagine", "cogs", "discord_jobs")
TOP_LEVEL = ("bot.py", "worker.py")
"""Folders, and the processes' own files, whose marked messages go into the catalogs."""
KEYWORDS = {"_": None, "n_": (1, 2)}
COMMAND_COMMENT = "a slash command, option or menu: names are lowercase, no spaces (menus: any)"


def code_messages() -> dict[str | tuple[str, str], list[str]]:
    """Every message marked in the code, with where it is used."""
    found: dict[str | tuple[str, str], list[str]] = {}
    for folder in SOURCES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            key = message if isinstance(message, str) else (message[0], message[1])
            found.setdefault(key, []).append(f"{folder}/{filename}:{lineno}")
    for name in TOP_LEVEL:
        with (ROOT / name).open("rb") as source:
            for lineno, message, _comments, _context in extract(
                "python", source, keywords=KEYWORDS
            ):
                key = message if isinstance(message, str) else (message[0], message[1])
                found.setdefault(key, []).append(f"{name}:{lineno}")
    return found


def command_messages() -> list[str]:
    """Every string of the command tree that the translator is asked for."""
    return asyncio.run(_command_strings())


async def _command_strings() -> list[str]:
    import discord
    from discord import app_commands
    from discord.ext import commands

    from bot import EXTENSIONS

    seen: list[str] = []

    class Recorder(app_commands.Translator):
        async def translate(self, string, locale, context):  # type: ignore[override]
            if string.message not in seen:
                seen.append(string.message)
            return None

    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    bot.launcher = None  # type: ignore[attr-defined]  # the cogs only keep these
    bot.languages = None  # type: ignore[attr-defined]
    bot.member_tokens = None  # type: ignore[attr-defined]
    bot.whoami = None  # type: ignore[attr-defined]
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    recorder = Recorder()
    for kind in (
        discord.AppCommandType.chat_input,
        discord.AppCommandType.message,
        discord.AppCommandType.user,
    ):
        for command in bot.tree.get_commands(type=kind):
            await command.get_translated_payload(bot.tree, recorder)
    return seen


def template() -> Catalog:
    catalog = Catalog(domain=DOMAIN, project="Imagine Bot", charset="utf-8")
    for message, places in code_messages().items():
        catalog.add(
            message, locations=[(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in places]
        )
    for message in command_messages():
        if message not in catalog:
            catalog.add(message, auto_comments=[COMMAND_COMMENT])
    return catalog


def po_path(language: Language) -> Path:
    return LOCALE_DIR / language.value / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(language: Language) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language.value, domain=DOMAIN, project="Imagine Bot")
    with path.open("rb") as file:
        return read_po(file, locale=language.value, domain=DOMAIN)


def save(catalog: Catalog, language: Language) -> None:
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=100, omit_header=False, sort_output=False)


def update() -> None:
    pot = template()
    for language in Language:
        catalog = load(language)
        catalog.update(copy.deepcopy(pot), no_fuzzy_matching=True)  # update shares messages
        catalog.obsolete.clear()
        if language is Language.EN:
            for message in catalog:
                if message.id:
                    message.string = message.id
        save(catalog, language)
    print(f"{len(pot)} messages; now translate the empty ones and run: compile")


def compile_all() -> None:
    for language in Language:
        catalog = load(language)
        with (po_path(language).with_suffix(".mo")).open("wb") as file:
            write_mo(file, catalog, use_fuzzy=False)
    print("compiled", ", ".join(language.value for language in Language))


def problems() -> list[str]:
    """What is wrong with the catalogs: messages missing, untranslated or fuzzy."""
    wanted = template()
    found: list[str] = []
    for language in Language:
        catalog = load(language)
        for message in wanted:
            if not message.id:
                continue
            entry = catalog.get(message.id)
            if entry is None:
                found.append(f"{language}: missing {message.id!r}")
            elif entry.fuzzy:
                found.append(f"{language}: fuzzy {message.id!r}")
            elif not _filled(entry.string):
                found.append(f"{language}: empty {message.id!r}")
    return found


def _filled(string: str | Iterable[str]) -> bool:
    if isinstance(string, str):
        return bool(string.strip())
    return all(part.strip() for part in string)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        wrong = problems()
        print("\n".join(wrong) or "every message is translated")
        return 1 if wrong else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
