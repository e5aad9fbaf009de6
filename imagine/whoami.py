"""Whose Hugging Face token is this: ``GET {HF_ENDPOINT}/api/whoami-v2``.

A member's token is checked here before it is kept: the hub names its account (what
``/settings`` shows) or refuses it (401). Over the program's one session, with a time limit
and a capped read, as every call to the hub.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import aiohttp

from .errors import BackendError, BadInput, ImagineError
from .http import MAX_JSON_BYTES, read_capped
from .i18n import _

HUB = "The Hugging Face hub"
WHOAMI_SECONDS = 15.0
TOKEN_SHAPE = re.compile(r"[\x21-\x7e]{20,200}")
"""Printable ASCII without spaces, as long as a token at least (``hf_`` and 34 characters
today): what can travel in an ``Authorization`` header."""


class TokenRefused(ImagineError):
    """The hub does not know the token (revoked, mistyped, not a token)."""


@dataclass(frozen=True, slots=True)
class HubAccount:
    name: str
    kind: str  # "user" or "org"
    pro: bool = False


def checked_shape(token: str) -> str:
    """``token`` without surrounding spaces; ``BadInput`` when it cannot be a token (nothing
    is sent then)."""
    token = token.strip()
    if not TOKEN_SHAPE.fullmatch(token):
        raise BadInput(_("That does not look like a Hugging Face access token."))
    return token


async def whoami(
    session: aiohttp.ClientSession,
    hf_endpoint: str,
    token: str,
    *,
    seconds: float = WHOAMI_SECONDS,
) -> HubAccount:
    """The account of ``token``. ``TokenRefused`` when the hub does not accept it;
    ``BackendError`` when the hub cannot say (unreachable, slow, an answer we cannot read)."""
    url = f"{hf_endpoint.rstrip('/')}/api/whoami-v2"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as response:
            if response.status in (401, 403):
                raise TokenRefused(
                    _("Hugging Face did not accept that token, so nothing was stored.")
                )
            if not response.ok:
                raise BackendError(
                    _("Hugging Face answered {status}", status=response.status),
                    status=response.status,
                    transient=True,
                    backend=HUB,
                )
            body = await read_capped(response, MAX_JSON_BYTES, backend=HUB)
    except TimeoutError:
        raise BackendError(
            _("Hugging Face did not answer in time"), transient=True, backend=HUB
        ) from None
    except aiohttp.ClientError:
        raise BackendError(
            _("Hugging Face could not be reached"), transient=True, backend=HUB
        ) from None
    return account_of(body)


def account_of(body: bytes) -> HubAccount:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise BackendError(_("Hugging Face gave an answer without an account"), backend=HUB)
    assert isinstance(data, dict)
    kind = data.get("type")
    return HubAccount(
        name=name.strip(),
        kind=kind if isinstance(kind, str) else "user",
        pro=data.get("isPro") is True,
    )
