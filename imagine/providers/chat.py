"""One text request to an OpenAI-compatible chat model: ``POST {base}/chat/completions``.

Translation asks a chat model one question and wants one answer, so there is no stream and no
status here: the answer's text, or a ``BackendError`` worded like every other backend's (HTTP
errors by ``raise_for_status``, transport trouble by ``translated_errors``). The key is sent
as ``Authorization: Bearer`` and the answer is read under the usual JSON cap.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ..errors import BackendError
from ..gradio import Limits, translated_errors
from ..http import MAX_JSON_BYTES, raise_for_status, read_capped
from ..messages import message_text


async def chat_completion(
    session: aiohttp.ClientSession,
    base_url: str,
    payload: dict[str, Any],
    *,
    api_key: str | None,
    limits: Limits,
    label: str,
    proxy: str | None = None,
) -> str:
    """The text of the first choice's message (``""`` when it has none)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with translated_errors(label, limits):
        async with session.post(
            f"{base_url.rstrip('/')}/chat/completions",
            json=payload,
            headers=headers,
            timeout=limits.client_timeout(),
            proxy=proxy,
        ) as response:
            await raise_for_status(response, backend=label)
            body = await read_capped(response, MAX_JSON_BYTES, backend=label)
    try:
        answer = json.loads(body)
        content = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BackendError(f"{label} sent malformed data", backend=label) from None
    return message_text(content)
