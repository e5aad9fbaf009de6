"""The HTTP front of the fake: the route table and the middleware every REST call goes through.

Each module that serves routes lists them as :class:`Route` entries (method, template, handler
and whether the route needs the bot token, counts against the global limit, and which rate
limit bucket it uses). The middleware, in Discord's order: an unknown route or method is a
404/405 in Discord's shape; then auth (``Authorization: Bot <token>``), the global limit,
the route's bucket, the handler. A :class:`~.errors.DiscordAPIError` becomes its JSON; any
other exception is a bug in the fake, answered as a 400 (not a 500, which discord.py retries
for ~25 s) and kept in :attr:`Router.internal_errors`. Every answer carries ``Via: 1.1 google``
and is recorded in :attr:`Router.requests` with its route template.

Raw routes (the gateway websocket, the control API) skip all of this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import DiscordAPIError
from .models import RequestRecord
from .protocol import API_PREFIX

if TYPE_CHECKING:
    from .ratelimits import RateLimits
    from .state import DiscordState

__all__ = ["Handler", "Route", "Router"]

log = logging.getLogger("tests.fakes.discord")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One REST route: ``template`` is the path under ``prefix`` with ``{names}`` for ids."""

    method: str
    template: str
    handler: Handler
    auth: bool = True  # "Authorization: Bot <token>" required
    global_limited: bool | None = None  # None: same as ``auth``
    bucket: str | None = None  # "webhook" or "channel"
    prefix: str = API_PREFIX


class Router:
    """Builds the aiohttp application and answers every REST request the Discord way."""

    def __init__(self, state: DiscordState, limits: RateLimits) -> None:
        self.state = state
        self.limits = limits
        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[RequestRecord] = []
        #: Exceptions raised inside the fake's handlers (answered as 400, see the middleware).
        self.internal_errors: list[BaseException] = []
        self.count_429 = 0
        self._routes: dict[Any, Route] = {}
        self._raw: set[Any] = set()

    def application(
        self, routes: Iterable[Route], raw: Iterable[tuple[str, str, Handler]]
    ) -> web.Application:
        """The app serving ``routes`` through the middleware and ``raw`` routes as they are."""
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        for method, path, handler in raw:
            self._raw.add(app.router.add_route(method, path, handler))
        for route in routes:
            self._routes[
                app.router.add_route(route.method, route.prefix + route.template, route.handler)
            ] = route
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is None and match.route in self._raw:
            return await handler(request)
        route = self._routes.get(match.route)
        if match.http_exception is not None or route is None:
            return self._unknown(request, match.http_exception)
        try:
            response = await self._guarded(request, handler, route)
        except DiscordAPIError as err:
            response = err.to_response()
        except ConnectionResetError:
            # The client went away mid-request (a SIGKILLed worker, say): nobody to answer,
            # and not a bug in the fake.
            raise
        except Exception as exc:
            # A bug in the fake. Not a 500: discord.py retries those for ~25 s.
            log.exception("FakeDiscord: handler crashed on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            response = DiscordAPIError(400, 0, f"FakeDiscord internal error: {exc!r}").to_response()
        response.headers["Via"] = "1.1 google"
        self.requests.append(
            RequestRecord(
                request.method, route.template, response.status, time.monotonic(), request.path
            )
        )
        if response.status == 429:
            self.count_429 += 1
        if response.status == 429 and route.bucket == "webhook":
            interaction = self.state.interactions_by_token.get(match.get("token", ""))
            if interaction is not None:
                interaction.errors.append((429, 0))
        self.state.changed()
        return response

    def _unknown(
        self, request: web.Request, http_exception: web.HTTPException | None
    ) -> web.Response:
        status = http_exception.status if http_exception is not None else 404
        message = "405: Method Not Allowed" if status == 405 else "404: Not Found"
        response = DiscordAPIError(status, 0, message).to_response()
        response.headers["Via"] = "1.1 google"
        path = request.path.removeprefix(API_PREFIX)
        record = RequestRecord(request.method, path, status, time.monotonic(), request.path)
        self.requests.append(record)
        self.unknown_routes.append(record)
        log.warning("FakeDiscord: unknown route %s %s", request.method, request.path)
        return response

    async def _guarded(
        self, request: web.Request, handler: Handler, route: Route
    ) -> web.StreamResponse:
        """Auth, then the global limit, then the route bucket, then the handler."""
        if route.auth and request.headers.get("Authorization") != f"Bot {self.state.token}":
            raise DiscordAPIError(401, 0, "401: Unauthorized")
        global_limited = route.auth if route.global_limited is None else route.global_limited
        if global_limited:
            self.limits.take_global()
        rl_headers: dict[str, str] = {}
        if route.bucket is not None:
            rl_headers = self.limits.take_route(route.bucket, request.match_info)
        try:
            response = await handler(request)
        except DiscordAPIError as err:
            err.headers.update(rl_headers)
            raise
        response.headers.update(rl_headers)
        return response
