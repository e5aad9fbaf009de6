"""Plain prompts in DMs: a message to the bot is a prompt; the bot replies once and edits
that reply the same way /imagine does.

Two quick lines form one prompt: each new message restarts a short wait, and when the user
pauses, the DM history (their latest messages since the bot last answered) is the prompt.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from discord_jobs.launch import Refusal, Request, Throttled
from discord_jobs.render import NO_PINGS
from imagine.errors import message_of
from imagine.i18n import texts
from imagine.limits import RateLimiter
from imagine.messages import format_image_prompt

from .utils.history import read_conversation

if TYPE_CHECKING:
    from bot import ImagineBot

log = logging.getLogger(__name__)

GATHER_SECONDS = 1.0
"""How long to wait for more lines before a DM prompt is drawn."""
REFUSAL_NOTICES = (1, 60.0)
"""A refused DM is answered once a minute at most: a flood of DMs must not become a flood of
bot messages (nor of Discord API calls)."""


class DirectMessages(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.pending: dict[int, asyncio.Task[None]] = {}
        self.gather_seconds = GATHER_SECONDS
        self.notices = RateLimiter(*REFUSAL_NOTICES)

    async def cog_unload(self) -> None:
        for task in self.pending.values():
            task.cancel()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is not None or message.author.bot or not message.content.strip():
            return
        if not isinstance(message.channel, discord.DMChannel):
            return
        user_id = message.author.id
        previous = self.pending.get(user_id)
        if previous is not None and not previous.done():
            previous.cancel()  # still gathering: this line joins the prompt
        self.pending[user_id] = asyncio.create_task(self.after_pause(message))

    async def after_pause(self, message: discord.Message) -> None:
        await asyncio.sleep(self.gather_seconds)
        # Out of ``pending`` now: a line arriving from here on starts a prompt of its own.
        self.pending.pop(message.author.id, None)
        await self.start(message)

    async def start(self, message: discord.Message) -> None:
        channel = message.channel
        launcher = self.bot.launcher
        # A DM carries no locale: the member's chosen language, else the one their client
        # showed at their last command.
        member = self.bot.store.user(message.author.id)
        language = await self.bot.languages.for_message(message.author.id)
        try:
            # The limits first: a refused prompt costs no history read.
            await launcher.precheck(message.author.id, None)
            messages = await read_conversation(
                channel,
                user_id=message.author.id,
                bot_id=self.bot.me_id,
                limit=self.bot.settings.history_limit,
            )
            prompt = format_image_prompt(messages).strip() or message.content.strip()
            plan = await launcher.plan(
                user=message.author,
                guild_id=None,
                channel_id=channel.id,
                request=Request(prompt=prompt, source="dm"),
                member=member,
                language=language,
            )
            admitted = await launcher.admit(plan)
            await launcher.launch_in_channel(channel, plan, admitted, reference=message)
        except Refusal as refusal:
            if not isinstance(refusal, Throttled) or self.notices.hit(message.author.id) == 0:
                text = texts(language)(message_of(refusal))
                await channel.send(text, allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.exception("could not answer a DM prompt")


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(DirectMessages(bot))
