"""What job messages look like: status lines, result, grid, /describe and failure embeds, and
the job buttons.

Discord's limits are enforced here (embed title 256, description 4096, field 1024, content
2000, five buttons a row), and nothing rendered can ping: the bot sends every message with
``allowed_mentions`` none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import discord

from imagine.canvas import Direction, can_outpaint, fits
from imagine.engine import Engine
from imagine.i18n import ENGLISH, Moment, Number, Shown, Texts, Verbatim, _, n_
from imagine.operations import operation_of
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
    UPSCALE = "upscale"  # the same picture, twice the size
    ZOOM_OUT_2 = "zoom2"
    ZOOM_OUT_1_5 = "zoom1.5"
    CUSTOM_ZOOM = "zoom"  # a modal: the prompt and a factor from 1.1 to 2
    PAN_LEFT = "pan-left"
    PAN_RIGHT = "pan-right"
    PAN_UP = "pan-up"
    PAN_DOWN = "pan-down"
    REGION = "region"  # Vary (Region): a private message to choose the cells


NUMBERED = frozenset({Action.PICK, Action.VARIATION, Action.PROMPT})
PANS = {
    Direction.LEFT: Action.PAN_LEFT,
    Direction.RIGHT: Action.PAN_RIGHT,
    Direction.UP: Action.PAN_UP,
    Direction.DOWN: Action.PAN_DOWN,
}
BEYOND = frozenset(
    {Action.UPSCALE, Action.ZOOM_OUT_2, Action.ZOOM_OUT_1_5, Action.CUSTOM_ZOOM, Action.REGION}
    | set(PANS.values())
)
"""Upscale, Zoom Out, Pan and Vary (Region): a cog of their own answers these
(``beyond_button``; the others are ``job_button``)."""
UPSCALE_LIMIT = 2048
"""A result this large on a side offers no Upscale (an upscale of it would not grow)."""

LABELS: dict[Action, Shown] = {
    Action.CANCEL: _("Cancel"),
    Action.REROLL: _("Reroll"),
    Action.DELETE: _("Delete"),
    Action.RETRY: _("Retry"),
    Action.VARY: _("Vary"),
    Action.EDIT: _("Edit"),
    Action.UPSCALE: _("Upscale"),
    Action.ZOOM_OUT_2: _("Zoom Out 2x"),
    Action.ZOOM_OUT_1_5: _("Zoom Out 1.5x"),
    Action.CUSTOM_ZOOM: _("Custom Zoom"),
    Action.REGION: _("Vary (Region)"),
    Action.PAN_LEFT: Verbatim("⬅️"),
    Action.PAN_RIGHT: Verbatim("➡️"),
    Action.PAN_UP: Verbatim("⬆️"),
    Action.PAN_DOWN: Verbatim("⬇️"),
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
    **{action: discord.ButtonStyle.secondary for action in BEYOND},
}
EMOJI = {
    Action.CANCEL: "✖️",
    Action.REROLL: "🎲",
    Action.DELETE: "🗑️",
    Action.RETRY: "🔁",
    Action.VARY: "🪄",
    Action.EDIT: "✏️",
    Action.UPSCALE: "✨",
    Action.ZOOM_OUT_2: "🔍",
    Action.ZOOM_OUT_1_5: "🔍",
    Action.CUSTOM_ZOOM: "🔍",
    Action.REGION: "🖌️",
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
    ``prompt`` is the file's name); an operation's without a prompt, the operation."""
    if job.kind == JobKind.DESCRIBE:
        return _("Describe {file}", file=job.prompt)
    operation = operation_of(job)
    if operation is not None and not job.prompt.strip():
        return operation.title()
    return Verbatim(job.prompt)


def status_content(job: JobRecord, status: Shown, tr: Texts = ENGLISH) -> str:
    excerpt = shown_prompt(one_line(tr(heading(job))), 150)
    return clip(f"**{excerpt}**\n`{job.model}` · {tr(status)}", 2000)


# -- buttons ------------------------------------------------------------------------------

WORDS = "|".join(re.escape(action.value) for action in Action if action not in NUMBERED)
TEMPLATE = rf"imagine:(?P<action>{WORDS}|[uvp][1-4]):(?P<job_id>\d{{1,19}})"


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
        event = "beyond_button" if self.action in BEYOND else "job_button"
        interaction.client.dispatch(event, interaction, self.action, self.job_id, self.index)


def job_view(job_id: int, *actions: Action, tr: Texts = ENGLISH) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(JobButton(action, job_id, tr=tr))
    return view


@dataclass(frozen=True, slots=True)
class Offers:
    """What this bot can do with a result, by the backends it has: image to image (Vary,
    Edit, V1..V4), upscaling (Upscale) and filling (Zoom Out, Pan, Vary (Region))."""

    image_input: bool = False
    upscale: bool = False
    fill: bool = False

    @classmethod
    def of(cls, engine: Engine) -> Offers:
        return cls(
            image_input=bool(engine.image_models()),
            upscale=bool(engine.upscale_models()),
            fill=bool(engine.fill_models()),
        )


NO_OFFERS = Offers()
"""Nothing but Reroll and Delete: a reply that shows no result (or a test's)."""


def single_rows(job: JobRecord, picture: Picture, offers: Offers) -> list[list[Action]]:
    """A single image's buttons, in rows: what makes a new image of it (Upscale below 2048
    pixels a side; Vary (Region) and the zooms and pans only where the fill model can take
    the shape they make), then Reroll (not under an upscale, which would come out the same)
    and Delete."""
    size = (picture.width, picture.height)
    fill = offers.fill and fits(*size)
    first = [
        *([Action.UPSCALE] if offers.upscale and max(size) < UPSCALE_LIMIT else []),
        *([Action.VARY] if offers.image_input else []),
        *([Action.REGION] if fill else []),
        *([Action.EDIT] if offers.image_input else []),
    ]
    zooms = [Action.ZOOM_OUT_2, Action.ZOOM_OUT_1_5, Action.CUSTOM_ZOOM] if fill else []
    pans = [a for d, a in PANS.items() if offers.fill and can_outpaint(size, direction=d)]
    last = [Action.DELETE] if job.kind == JobKind.UPSCALE else [Action.REROLL, Action.DELETE]
    return [row for row in (first, zooms, pans, last) if row]


def result_view(delivery: Delivery, offers: Offers, *, tr: Texts = ENGLISH) -> discord.ui.View:
    """A grid: U1..Un on one row, V1..Vn (where an image-input model is there) on the next,
    then Reroll and Delete. A single image: ``single_rows``. At most four rows of five."""
    job_id, count = delivery.job.id, len(delivery.pictures)
    view = discord.ui.View(timeout=None)
    rows: list[list[JobButton]] = []
    if count > 1:
        rows.append([JobButton(Action.PICK, job_id, i) for i in range(count)])
        if offers.image_input:
            rows.append([JobButton(Action.VARIATION, job_id, i) for i in range(count)])
        rows.append([JobButton(a, job_id, tr=tr) for a in (Action.REROLL, Action.DELETE)])
    else:
        for actions in single_rows(delivery.job, delivery.first, offers):
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
    if not prompt.strip():  # an operation asked without one (Discord refuses an empty title)
        return discord.Embed(color=color)
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


def name_operation(embed: discord.Embed, job: JobRecord, tr: Texts) -> None:
    """An Upscale's, Zoom Out's, Pan's or Vary (Region)'s embed says which it was, above
    the prompt: "Zoomed out 1.5×"."""
    operation = operation_of(job)
    if operation is not None:
        embed.set_author(name=clip(tr(operation.title()), 256))


def seconds_text(seconds: float, tr: Texts) -> str:
    return tr(_("{seconds}s", seconds=Number(seconds, 1)))


def result_embed(delivery: Delivery, requester: str | None, tr: Texts = ENGLISH) -> discord.Embed:
    job = delivery.job
    pictures = delivery.pictures
    first = delivery.first
    embed = _prompt_embed(job.prompt, color=COLOR_OK)
    name_operation(embed, job, tr)
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
    name_operation(embed, failure.job, tr)
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
