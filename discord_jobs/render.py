"""What job messages look like: status lines, result, grid, /describe and failure embeds, and
the job buttons.

Discord's limits are enforced here (embed title 256, description 4096, field 1024, content
2000, five buttons a row), and nothing rendered can ping: the bot sends every message with
``allowed_mentions`` none.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import discord

from imagine.i18n import ENGLISH, Moment, Number, Shown, Texts, Verbatim, _, n_
from imagine.outcomes import Delivery, Described, Failure, Picture
from imagine.quota import Rest
from imagine.store import JobKind, JobRecord

NO_PINGS = discord.AllowedMentions.none()
COLOR_OK = discord.Color.from_rgb(88, 101, 242)
COLOR_FAIL = discord.Color.red()


class Action(StrEnum):
    """What a job button does; its value is the ``custom_id`` part (``u2`` = U, image 2)."""

    CANCEL = "cancel"
    REROLL = "reroll"
    DELETE = "delete"
    RETRY = "retry"
    VARY = "vary"
    EDIT = "edit"
    PICK = "u"  # U1..U4: that image alone, full size, in a new reply
    VARIATION = "v"  # V1..V4: a variation of that image
    PROMPT = "p"  # 1..4 under /describe: draw that prompt


LABELS = {
    Action.CANCEL: _("Cancel"),
    Action.REROLL: _("Reroll"),
    Action.DELETE: _("Delete"),
    Action.RETRY: _("Retry"),
    Action.VARY: _("Vary"),
    Action.EDIT: _("Edit"),
}
STYLES = {
    Action.CANCEL: discord.ButtonStyle.secondary,
    Action.REROLL: discord.ButtonStyle.primary,
    Action.DELETE: discord.ButtonStyle.danger,
    Action.RETRY: discord.ButtonStyle.primary,
    Action.VARY: discord.ButtonStyle.secondary,
    Action.EDIT: discord.ButtonStyle.secondary,
    Action.PICK: discord.ButtonStyle.secondary,
    Action.VARIATION: discord.ButtonStyle.secondary,
    Action.PROMPT: discord.ButtonStyle.primary,
}
EMOJI = {
    Action.CANCEL: "✖️",
    Action.REROLL: "🎲",
    Action.DELETE: "🗑️",
    Action.RETRY: "🔁",
    Action.VARY: "🪄",
    Action.EDIT: "✏️",
}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


MARKDOWN = re.compile(r"([\\`*_~|>#\-\[\]()<:.])")
"""Every character Discord's markdown gives a meaning to (masked links and bare URLs,
headings, lists, emphasis, spoilers, quotes, mention and emoji tags); a backslash makes each
one literal. (``@everyone`` stays as it is: messages are sent with no mentions allowed.)"""


def shown_prompt(prompt: str, limit: int) -> str:
    """A prompt as text in a message the bot signs: every markdown character escaped, so a
    masked link ``[Claim Nitro](https://…)`` stays words, never a link; clipped to ``limit``
    without cutting an escape in two."""
    escaped = MARKDOWN.sub(r"\\\1", prompt)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]  # a lone backslash would escape the ellipsis
    return cut.rstrip() + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def heading(job: JobRecord) -> Shown:
    """What a job's messages name it by: its prompt; a /describe's, the image it reads (its
    ``prompt`` is the file's name)."""
    if job.kind == JobKind.DESCRIBE:
        return _("Describe {file}", file=job.prompt)
    return Verbatim(job.prompt)


def status_content(job: JobRecord, status: Shown, tr: Texts = ENGLISH) -> str:
    excerpt = shown_prompt(one_line(tr(heading(job))), 150)
    return clip(f"**{excerpt}**\n`{job.model}` · {tr(status)}", 2000)


# -- buttons ------------------------------------------------------------------------------

TEMPLATE = (
    r"imagine:(?P<action>cancel|reroll|delete|retry|vary|edit|[uvp][1-4]):(?P<job_id>\d{1,19})"
)


def parse_action(text: str) -> tuple[Action, int | None]:
    """``"u2"`` → (PICK, 1): a numbered action and its 0-based index; others have none."""
    if text[:1] in "uvp" and text[1:].isdigit():
        return Action(text[0]), int(text[1:]) - 1
    return Action(text), None


def job_button(
    action: Action, job_id: int, index: int | None = None, tr: Texts = ENGLISH
) -> discord.ui.Button:
    if index is None:
        label, code, emoji = tr(LABELS[action]), action.value, EMOJI.get(action)
    else:
        number = index + 1
        label = str(number) if action is Action.PROMPT else f"{action.value.upper()}{number}"
        code, emoji = f"{action.value}{number}", None
    return discord.ui.Button(
        label=label, style=STYLES[action], emoji=emoji, custom_id=f"imagine:{code}:{job_id}"
    )


class JobButton(discord.ui.DynamicItem[discord.ui.Button], template=TEMPLATE):
    """A persistent button: the job id is in its ``custom_id``, the job in the database, so
    it still works after a restart."""

    def __init__(
        self, action: Action, job_id: int, index: int | None = None, tr: Texts = ENGLISH
    ) -> None:
        super().__init__(job_button(action, job_id, index, tr))
        self.action = action
        self.job_id = job_id
        self.index = index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        action, index = parse_action(match["action"])
        return cls(action, int(match["job_id"]), index)

    async def callback(self, interaction: discord.Interaction) -> None:
        # An event, not a call: the cog that handles it is loaded as an extension (its own
        # module object), and this view knows nothing of it.
        interaction.client.dispatch("job_button", interaction, self.action, self.job_id, self.index)


def job_view(job_id: int, *actions: Action, tr: Texts = ENGLISH) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(JobButton(action, job_id, tr=tr))
    return view


def result_view(
    job_id: int, count: int, *, image_input: bool, tr: Texts = ENGLISH
) -> discord.ui.View:
    """A single image: Vary, Edit (where an image-input model is there), Reroll, Delete. A
    grid: U1..Un on one row, V1..Vn (where an image-input model is there) on the next, then
    Reroll and Delete."""
    view = discord.ui.View(timeout=None)
    rows: list[list[JobButton]] = []
    if count > 1:
        rows.append([JobButton(Action.PICK, job_id, i) for i in range(count)])
        if image_input:
            rows.append([JobButton(Action.VARIATION, job_id, i) for i in range(count)])
        actions = [Action.REROLL, Action.DELETE]
    else:
        actions = [Action.VARY, Action.EDIT] if image_input else []
        actions += [Action.REROLL, Action.DELETE]
    rows.append([JobButton(action, job_id, tr=tr) for action in actions])
    for number, row in enumerate(rows):
        for button in row:
            button.row = number
            view.add_item(button)
    return view


def describe_view(job_id: int, count: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for index in range(count):
        view.add_item(JobButton(Action.PROMPT, job_id, index))
    return view


# -- embeds -------------------------------------------------------------------------------


def _prompt_embed(prompt: str, *, color: discord.Color) -> discord.Embed:
    title = shown_prompt(one_line(prompt), 256)
    embed = discord.Embed(title=title, color=color)
    if title.endswith("…"):
        embed.description = shown_prompt(prompt, 4096)
    return embed


def _model_text(picture: Picture, tr: Texts) -> str:
    if picture.fallback_from:
        return tr(
            _(
                "{model} (fallback: {failed} failed)",
                model=picture.model,
                failed=picture.fallback_from,
            )
        )
    return picture.model


def _notes(delivery: Delivery, tr: Texts) -> list[str]:
    notes: list[str] = []
    pictures = delivery.pictures
    fallen = next((p for p in pictures if p.fallback_from and p.fallback_reason), None)
    if fallen is not None:
        reason = tr(fallen.fallback_reason or Verbatim(""))
        notes.append(f"{fallen.fallback_from}: {clip(reason, 300)}")
    ignored = sorted({option for p in pictures for option in p.ignored})
    for option in ignored:
        notes.append(
            tr(
                _(
                    "{option} not used: {model} does not take one",
                    option=option,
                    model=pictures[0].model,
                )
            )
        )
    if any(p.reencoded for p in pictures):
        notes.append(tr(_("re-encoded to fit Discord's upload limit")))
    if delivery.extra_images:
        notes.append(
            tr(
                n_(
                    "{n} more image made; the first is shown",
                    "{n} more images made; the first is shown",
                    delivery.extra_images,
                )
            )
        )
    notes.extend(clip(tr(line), 300) for line in delivery.failed)
    return notes


def seconds_text(seconds: float, tr: Texts) -> str:
    return tr(_("{seconds}s", seconds=Number(seconds, 1)))


def result_embed(delivery: Delivery, requester: str | None, tr: Texts = ENGLISH) -> discord.Embed:
    job = delivery.job
    pictures = delivery.pictures
    first = delivery.first
    embed = _prompt_embed(job.prompt, color=COLOR_OK)
    embed.add_field(name=tr(_("Model")), value=clip(_model_text(first, tr), 1024))
    if len(pictures) == 1:
        seed = str(first.seed) if first.seed is not None else "—"
        embed.add_field(name=tr(_("Seed")), value=seed)
        embed.add_field(name=tr(_("Size")), value=f"{first.width}×{first.height}")
    else:
        seeds = " · ".join(
            f"{n}: {p.seed if p.seed is not None else '—'}" for n, p in enumerate(pictures, 1)
        )
        embed.add_field(name=tr(_("Seeds")), value=clip(seeds, 1024))
        sizes = sorted({f"{p.width}×{p.height}" for p in pictures})
        embed.add_field(name=tr(_("Size")), value=", ".join(sizes))
    embed.add_field(name=tr(_("Time")), value=seconds_text(delivery.elapsed, tr))
    if job.negative:
        embed.add_field(
            name=tr(_("Negative")), value=shown_prompt(job.negative, 1024), inline=False
        )
    if job.translated_prompt:
        embed.add_field(
            name=tr(_("Drawn as (translated)")),
            value=shown_prompt(job.translated_prompt, 1024),
            inline=False,
        )
    backends = ", ".join(dict.fromkeys(p.backend for p in pictures))
    footer = " · ".join(
        [
            tr(_("Requested by {name}", name=requester)) if requester else "",
            tr(_("drawn by {backends}", backends=backends)),
            *_notes(delivery, tr),
        ]
    ).strip(" ·")
    embed.set_footer(text=clip(footer, 2048))
    if len(pictures) == 1:
        if first.image is not None:
            embed.set_image(url=f"attachment://{first.image.filename}")
        elif first.link:
            too_large = tr(
                _(
                    "Too large to upload here even re-encoded: [open the image]({link}) "
                    "(the link expires).",
                    link=first.link,
                )
            )
            embed.description = clip(f"{embed.description or ''}\n{too_large}".strip(), 4096)
            embed.set_image(url=first.link)
    else:
        links = [
            tr(_("[image {n}]({link})", n=p.index + 1, link=p.link))
            for p in pictures
            if p.image is None and p.link
        ]
        if links:
            too_large = tr(
                _("Too large to upload here: {links} (the links expire).", links=", ".join(links))
            )
            embed.description = clip(f"{embed.description or ''}\n{too_large}".strip(), 4096)
    return embed


def described_embed(
    described: Described, requester: str | None, tr: Texts = ENGLISH
) -> discord.Embed:
    lines = [
        f"**{n}.** {shown_prompt(prompt, 900)}" for n, prompt in enumerate(described.prompts, 1)
    ]
    embed = discord.Embed(
        title=tr(_("Prompts from this image")),
        description=clip("\n\n".join(lines), 4096),
        color=COLOR_OK,
    )
    footer = " · ".join(
        [
            tr(_("Requested by {name}", name=requester)) if requester else "",
            tr(_("read by {backend}", backend=described.backend)),
            tr(_("press a number to draw that prompt")),
        ]
    ).strip(" ·")
    embed.set_footer(text=clip(footer, 2048))
    return embed


FAILURE_TITLE = _("Couldn't make this image")
INTERRUPTED_TITLE = _("Interrupted")


def failure_embed(failure: Failure, tr: Texts = ENGLISH) -> discord.Embed:
    title = tr(INTERRUPTED_TITLE if failure.interrupted else FAILURE_TITLE)
    text = tr(failure.message)
    if failure.backend and failure.backend not in text:
        text = tr(_("{backend} failed: {error}", backend=failure.backend, error=failure.message))
    if failure.retry_at is not None:
        text += "\n" + tr(_("You can try again {when}.", when=f"<t:{int(failure.retry_at)}:R>"))
    elif failure.transient:
        text += "\n" + tr(_("This kind of hiccup usually passes: press **Retry** in a minute."))
    embed = discord.Embed(title=title, description=clip(text, 4096), color=COLOR_FAIL)
    embed.add_field(
        name=tr(_("Prompt")), value=shown_prompt(tr(heading(failure.job)), 1024), inline=False
    )
    embed.add_field(name=tr(_("Model")), value=failure.job.model)
    return embed


def rest_line(rest: Rest, label: str, tr: Texts = ENGLISH) -> str:
    """One quota rest as an admin reads it: the backend, whose account, until when."""
    whose = _("the bot's account") if rest.mine else _("a member's own account")
    return tr(
        _(
            "{backend}: out of GPU quota for {whose} until {when}",
            backend=Verbatim(label),
            whose=whose,
            when=Moment(rest.until),
        )
    )
