"""Members' own secrets (a Hugging Face token), as the store keeps them: sealed.

The store never sees a secret in the clear and knows no key: it keeps what ``imagine.vault``
sealed, and the account name the hub gave (what ``/settings`` shows). Every member's sealed
token is cached in memory, so ``/settings`` costs no I/O; a job reads its requester's row
afresh (``read_sealed_token``), so it never runs on a token forgotten in another process.
Other processes learn of a change by a NOTIFY on ``SETTINGS_CHANNEL`` (payload ``s<user id>``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .database import Database, retrying
from .notify import SETTINGS_CHANNEL, notify
from .schema import user_secrets

MAX_ACCOUNT = 200
"""The longest account name kept (the column's width)."""


@dataclass(frozen=True, slots=True)
class SealedToken:
    """A member's sealed token and the account it belongs to."""

    sealed: str = field(repr=False)
    account: str | None


class MemberSecrets(Database):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._sealed: dict[int, SealedToken] = {}

    async def load(self) -> None:
        await super().load()
        self._sealed = await self._read_sealed()

    async def reload_settings(self) -> None:
        await super().reload_settings()
        self._sealed = await retrying(self._read_sealed, what="reading members' tokens")

    async def _read_sealed(self) -> dict[int, SealedToken]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(user_secrets))).all()
        return {row.user_id: SealedToken(row.hf_token, row.hf_account) for row in rows}

    def sealed_token(self, user_id: int) -> SealedToken | None:
        """A member's sealed token, from memory (None: they connected none)."""
        return self._sealed.get(user_id)

    async def read_sealed_token(self, user_id: int) -> SealedToken | None:
        """A member's sealed token as the database has it now (for a job about to run)."""
        query = sa.select(user_secrets).where(user_secrets.c.user_id == user_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else SealedToken(row.hf_token, row.hf_account)

    async def refresh_sealed_token(self, user_id: int) -> SealedToken | None:
        """Read one member's token again (another process changed it)."""
        stored = await self.read_sealed_token(user_id)
        if stored is None:
            self._sealed.pop(user_id, None)
        else:
            self._sealed[user_id] = stored
        return stored

    async def save_sealed_token(self, user_id: int, sealed: str, account: str) -> SealedToken:
        """Keep a member's sealed token (replacing one they had)."""
        stored = SealedToken(sealed, account[:MAX_ACCOUNT])
        values = {"hf_token": sealed, "hf_account": stored.account, "updated_at": time.time()}
        insert = self._insert(user_secrets).values(user_id=user_id, **values)
        upsert = insert.on_conflict_do_update(index_elements=[user_secrets.c.user_id], set_=values)
        async with self.engine.begin() as conn:
            await conn.execute(upsert)
            await self._tell_others(conn, user_id)
        self._sealed[user_id] = stored
        return stored

    async def forget_sealed_token(self, user_id: int) -> bool:
        """Delete a member's token; False when they had none."""
        async with self.engine.begin() as conn:
            deleted = await conn.execute(
                user_secrets.delete().where(user_secrets.c.user_id == user_id)
            )
            if deleted.rowcount:
                await self._tell_others(conn, user_id)
        self._sealed.pop(user_id, None)
        return bool(deleted.rowcount)

    async def sealed_tokens(self) -> dict[int, str]:
        """Every member's sealed token, from the database (to seal them again)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(user_secrets.c.user_id, user_secrets.c.hf_token))
            return {row.user_id: row.hf_token for row in rows}

    async def replace_sealed_token(self, user_id: int, old: str, new: str) -> bool:
        """Swap ``old`` for ``new`` (the same token sealed again) unless the row changed
        meanwhile (the member connected another token, or forgot it)."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                user_secrets.update()
                .where(user_secrets.c.user_id == user_id, user_secrets.c.hf_token == old)
                .values(hf_token=new)
            )
        if changed.rowcount and user_id in self._sealed:
            self._sealed[user_id] = SealedToken(new, self._sealed[user_id].account)
        return bool(changed.rowcount)

    async def _tell_others(self, conn: AsyncConnection, user_id: int) -> None:
        if not self.is_sqlite:  # other processes read the row again (at commit)
            await notify(conn, SETTINGS_CHANNEL, f"s{user_id}")
