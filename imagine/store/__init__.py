"""Persistence: per-server and per-member settings, the job log, the shared queue's tables,
and a little bot state, on SQLite (the default, through aiosqlite) or PostgreSQL
(``postgresql://``, through asyncpg). All SQL lives in this package and in ``imagine.shared``.

One file a job: ``schema`` (the tables), ``migrations`` (making and upgrading them),
``records`` (what rows mean as Python values), ``database`` (connection, writer,
transactions), ``settings_cache`` (servers' and members' settings in memory),
``member_secrets`` (members' own tokens, sealed), ``joblog`` (the jobs), ``retention``
(purging and clearing tokens), ``quota_rests`` (ZeroGPU rests every process honours),
``notify`` (signals to other processes).
``Store`` is all of them, for a process's whole life: ``await Store.open(url)``, ``close()``.
"""

from __future__ import annotations

from .database import async_url
from .joblog import JobLog
from .member_secrets import MemberSecrets, SealedToken
from .migrations import MIGRATIONS
from .notify import SETTINGS_CHANNEL, notify
from .quota_rests import QuotaRestLog
from .records import (
    ACTIVE_STATES,
    FINAL_STATES,
    GuildSettings,
    JobKind,
    JobRecord,
    JobState,
    UserSettings,
)
from .retention import Retention
from .schema import (
    daily_usage,
    guild_settings,
    job_ended_at,
    job_queue,
    jobs,
    meta,
    queue_users,
    quota_rests,
    user_secrets,
    user_settings,
    workers,
)
from .settings_cache import SettingsCache


class Store(SettingsCache, MemberSecrets, JobLog, Retention, QuotaRestLog):
    """The bot's database, every part of it."""


__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "MIGRATIONS",
    "SETTINGS_CHANNEL",
    "GuildSettings",
    "JobKind",
    "JobRecord",
    "JobState",
    "MemberSecrets",
    "SealedToken",
    "Store",
    "UserSettings",
    "async_url",
    "daily_usage",
    "guild_settings",
    "job_ended_at",
    "job_queue",
    "jobs",
    "meta",
    "notify",
    "queue_users",
    "quota_rests",
    "user_secrets",
    "user_settings",
    "workers",
]
