"""A protocol-level fake of Discord (REST + gateway + CDN) for tests.

The real, unmodified discord.py client talks to :class:`FakeDiscord` on 127.0.0.1 (see
``server.py`` for how to point it there). The fake is split by job:

==================  ========================================================================
``protocol``        Discord's numbers: permissions, intents, flags, types, limits
``errors``          the JSON error shapes (``DiscordAPIError``, form errors) and exact JSON
``models``          records: snowflakes, messages with every version, guilds, channels, pings
``state``           what Discord knows (users, guilds, members, channels, interactions),
                    permissions, object JSON, and waiting for changes
``messages``        storing messages, history, MESSAGE_* events, what users post
``bodies``          message create/edit bodies: validation, attachments keep/replace, embeds
``components``      component trees: numbering and finding
``cdn``             attachments and the CDN that serves them (``FakeAttachment``)
``ratelimits``      buckets, ``X-RateLimit-*`` headers and 429s
``routing``         the route table and the middleware every REST call goes through
``gateway``         the zlib-stream websocket, sessions, RESUME, heartbeats, dispatch
``rest``            users, application, channels, messages, guilds routes
``commands``        application command registration/sync and typed options
``locales``         Discord's locales, localization checks, what a client in a locale shows
``interactions``    ``FakeInteraction`` and the drivers (slash, buttons, menus, modal submits)
``responses``       the interaction callback and webhook routes, with Discord's rules
``modals``          modal validation and MODAL_SUBMIT data
``control``         the JSON control API for another process
``server``          ``FakeDiscord``, composing the above
``cli``             ``python -m tests.fakes.discord`` (or ``tests.fakes.discord_server``)
==================  ========================================================================
"""

from .cdn import FakeAttachment
from .errors import DiscordAPIError, form_error, json_response
from .gateway import GatewaySession
from .interactions import FakeInteraction
from .models import (
    Channel,
    Guild,
    Member,
    MessageRecord,
    Pings,
    RequestRecord,
    Snapshot,
    compute_pings,
    snowflake_time,
)
from .protocol import DEFAULT_ATTACHMENT_LIMIT, DEFAULT_PERMISSIONS
from .server import FakeDiscord

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
    "snowflake_time",
]
