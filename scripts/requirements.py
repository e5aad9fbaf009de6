"""The pinned requirements pyproject.toml declares, one a line, as pip reads them.

    python scripts/requirements.py [--pyproject PATH] [EXTRA ...]

The image's dependency layer (``Dockerfile``) installs what this prints for the ``postgres``
extra before any code is copied in, so that layer is built again only when pyproject.toml
changes, and pyproject.toml stays the one list of dependencies (no requirements file to keep
in step by hand). Standard library only: it runs in the bare base image.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def requirements(pyproject: Mapping[str, Any], extras: Iterable[str] = ()) -> list[str]:
    """``[project] dependencies``, then each extra's, each once, in their order."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    found = list(project["dependencies"])
    for extra in extras:
        if extra not in optional:
            raise KeyError(f"pyproject.toml has no extra {extra!r}")
        found += [line for line in optional[extra] if line not in found]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*", help="optional dependency groups to add")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    with args.pyproject.open("rb") as file:
        pyproject = tomllib.load(file)
    try:
        lines = requirements(pyproject, args.extras)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
