"""The fake Discord, under its historical name: everything lives in ``tests.fakes.discord``.

Kept so ``from tests.fakes.discord_server import FakeDiscord, FakeInteraction, Guild,
MessageRecord, ...`` and ``python -m tests.fakes.discord_server --port 0`` keep working.
"""

from __future__ import annotations

import sys

from tests.fakes.discord import (
    DEFAULT_ATTACHMENT_LIMIT,
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordAPIError,
    FakeAttachment,
    FakeDiscord,
    FakeInteraction,
    GatewaySession,
    Guild,
    Member,
    MessageRecord,
    Pings,
    RequestRecord,
    Snapshot,
    compute_pings,
    form_error,
    json_response,
    snowflake_time,
)
from tests.fakes.discord.cli import main

__all__ = [
    "DEFAULT_ATTACHMENT_LIMIT",
    "DEFAULT_PERMISSIONS",
    "Channel",
    "DiscordAPIError",
    "FakeAttachment",
    "FakeDiscord",
    "FakeInteraction",
    "GatewaySession",
    "Guild",
    "Member",
    "MessageRecord",
    "Pings",
    "RequestRecord",
    "Snapshot",
    "compute_pings",
    "form_error",
    "json_response",
    "main",
    "snowflake_time",
]

if __name__ == "__main__":
    sys.exit(main())
