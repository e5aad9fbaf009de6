"""FakeDiscord: Discord's REST API, gateway and CDN on 127.0.0.1, for the real discord.py.

The real, unmodified discord.py client talks to this fake: point
``discord.http.Route.BASE`` at :attr:`FakeDiscord.rest_base` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` at :attr:`FakeDiscord.gateway_url`.
Everything the bot can observe follows Discord's wire protocol (zlib-stream gateway,
sequence numbers and RESUME, interaction deadlines, rate-limit headers, multipart
uploads), so a bug that would bite on Discord should bite here too.

The fake binds 127.0.0.1 on a random port; it never touches the network.

Things worth knowing when using it:

* ``DEFAULT_GATEWAY`` must be a ``yarl.URL`` (discord.py calls ``.with_query`` on it).
* Pass ``guild_ready_timeout=`` small to ``discord.Client``: discord.py waits that long
  (2 s by default) after the last GUILD_CREATE before ``on_ready``.
* Close the client before the fake, or the client keeps trying to reconnect.
* ``wait_until``/``wait_for_message`` re-check their predicate whenever the fake's state
  changes; a predicate over the *client's* state is only re-checked at the timeout.

This class only composes the parts and lifts their public API onto one object (see the
package docstring for which module does what); each attribute below says which part owns it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .bodies import MessageBodies
from .cdn import Cdn
from .commands import Commands
from .control import ControlApi
from .gateway import Gateway, GatewaySession
from .interactions import InteractionDriver
from .messages import MessageStore
from .models import MessageRecord, RequestRecord
from .protocol import API_PREFIX, CONTROL_PREFIX
from .ratelimits import RateLimits
from .responses import InteractionResponses
from .rest import RestApi
from .routing import Router
from .state import DiscordState

__all__ = ["FakeDiscord"]


class _Part:
    """``fake.<name>`` is ``fake.<part>.<name>`` (read and write)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class FakeDiscord:
    """Discord's REST API and gateway, faithful enough for the real discord.py client.

    Use as ``async with FakeDiscord() as fake:``. See the module docstring.
    """

    def __init__(
        self,
        *,
        token: str = "test-token",
        application_id: int | None = None,
        bot_user_id: int | None = None,
        bot_name: str = "Imagine",
        heartbeat_interval: int = 41250,
        ack_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        webhook_limit: int = 5,
        webhook_window: float = 5.0,
        channel_limit: int = 5,
        channel_window: float = 5.0,
        global_limit: int = 50,
        message_content_intent: bool = True,
        shards: int = 1,
        required_shards: int = 1,
        port: int = 0,
    ) -> None:
        self.state = DiscordState(
            token=token,
            application_id=application_id,
            bot_user_id=bot_user_id,
            bot_name=bot_name,
            message_content_intent=message_content_intent,
        )
        self.limits = RateLimits(
            webhook_limit=webhook_limit,
            webhook_window=webhook_window,
            channel_limit=channel_limit,
            channel_window=channel_window,
            global_limit=global_limit,
        )
        self.cdn = Cdn(self.state.snowflake, lambda: self.http_base)
        self.gateway = Gateway(
            self.state,
            url=lambda: self.gateway_url,
            heartbeat_interval=heartbeat_interval,
            shards=shards,
            required_shards=required_shards,
        )
        self.state.events = self.gateway
        self.store = MessageStore(self.state, self.gateway, self.cdn)
        self.bodies = MessageBodies(self.state, self.cdn)
        self.app_commands = Commands(self.state, self.cdn)
        self.drivers = InteractionDriver(
            self.state, self.app_commands, self.gateway, self.cdn, waiter=self
        )
        self.responses = InteractionResponses(
            self.state,
            self.store,
            self.bodies,
            ack_deadline=ack_deadline,
            token_lifetime=token_lifetime,
        )
        self.rest = RestApi(
            self.state, self.store, self.bodies, self.gateway, lambda: self.gateway_url
        )
        self.router = Router(self.state, self.limits)
        self.control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        #: The port to bind (0: a free one); the bound port once started.
        self.port = port

    # The application, users, guilds, channels, interactions (state.py).
    token = _Part("state")
    application_id = _Part("state")
    bot_user_id = _Part("state")
    bot_name = _Part("state")
    bot_user = _Part("state")
    owner_user = _Part("state")
    users = _Part("state")
    guilds = _Part("state")
    channels = _Part("state")
    interactions = _Part("state")
    message_content_intent = _Part("state")
    wait_until = _Part("state")
    add_user = _Part("state")
    add_guild = _Part("state")
    add_channel = _Part("state")
    add_member = _Part("state")
    dm_channel_for = _Part("state")
    user_locale = _Part("state")
    set_user_locale = _Part("state")
    set_guild_locale = _Part("state")
    forbid_channel = _Part("state")
    allow_channel = _Part("state")
    # Messages (messages.py).
    messages = _Part("store")
    channel_history = _Part("store")
    post_user_message = _Part("store")
    # Registered commands (commands.py).
    commands = _Part("app_commands")
    guild_commands = _Part("app_commands")
    command_names = _Part("app_commands")
    option_names = _Part("app_commands")
    # The gateway (gateway.py).
    heartbeat_interval = _Part("gateway")
    shards = _Part("gateway")
    required_shards = _Part("gateway")
    sessions = _Part("gateway")
    identifies = _Part("gateway")
    resumes = _Part("gateway")
    gateway_connects = _Part("gateway")
    gateway_closes = _Part("gateway")
    gateway_queries = _Part("gateway")
    # Requests answered (routing.py) and rate limits (ratelimits.py).
    requests = _Part("router")
    unknown_routes = _Part("router")
    internal_errors = _Part("router")
    count_429 = _Part("router")
    webhook_limit = _Part("limits")
    webhook_window = _Part("limits")
    channel_limit = _Part("limits")
    channel_window = _Part("limits")
    global_limit = _Part("limits")
    # Deadlines of interaction answers (responses.py).
    ack_deadline = _Part("responses")
    token_lifetime = _Part("responses")
    # What users do (interactions.py).
    send_slash = _Part("drivers")
    send_autocomplete = _Part("drivers")
    send_message_command = _Part("drivers")
    send_user_command = _Part("drivers")
    press_button = _Part("drivers")
    choose_select = _Part("drivers")
    submit_modal = _Part("drivers")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind 127.0.0.1 on a random port and serve."""
        app = self.router.application(
            routes=[
                *self.rest.routes(),
                *self.app_commands.routes(),
                *self.responses.routes(),
                *self.cdn.routes(),
            ],
            raw=[
                *self.control.routes(),
                ("GET", "/gateway", self.gateway.handle),
                ("GET", "/gateway/", self.gateway.handle),
            ],
        )
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close every gateway connection and the server; nothing is left running."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return f"{self.http_base}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be set to (also /gateway/bot's url)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def control_url(self) -> str:
        """The base of the control API, for another process (see ``control.py``)."""
        return f"{self.http_base}{CONTROL_PREFIX}"

    # ------------------------------------------------------------------ waiting

    async def wait_for_message(
        self,
        predicate: Callable[[MessageRecord], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> MessageRecord:
        """The first stored message (in creation order) for which ``predicate`` holds."""

        def find() -> MessageRecord | None:
            return next((m for m in self.messages.values() if predicate(m)), None)

        return await self.wait_until(find, timeout=timeout)

    async def wait_ready(self, timeout: float = 10.0) -> GatewaySession:  # noqa: ASYNC109
        """Wait until a session IDENTIFIED and was sent READY and all its GUILD_CREATEs."""
        return await self.wait_until(self.gateway.ready_session, timeout=timeout)

    # ------------------------------------------------------------------ helpers

    def expire_tokens_after(self, seconds: float) -> None:
        """Change how long interaction tokens work for webhook routes (Discord: 15 min)."""
        self.responses.token_lifetime = seconds

    async def drop_gateway(self, code: int | None = None) -> None:
        """Kill live gateway connections: ``None`` aborts TCP, else close with ``code``.

        Sessions survive (unless the code is non-resumable for the client), so events
        dispatched meanwhile are buffered and replayed when the client RESUMEs.
        """
        await self.gateway.drop(code)

    async def take_gateway_down(self, code: int | None = None) -> None:
        """An outage of the gateway: live connections are dropped (``code`` as for
        ``drop_gateway``) and new ones are held, with no HELLO, until ``bring_gateway_up``;
        the client then RESUMEs its session."""
        await self.gateway.take_down(code)

    def bring_gateway_up(self) -> None:
        """The gateway's outage is over (see ``take_gateway_down``)."""
        self.gateway.bring_up()

    def attachment(self, attachment_id: int) -> dict[str, Any]:
        """An attachment object the CDN holds (with its bytes under ``data``)."""
        return self.cdn.attachments[int(attachment_id)]

    def attachment_downloads(self, attachment: int | str | dict[str, Any]) -> int:
        """How many times the CDN served that attachment's bytes (GET; HEAD is not counted)."""
        ident = attachment["id"] if isinstance(attachment, dict) else attachment
        return self.cdn.downloads[int(ident)]

    def age_attachment_urls(self, seconds: float) -> None:
        """Move the CDN's clock ``seconds`` ahead: attachment URLs handed out so far expire
        once it passes their ``ex`` (Discord signs them for about a day); messages fetched
        again carry fresh ones (see ``cdn.py``)."""
        self.cdn.age(seconds)

    def count_by_route(self) -> Counter[str]:
        """``"METHOD /route/{template}"`` -> number of requests (any status)."""
        return Counter(f"{r.method} {r.path}" for r in self.requests)

    def requests_for(self, method: str, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.method == method and r.path == path]
