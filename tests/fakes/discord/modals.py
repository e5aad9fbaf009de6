"""Modals: the one a bot opens (callback type 9), validated as Discord does, and the
MODAL_SUBMIT data a user's answers make.

A modal is ``{custom_id (1..100), title (1..45), components (1..5)}``; each top-level
component is a Label (18: ``label`` 1..45, ``description`` ≤ 100, one ``component``), a
Text Display (10) or, the classic layout discord.py still emits for a bare ``TextInput``, an
Action Row (1) holding one Text Input. Text Inputs: ``style`` 1|2, ``min_length`` 0..4000,
``max_length`` 1..4000, ``value`` ≤ 4000, ``placeholder`` ≤ 100; custom ids unique; no
disabled component. Discord numbers the components (``id``), and a submission echoes the
layout with those ids: ``{"type": 18, "id", "component": {"type": 4, "id", "custom_id",
"value"}}`` for a Label, ``{"type": 1, "id", "components": [{"type": 4, ...}]}`` for a row,
``{"type": 10, "id"}`` for a Text Display; String Selects answer ``values``, File Uploads
``values`` (attachment ids, with the files in ``resolved.attachments``).

What the user's client would refuse to submit (a required input left empty, a value outside
``min_length``/``max_length``, an unknown option) is a ``ValueError`` in the test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .cdn import FakeAttachment, Upload, as_attachment
from .components import number_components, walk
from .errors import DiscordAPIError, form_error
from .models import public_attachment
from .protocol import (
    ACTION_ROW,
    CHANNEL_SELECT,
    CHECKBOX,
    CHECKBOX_GROUP,
    FILE_UPLOAD,
    LABEL,
    MENTIONABLE_SELECT,
    RADIO_GROUP,
    ROLE_SELECT,
    STRING_SELECT,
    TEXT_DISPLAY,
    TEXT_INPUT,
    USER_SELECT,
)

__all__ = ["fields", "submission", "validate_modal"]

MAX_TITLE = 45
MAX_COMPONENTS = 5
MAX_LABEL = 45
MAX_TEXT = 4000
_LABEL_CHILDREN = {
    TEXT_INPUT,
    STRING_SELECT,
    USER_SELECT,
    ROLE_SELECT,
    MENTIONABLE_SELECT,
    CHANNEL_SELECT,
    FILE_UPLOAD,
    RADIO_GROUP,
    CHECKBOX_GROUP,
    CHECKBOX,
}


# --------------------------------------------------------------------------- validation


def validate_modal(data: Any) -> dict[str, Any]:
    """The modal as Discord keeps it (components numbered), or a 400 at ``data.<field>``."""
    if not isinstance(data, dict):
        raise form_error("data", "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
    _text("data.custom_id", data.get("custom_id"), 1, 100)
    _text("data.title", data.get("title"), 1, MAX_TITLE)
    components = data.get("components")
    if not isinstance(components, list):
        raise form_error("data.components", "BASE_TYPE_REQUIRED", "This field is required")
    if not 1 <= len(components) <= MAX_COMPONENTS:
        raise _bad_length("data.components", 1, MAX_COMPONENTS)
    for i, component in enumerate(components):
        _validate_top(component, f"data.components.{i}")
    seen: set[str] = set()
    for item in walk(components):
        custom_id = item.get("custom_id")
        if custom_id is None:
            continue
        if custom_id in seen:
            raise form_error(
                "data.components",
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                f"Component custom id cannot be duplicated: {custom_id!r}",
            )
        seen.add(custom_id)
    return {
        "custom_id": data["custom_id"],
        "title": data["title"],
        "components": number_components(components),
    }


def _validate_top(component: Any, path: str) -> None:
    kind = component.get("type") if isinstance(component, dict) else None
    if kind == LABEL:
        _text(f"{path}.label", component.get("label"), 1, MAX_LABEL)
        if component.get("description") is not None:
            _text(f"{path}.description", component["description"], 0, 100)
        child = component.get("component")
        child_kind = child.get("type") if isinstance(child, dict) else None
        if child_kind not in _LABEL_CHILDREN:
            raise _type_choices(f"{path}.component.type", sorted(_LABEL_CHILDREN))
        _validate_input(child, f"{path}.component", in_label=True)
    elif kind == TEXT_DISPLAY:
        _text(f"{path}.content", component.get("content"), 1, MAX_TEXT)
    elif kind == ACTION_ROW:
        row = component.get("components")
        if not isinstance(row, list) or len(row) != 1:
            raise _bad_length(f"{path}.components", 1, 1)
        if not isinstance(row[0], dict) or row[0].get("type") != TEXT_INPUT:
            raise _type_choices(f"{path}.components.0.type", [TEXT_INPUT])
        _validate_input(row[0], f"{path}.components.0", in_label=False)
    else:
        raise _type_choices(f"{path}.type", [ACTION_ROW, TEXT_DISPLAY, LABEL])


def _validate_input(item: dict[str, Any], path: str, *, in_label: bool) -> None:
    _text(f"{path}.custom_id", item.get("custom_id"), 1, 100)
    if item.get("disabled"):
        raise form_error(
            f"{path}.disabled",
            "COMPONENT_DISABLED_IN_MODAL",
            "Modals can not currently have disabled components in them.",
        )
    kind = item["type"]
    if kind == TEXT_INPUT:
        if not in_label or item.get("label") is not None:
            _text(f"{path}.label", item.get("label"), 1, MAX_LABEL)
        if item.get("style") not in (1, 2):
            raise _type_choices(f"{path}.style", [1, 2])
        _number(f"{path}.min_length", item.get("min_length"), 0, MAX_TEXT)
        _number(f"{path}.max_length", item.get("max_length"), 1, MAX_TEXT)
        if item.get("value") is not None:
            _text(f"{path}.value", item["value"], 0, MAX_TEXT)
        if item.get("placeholder") is not None:
            _text(f"{path}.placeholder", item["placeholder"], 0, 100)
    elif kind == STRING_SELECT:
        options = item.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 25:
            raise _bad_length(f"{path}.options", 1, 25)
        _number(f"{path}.min_values", item.get("min_values"), 0, 25)
        _number(f"{path}.max_values", item.get("max_values"), 1, 25)
    elif kind == FILE_UPLOAD:
        _number(f"{path}.min_values", item.get("min_values"), 0, 10)
        _number(f"{path}.max_values", item.get("max_values"), 1, 10)


def _text(path: str, value: Any, low: int, high: int) -> None:
    if value is None:
        raise form_error(path, "BASE_TYPE_REQUIRED", "This field is required")
    if not isinstance(value, str):
        raise form_error(path, "BASE_TYPE_STRING", "Must be a string.")
    if not low <= len(value) <= high:
        raise _bad_length(path, low, high)


def _number(path: str, value: Any, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise form_error(path, "NUMBER_TYPE_COERCE", f"Value {value!r} is not int.")
    if not low <= value <= high:
        raise form_error(path, "NUMBER_TYPE_MAX", f"int value should be between {low} and {high}.")


def _bad_length(path: str, low: int, high: int) -> DiscordAPIError:
    return form_error(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _type_choices(path: str, choices: list[int]) -> DiscordAPIError:
    allowed = ", ".join(str(c) for c in choices)
    return form_error(path, "UNION_TYPE_CHOICES", f"Value must be one of ({allowed}).")


# --------------------------------------------------------------------------- submission


def fields(modal: dict[str, Any]) -> list[dict[str, Any]]:
    """The modal's fields a user fills (text inputs, selects, uploads), in order."""
    return [
        item
        for item in walk(modal["components"])
        if item.get("custom_id") is not None and item.get("type") in _LABEL_CHILDREN
    ]


def submission(
    modal: dict[str, Any],
    values: Mapping[str, Any],
    attach: Callable[[FakeAttachment], dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(data.components, data.resolved)`` of a MODAL_SUBMIT answering ``values``.

    ``values`` maps custom ids to what the user entered: a ``str`` for a Text Input (an
    input left out keeps its pre-filled ``value``, else ""), a list of option values for a
    String Select, a list of files (``cdn.as_attachment`` forms) for a File Upload.
    ``attach`` stores one uploaded file and returns its attachment object.
    """
    known = {item["custom_id"] for item in fields(modal)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"modal {modal['custom_id']!r} has no field(s) {unknown}")
    resolved: dict[str, Any] = {}

    def answer(item: dict[str, Any]) -> dict[str, Any]:
        return _answer(item, values, attach, resolved)

    components: list[dict[str, Any]] = []
    for top in modal["components"]:
        if top["type"] == LABEL:
            answered = answer(top["component"])
            components.append({"type": LABEL, "id": top["id"], "component": answered})
        elif top["type"] == ACTION_ROW:
            row = [answer(child) for child in top["components"]]
            components.append({"type": ACTION_ROW, "id": top["id"], "components": row})
        elif top["type"] == TEXT_DISPLAY:
            components.append({"type": TEXT_DISPLAY, "id": top["id"]})
    return components, resolved


def _answer(
    item: dict[str, Any],
    values: Mapping[str, Any],
    attach: Callable[[FakeAttachment], dict[str, Any]],
    resolved: dict[str, Any],
) -> dict[str, Any]:
    kind, custom_id = item["type"], item["custom_id"]
    required = item.get("required") is not False  # absent or null: required
    base = {"type": kind, "id": item["id"], "custom_id": custom_id}
    if kind == TEXT_INPUT:
        value = values.get(custom_id, item.get("value") or "")
        if not isinstance(value, str):
            raise TypeError(f"text input {custom_id!r} takes a str, not {value!r}")
        low, high = item.get("min_length") or 0, item.get("max_length") or MAX_TEXT
        if not value and required:
            raise ValueError(f"text input {custom_id!r} is required")
        if value and not low <= len(value) <= high:
            raise ValueError(f"text input {custom_id!r} takes {low}..{high} characters")
        return {**base, "value": value}
    if kind == STRING_SELECT:
        options = [o["value"] for o in item["options"]]
        chosen = values.get(custom_id)
        if chosen is None:
            chosen = [o["value"] for o in item["options"] if o.get("default")]
        chosen = [chosen] if isinstance(chosen, str) else list(chosen)
        _check_count(custom_id, chosen, item, required, default_max=1)
        outside = [c for c in chosen if c not in options]
        if outside:
            raise ValueError(f"select {custom_id!r} has no option(s) {outside}; it has {options}")
        return {**base, "values": chosen}
    if kind == FILE_UPLOAD:
        given = values.get(custom_id, [])
        uploads: list[Upload] = (
            [given] if isinstance(given, bytes | tuple | FakeAttachment) else list(given)
        )
        _check_count(custom_id, uploads, item, required, default_max=1)
        ids = []
        for upload in uploads:
            att = attach(as_attachment(upload))
            resolved.setdefault("attachments", {})[att["id"]] = public_attachment(att)
            ids.append(att["id"])
        return {**base, "values": ids}
    raise ValueError(f"the fake cannot fill a modal component of type {kind} yet")


def _check_count(
    custom_id: str, chosen: list[Any], item: dict[str, Any], required: bool, *, default_max: int
) -> None:
    low = item.get("min_values")
    low = (1 if required else 0) if low is None else low
    high = item.get("max_values")
    high = default_max if high is None else high
    if not chosen and not required:
        return
    if not low <= len(chosen) <= high:
        raise ValueError(f"{custom_id!r} takes {low}..{high} value(s), not {len(chosen)}")
