"""Discord's numbers: permission bits, intents, message flags, interaction, callback,
option and component types, and the limits the fake enforces.

Nothing here does anything; every other module of the fake reads its constants from here.
"""

from __future__ import annotations

import re

API_PREFIX = "/api/v10"
CONTROL_PREFIX = "/_control"
DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
#: What a fresh guild gives @everyone (view, send, embed, attach, history, mention
#: everyone, reactions, voice...) plus slash commands.
DEFAULT_PERMISSIONS = 104324673 | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
#: What the bot's managed role gets on top of @everyone.
BOT_ROLE_PERMISSIONS = DEFAULT_PERMISSIONS | MANAGE_MESSAGES
#: What a channel the bot was forbidden (``forbid_channel``) denies its role.
FORBIDDEN_PERMISSIONS = SEND_MESSAGES | ATTACH_FILES | EMBED_LINKS | SEND_MESSAGES_IN_THREADS

# Gateway intents.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15
SETTABLE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2

# Interaction types and callback types.
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
CB_PONG, CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE = 1, 4, 5, 6, 7
CB_AUTOCOMPLETE, CB_MODAL = 8, 9

# Application command option types.
OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP, OPT_STRING, OPT_INTEGER, OPT_BOOLEAN = 1, 2, 3, 4, 5
OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE, OPT_NUMBER, OPT_ATTACHMENT = 6, 7, 8, 9, 10, 11

# Component types (https://discord.com/developers/docs/components/reference).
ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
USER_SELECT, ROLE_SELECT, MENTIONABLE_SELECT, CHANNEL_SELECT = 5, 6, 7, 8
TEXT_DISPLAY, LABEL, FILE_UPLOAD = 10, 18, 19
RADIO_GROUP, CHECKBOX_GROUP, CHECKBOX = 21, 22, 23

# Limits.
#: A chat-input command's (or option's) name, canonical or localized; it must also be
#: lowercase where its script has case (``name == name.lower()``).
COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_ATTACHMENTS = 10
MAX_AUTOCOMPLETE_CHOICES = 25
