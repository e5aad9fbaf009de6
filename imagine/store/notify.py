"""Signals to the other processes, sent with a transaction (PostgreSQL ``NOTIFY``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

SETTINGS_CHANNEL = "imagine_settings"
"""PostgreSQL NOTIFY channel: a server's settings changed (payload: its id)."""


async def notify(conn: AsyncConnection, channel: str, payload: str = "") -> None:
    """PostgreSQL ``NOTIFY``, sent when the transaction of ``conn`` commits."""
    await conn.execute(sa.select(sa.func.pg_notify(channel, payload)))
