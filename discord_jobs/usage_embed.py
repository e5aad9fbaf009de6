"""A server's usage report (``imagine.usage``) as the embed ``/imagine-config usage`` shows
its admins, in their language. Members are mentions, which the message sends with
``allowed_mentions`` none: shown as names, never pinging anyone."""

from __future__ import annotations

from collections.abc import Callable

import discord

from imagine.i18n import Number, Text, Texts, _, n_
from imagine.usage import WEEK_DAYS, Tally, UsageReport

from .render import COLOR_OK, clip, rest_line

FIELD_LIMIT = 1024
MAX_LINES = 10
"""Models or backends listed at most (the busiest first)."""


def counts(tally: Tally, digits: int = 0) -> Text:
    return _(
        "{today} today · {week} in {days} days",
        today=Number(tally.today, digits),
        week=Number(tally.week, digits),
        days=WEEK_DAYS,
    )


def lines(rows: list[tuple[str, Tally]], tr: Texts) -> str:
    shown = [f"`{name}`: {tr(counts(tally))}" for name, tally in rows[:MAX_LINES]]
    if len(rows) > MAX_LINES:
        shown.append(tr(n_("…and {n} more", "…and {n} more", len(rows) - MAX_LINES)))
    return clip("\n".join(shown), FIELD_LIMIT)


def usage_embed(report: UsageReport, tr: Texts, label: Callable[[str], str]) -> discord.Embed:
    """``label``: a backend's name as people know it (``Engine.label``), for the rests."""
    embed = discord.Embed(title=tr(_("Imagine usage on this server")), color=COLOR_OK)
    embed.description = tr(
        _(
            "Images drawn here: **{today}** today, **{week}** in the last {days} days "
            "(UTC days; an image counts on the day it was asked for).",
            today=Number(report.images.today),
            week=Number(report.images.week),
            days=WEEK_DAYS,
        )
    )
    if report.models:
        embed.add_field(
            name=tr(_("By model")), value=lines(UsageReport.ranked(report.models), tr), inline=False
        )
    if report.backends:
        embed.add_field(
            name=tr(_("By backend")),
            value=lines(UsageReport.ranked(report.backends), tr),
            inline=False,
        )
    embed.add_field(
        name=tr(_("Horde kudos spent")), value=tr(counts(report.kudos, 1)), inline=False
    )
    embed.add_field(name=tr(_("Quota rests now")), value=rests(report, tr, label), inline=False)
    top = report.top_members()
    if top:
        ranked = [
            tr(
                _(
                    "{rank}. {member}: {week} ({today} today)",
                    rank=rank,
                    member=f"<@{user_id}>",
                    week=Number(tally.week),
                    today=Number(tally.today),
                )
            )
            for rank, (user_id, tally) in enumerate(top, 1)
        ]
        embed.add_field(
            name=tr(_("Top members, last {days} days", days=WEEK_DAYS)),
            value=clip("\n".join(ranked), FIELD_LIMIT),
            inline=False,
        )
    return embed


def rests(report: UsageReport, tr: Texts, label: Callable[[str], str]) -> str:
    """As ``/imagine-config show`` words them: the backend, whose account, until when."""
    if not report.rests:
        return tr(_("none: every backend has quota"))
    shown = [rest_line(rest, label(rest.backend), tr) for rest in report.rests[:MAX_LINES]]
    if len(report.rests) > MAX_LINES:
        shown.append(tr(n_("…and {n} more", "…and {n} more", len(report.rests) - MAX_LINES)))
    return clip("\n".join(shown), FIELD_LIMIT)
