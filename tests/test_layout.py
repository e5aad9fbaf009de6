"""Which way imports go (DESIGN, Layout): the Discord side (``bot.py``, ``worker.py``,
``cogs/``, ``discord_jobs/``) imports ``imagine/``, never the other way round; and the engine
(what ``python -m imagine`` and ``imagine.providers`` load) needs neither discord.py nor the
database layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISCORD_SIDE = {"bot", "worker", "cogs", "discord_jobs", "discord"}
DATABASE_LAYER = {"sqlalchemy", "asyncpg", "aiosqlite", "procrastinate", "psycopg"}


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports, anywhere in the file (a lazy
    import inside a function counts too); relative imports stay inside the package."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_nothing_under_imagine_imports_the_discord_side():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & DISCORD_SIDE)
        for path in sorted((ROOT / "imagine").rglob("*.py"))
        if imported_roots(path) & DISCORD_SIDE
    }
    assert offenders == {}


def test_the_check_sees_an_upward_import(tmp_path):
    """The check above could fail: an import of ``bot`` (even inside a function) is found."""
    module = tmp_path / "sneaky.py"
    module.write_text("def f():\n    from cogs.utils import history\n    import bot\n")
    assert imported_roots(module) >= {"cogs", "bot"}


def test_the_engine_loads_without_discord_or_a_database():
    probe = (
        "import sys, imagine.engine, imagine.cli, imagine.providers, imagine.check\n"
        f"loaded = {{m.split('.')[0] for m in sys.modules}}\n"
        f"print(sorted(loaded & set({sorted(DISCORD_SIDE | DATABASE_LAYER)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
