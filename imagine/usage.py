"""What one server used, for its admins (``/imagine-config usage``): images today and over
the last 7 UTC days, by model and by backend, Horde kudos spent and the top members, all
read off that server's own jobs in the job log; and the quota rests running now.

An image counts on the UTC day its job was accepted (``created_at``, the day its budget was
charged), once delivered: a job that ended without one made nothing. What a backend drew
is read from each picture's record (``jobs.result``), so a grid drawn partly by the fallback
is told as it was; an Upscale, Zoom Out, Pan or Vary (Region) made an image and counts. U1..U4
picks and /describe draw nothing and are not counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .quota import Rest
from .store import JobKind, JobState, JobUse, Store, day_start
from .store.records import json_list
from .store.usage import DAY_SECONDS

WEEK_DAYS = 7
"""The report's longer span: today and the six UTC days before it."""
TOP_MEMBERS = 5
DRAWING_KINDS = (
    JobKind.IMAGINE, JobKind.VARY, JobKind.EDIT,
    JobKind.UPSCALE, JobKind.ZOOM_OUT, JobKind.PAN, JobKind.REGION,
)  # fmt: skip


@dataclass(slots=True)
class Tally:
    """A count today and over the week (today included)."""

    today: float = 0
    week: float = 0

    def add(self, amount: float, today: bool) -> None:
        self.week += amount
        if today:
            self.today += amount


@dataclass(slots=True)
class UsageReport:
    images: Tally = field(default_factory=Tally)
    models: dict[str, Tally] = field(default_factory=dict)
    backends: dict[str, Tally] = field(default_factory=dict)
    kudos: Tally = field(default_factory=Tally)
    members: dict[int, Tally] = field(default_factory=dict)
    rests: list[Rest] = field(default_factory=list)

    def top_members(self, count: int = TOP_MEMBERS) -> list[tuple[int, Tally]]:
        """The members who made the most images this week (ties: most today, then first
        seen), at most ``count``."""
        ranked = sorted(self.members.items(), key=lambda kv: (-kv[1].week, -kv[1].today))
        return ranked[:count]

    @staticmethod
    def ranked(tallies: dict[str, Tally]) -> list[tuple[str, Tally]]:
        return sorted(tallies.items(), key=lambda kv: (-kv[1].week, kv[0]))


def pictures(job: JobUse) -> list[tuple[str, str]]:
    """The (model, backend) of each image a job delivered; none for a job that made none."""
    if job.state != JobState.DONE or job.kind not in DRAWING_KINDS:
        return []
    records = [r for r in json_list(job.result) or [] if isinstance(r, dict)]
    if not records:  # a job logged without per-picture records: its one result
        return [(job.result_model or "?", job.result_backend or "?")]
    return [
        (str(r.get("model") or job.result_model or "?"), str(r.get("backend") or "?"))
        for r in records
    ]


async def usage_report(store: Store, guild_id: int, now: float) -> UsageReport:
    """The server's report as of ``now``."""
    today = day_start(now)
    since = today - (WEEK_DAYS - 1) * DAY_SECONDS
    report = UsageReport()
    for job in await store.guild_jobs_since(guild_id, since):
        on_today = job.created_at >= today
        if job.kudos:
            report.kudos.add(job.kudos, on_today)
        drawn = pictures(job)
        if not drawn:
            continue
        report.images.add(len(drawn), on_today)
        report.members.setdefault(job.user_id, Tally()).add(len(drawn), on_today)
        for key, tallies in ((0, report.models), (1, report.backends)):
            for name, n in Counter(p[key] for p in drawn).items():
                tallies.setdefault(name, Tally()).add(n, on_today)
    report.rests = await store.quota_rests()
    return report
