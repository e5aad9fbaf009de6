"""Application commands: registration and sync (global and per guild, with the checks
Discord applies that commonly bite), and the typed options of an invocation.

Registration keeps a command's id across re-syncs of the same name and type, as Discord does.
When a test runs a command, its options are typed from the registered schema (or, for a
command never registered, from the Python values): strings, integers, numbers, booleans,
users (a user dict, resolved with its member), channels (an id), and attachments (any form
``cdn.as_attachment`` takes, stored on the CDN as an ephemeral upload and resolved). A
missing required option, an unknown one or a value outside the choices is a ``ValueError``:
Discord's client would not send it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .bodies import read_body
from .cdn import Cdn, FakeAttachment, as_attachment
from .errors import DiscordAPIError, form_error, json_response
from .locales import (
    DEFAULT_LOCALE,
    check_command_localizations,
    check_locale,
    check_option_localizations,
    check_unique_localized_names,
    find_by_shown_name,
    shown_name,
)
from .models import Channel, Guild, public_attachment
from .protocol import (
    COMMAND_NAME_RE,
    DEFAULT_PERMISSIONS,
    OPT_ATTACHMENT,
    OPT_BOOLEAN,
    OPT_CHANNEL,
    OPT_INTEGER,
    OPT_MENTIONABLE,
    OPT_NUMBER,
    OPT_STRING,
    OPT_SUB_COMMAND,
    OPT_SUB_COMMAND_GROUP,
    OPT_USER,
)
from .routing import Route
from .state import DiscordState

__all__ = ["Commands"]


class Commands:
    """The registered commands and the options a user's invocation carries."""

    def __init__(self, state: DiscordState, cdn: Cdn) -> None:
        self.state = state
        self.cdn = cdn
        #: Global commands, as the bot registered them (with ids).
        self.commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}

    def routes(self) -> list[Route]:
        routes = []
        for base in (
            "/applications/{application_id}",
            "/applications/{application_id}/guilds/{guild_id}",
        ):
            routes += [
                Route("GET", base + "/commands", self._list_commands),
                Route("PUT", base + "/commands", self._bulk_overwrite_commands),
                Route("POST", base + "/commands", self._create_command),
                Route("GET", base + "/commands/{command_id}", self._get_command),
                Route("DELETE", base + "/commands/{command_id}", self._delete_command),
            ]
        return routes

    # ------------------------------------------------------------------ registration

    def _command_list(self, request: web.Request) -> list[dict[str, Any]]:
        if int(request.match_info["application_id"]) != self.state.application_id:
            raise DiscordAPIError(
                403, 20012, "You are not authorized to perform this action on this application"
            )
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return self.commands
        self.state.guild(int(guild_id))
        return self.guild_commands.setdefault(int(guild_id), [])

    def _store_command(
        self,
        data: dict[str, Any],
        existing: list[dict[str, Any]],
        guild_id: str | None,
        index: int = 0,
    ) -> dict[str, Any]:
        _validate_command(data, index)
        ctype = data.get("type", 1)
        old = next((c for c in existing if c["name"] == data["name"] and c["type"] == ctype), None)
        command = {
            "id": old["id"] if old else str(self.state.snowflake()),
            "application_id": str(self.state.application_id),
            "version": str(self.state.snowflake()),
            "default_member_permissions": data.get("default_member_permissions"),
            "type": ctype,
            "name": data["name"],
            "name_localizations": data.get("name_localizations"),
            "description": data.get("description", ""),
            "description_localizations": data.get("description_localizations"),
            "dm_permission": data.get("dm_permission", True),
            "contexts": data.get("contexts"),
            "integration_types": data.get("integration_types", [0]),
            "nsfw": data.get("nsfw", False),
        }
        if data.get("options"):
            command["options"] = data["options"]
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        return command

    async def _list_commands(self, request: web.Request) -> web.Response:
        return json_response(self._command_list(request))

    async def _bulk_overwrite_commands(self, request: web.Request) -> web.Response:
        existing = self._command_list(request)
        body = json.loads(await request.read() or b"[]")
        if not isinstance(body, list):
            raise form_error(
                "_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
            )
        if len(body) > 100:
            raise form_error("_root", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        guild_id = request.match_info.get("guild_id")
        new = [self._store_command(data, existing, guild_id, i) for i, data in enumerate(body)]
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(new):
            key = (cmd["name"], cmd["type"])
            if key in seen:
                raise form_error(
                    f"{i}.name",
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
        check_unique_localized_names(new, "{i}.")
        existing[:] = new
        self.state.changed()
        return json_response(new)

    async def _create_command(self, request: web.Request) -> web.Response:
        existing = self._command_list(request)
        payload, _ = await read_body(request)
        command = self._store_command(payload, existing, request.match_info.get("guild_id"))
        replaced = [i for i, c in enumerate(existing) if c["id"] == command["id"]]
        check_unique_localized_names([c for c in existing if c["id"] != command["id"]] + [command])
        if replaced:
            existing[replaced[0]] = command
        else:
            existing.append(command)
        self.state.changed()
        return json_response(command, status=200 if replaced else 201)

    def _find_command(self, request: web.Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        existing = self._command_list(request)
        cid = request.match_info["command_id"]
        for command in existing:
            if command["id"] == cid:
                return existing, command
        raise DiscordAPIError(404, 10063, "Unknown application command")

    async def _get_command(self, request: web.Request) -> web.Response:
        return json_response(self._find_command(request)[1])

    async def _delete_command(self, request: web.Request) -> web.Response:
        existing, command = self._find_command(request)
        existing.remove(command)
        self.state.changed()
        return web.Response(status=204)

    # ------------------------------------------------------------------ invocations

    def visible(self, guild_id: int | None, ctype: int) -> list[dict[str, Any]]:
        """The commands of that type a user there sees: the guild's, then the global ones."""
        pools = []
        if guild_id is not None:
            pools.append(self.guild_commands.get(guild_id, []))
        pools.append(self.commands)
        return [c for pool in pools for c in pool if c.get("type", 1) == ctype]

    def find_schema(
        self, name: str, guild_id: int | None, ctype: int, locale: str = DEFAULT_LOCALE
    ) -> dict[str, Any] | None:
        """The registered command (guild first, then global) of that type, by its canonical
        name or by the name a client in ``locale`` shows for it."""
        return find_by_shown_name(self.visible(guild_id, ctype), name, locale)

    def command_names(
        self, locale: str, *, guild_id: int | None = None, type: int = 1
    ) -> list[str]:
        """The command names a client in ``locale`` shows (in a guild: its commands, then
        the global ones), falling back to the canonical name as Discord does."""
        check_locale(locale)
        return [shown_name(c, locale) for c in self.visible(guild_id, type)]

    def option_names(
        self,
        command: str,
        locale: str,
        subcommand: str | None = None,
        *,
        guild_id: int | None = None,
    ) -> list[str]:
        """The option (or subcommand) names a client in ``locale`` shows for ``/command``
        (``command`` and ``subcommand`` canonical or as shown in ``locale``)."""
        check_locale(locale)
        schema = self.find_schema(command, guild_id, 1, locale)
        if schema is None:
            raise ValueError(f"no chat-input command {command!r} is registered")
        options = schema.get("options") or []
        if subcommand:
            chain = _subcommand_chain(options, subcommand.split(), locale)
            if chain is None:
                raise ValueError(f"/{command} has no subcommand {subcommand!r}")
            options = chain[-1].get("options") or []
        return [shown_name(o, locale) for o in options]

    def command_data(
        self,
        name: str,
        options: dict[str, Any] | None,
        *,
        guild: Guild | None,
        channel: Channel,
        subcommand: str | None,
        focused: str | None = None,
        locale: str = DEFAULT_LOCALE,
    ) -> dict[str, Any]:
        """The ``data`` of a slash command (or autocomplete) interaction.

        Names may be canonical or as a client in ``locale`` shows them; ``data`` carries
        the canonical ones, as Discord sends them.
        """
        schema = self.find_schema(name, guild.id if guild else None, 1, locale)
        data: dict[str, Any] = {
            "id": schema["id"] if schema else str(self.state.snowflake()),
            "name": schema["name"] if schema else name,
            "type": 1,
        }
        if schema is not None and "guild_id" in schema:
            data["guild_id"] = schema["guild_id"]
        schema_opts: list[dict[str, Any]] | None = schema.get("options", []) if schema else None
        resolved: dict[str, dict[str, Any]] = {}
        parts = subcommand.split() if subcommand else []
        leaf_schema = schema_opts
        kinds = [OPT_SUB_COMMAND_GROUP] * (len(parts) - 1) + [OPT_SUB_COMMAND] if parts else []
        if parts and schema_opts is not None:
            chain = _subcommand_chain(schema_opts, parts, locale)
            if chain is None:
                raise ValueError(f"/{name} has no subcommand {subcommand!r}")
            kinds = [opt["type"] for opt in chain]
            parts = [opt["name"] for opt in chain]
            leaf_schema = chain[-1].get("options", [])
        built = self._build_options(
            leaf_schema,
            options or {},
            resolved,
            guild=guild,
            channel=channel,
            focused=focused,
            path=" ".join([data["name"], *parts]),
            locale=locale,
        )
        for part, kind in reversed(list(zip(parts, kinds, strict=True))):
            built = [{"type": kind, "name": part, "options": built}]
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        return data

    def _build_options(
        self,
        schema: list[dict[str, Any]] | None,
        values: dict[str, Any],
        resolved: dict[str, dict[str, Any]],
        *,
        guild: Guild | None,
        channel: Channel,
        focused: str | None,
        path: str,
        locale: str = DEFAULT_LOCALE,
    ) -> list[dict[str, Any]]:
        """Interaction options typed from the registered schema, else from Python types.

        An option may be named as a client in ``locale`` shows it; it is sent canonical.
        """
        leaves = [o for o in schema or [] if o["type"] not in (1, 2)]
        by_name = {o["name"]: o for o in leaves}
        if schema is not None:
            canonical = {n: _canonical(leaves, n, locale) for n in values}
            values = {canonical[n]: v for n, v in values.items()}
            if focused is not None:
                focused = canonical.get(focused, focused)
            unknown = set(values) - set(by_name)
            if unknown:
                raise ValueError(f"/{path} has no option(s) {sorted(unknown)}")
            if focused is None:
                missing = [n for n, o in by_name.items() if o.get("required") and n not in values]
                if missing:
                    raise ValueError(f"/{path} requires option(s) {missing}")
        out: list[dict[str, Any]] = []
        for name, value in values.items():
            spec = by_name.get(name)
            otype = spec["type"] if spec else _infer_option_type(value)
            option: dict[str, Any] = {"name": name, "type": otype}
            if name == focused:
                option["value"] = value if isinstance(value, str) else str(value)
                option["focused"] = True
                out.append(option)
                continue
            option["value"] = self.option_value(
                otype, value, resolved, guild=guild, channel=channel
            )
            if spec and spec.get("choices") and focused is None:
                allowed = [c["value"] for c in spec["choices"]]
                if option["value"] not in allowed:
                    raise ValueError(f"/{path} {name}={value!r} is not one of {allowed}")
            out.append(option)
        return out

    def option_value(
        self,
        otype: int,
        value: Any,
        resolved: dict[str, dict[str, Any]],
        *,
        guild: Guild | None,
        channel: Channel,
    ) -> Any:
        """An option's wire value; users, channels and attachments also go in ``resolved``."""
        if otype == OPT_STRING:
            return str(value)
        if otype == OPT_INTEGER:
            return int(value)
        if otype == OPT_NUMBER:
            return float(value)
        if otype == OPT_BOOLEAN:
            return bool(value)
        if otype in (OPT_USER, OPT_MENTIONABLE) and isinstance(value, dict):
            uid = str(value["id"])
            self.state.users.setdefault(int(uid), value)
            resolved.setdefault("users", {})[uid] = dict(value)
            if guild is not None:
                member = guild.members.get(int(uid))
                if member is not None:
                    members = resolved.setdefault("members", {})
                    members[uid] = {
                        **member.to_json(with_user=False),
                        "permissions": str(self.state.member_permissions(guild, int(uid))),
                    }
            return uid
        if otype == OPT_CHANNEL:
            target = self.state.channel(int(value))
            resolved.setdefault("channels", {})[str(target.id)] = {
                **self.state.channel_json(target.id),
                "permissions": str(DEFAULT_PERMISSIONS),
            }
            return str(target.id)
        if otype == OPT_ATTACHMENT:
            att = self.cdn.store(channel.id, as_attachment(value), ephemeral=True)
            resolved.setdefault("attachments", {})[att["id"]] = public_attachment(att)
            return att["id"]
        return str(value)


def _canonical(entries: list[dict[str, Any]], name: str, locale: str) -> str:
    """The canonical name of the entry shown as ``name`` (``name`` itself if none is)."""
    found = find_by_shown_name(entries, name, locale)
    return found["name"] if found else name


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPT_BOOLEAN
    if isinstance(value, int):
        return OPT_INTEGER
    if isinstance(value, float):
        return OPT_NUMBER
    if isinstance(value, bytes | tuple | FakeAttachment):
        return OPT_ATTACHMENT
    if isinstance(value, dict):
        return OPT_USER
    return OPT_STRING


def _subcommand_chain(
    options: list[dict[str, Any]], parts: list[str], locale: str = DEFAULT_LOCALE
) -> list[dict[str, Any]] | None:
    """The schema entries for ``"group sub"`` (canonical names or as shown in ``locale``),
    outermost first; None if absent."""
    chain: list[dict[str, Any]] = []
    pool = options
    for part in parts:
        found = find_by_shown_name((o for o in pool if o["type"] in (1, 2)), part, locale)
        if found is None:
            return None
        chain.append(found)
        pool = found.get("options", [])
    return chain


def _validate_command(data: dict[str, Any], index: int) -> None:
    """The checks Discord applies on registration that commonly bite (names, lengths)."""
    name = data.get("name")
    ctype = data.get("type", 1)
    if not isinstance(name, str) or not name:
        raise form_error(f"{index}.name", "BASE_TYPE_REQUIRED", "This field is required")
    if ctype == 1:
        if not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            raise form_error(
                f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        description = data.get("description") or ""
        if not 1 <= len(description) <= 100:
            raise form_error(
                f"{index}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        _validate_options(data.get("options") or [], f"{index}.options")
    elif len(name) > 32:
        raise form_error(
            f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
        )
    check_command_localizations(data, str(index))


def _validate_options(options: list[dict[str, Any]], path: str) -> None:
    if len(options) > 25:
        raise form_error(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    for i, option in enumerate(options):
        name = option.get("name", "")
        if not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            raise form_error(
                f"{path}.{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if not 1 <= len(option.get("description") or "") <= 100:
            raise form_error(
                f"{path}.{i}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        check_option_localizations(option, f"{path}.{i}")
        if len(option.get("choices") or []) > 25:
            raise form_error(
                f"{path}.{i}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        if option.get("type") in (1, 2):
            _validate_options(option.get("options") or [], f"{path}.{i}.options")
            continue
        if option.get("required"):
            if seen_optional:
                raise form_error(
                    f"{path}.{i}.required",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
