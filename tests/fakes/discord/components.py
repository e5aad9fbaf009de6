"""Component trees (message components and modal components): numbering and finding.

Discord gives every component an ``id`` (depth-first, skipping ids the app chose) and nests
them three ways: ``components`` (action rows, containers, sections), ``accessory``
(sections) and ``component`` (labels, in modals).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["children", "find_component", "number_components", "walk"]


def children(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The components directly inside ``item``."""
    inner = list(item.get("components", []))
    for key in ("accessory", "component"):
        if isinstance(item.get(key), dict):
            inner.append(item[key])
    return inner


def walk(components: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every component, depth-first (a container before what it holds)."""
    for item in components:
        yield item
        yield from walk(children(item))


def number_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy components and give each an ``id`` (Discord numbers them depth-first)."""
    counter = itertools.count(1)
    used = {item["id"] for item in walk(components) if "id" in item}

    def number(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            copy = dict(item)
            if "id" not in copy:
                ident = next(counter)
                while ident in used:
                    ident = next(counter)
                copy["id"] = ident
            if "components" in copy:
                copy["components"] = number(copy["components"])
            for key in ("accessory", "component"):
                if isinstance(copy.get(key), dict):
                    copy[key] = number([copy[key]])[0]
            out.append(copy)
        return out

    return number(components)


def find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    """The component with that ``custom_id``, wherever it is nested."""
    return next((item for item in walk(components) if item.get("custom_id") == custom_id), None)
