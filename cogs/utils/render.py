"""What job messages look like: status lines, result and failure embeds, job buttons.

Discord's limits are enforced here (embed title 256, description 4096, content 2000), and
nothing rendered can ping: the bot sends every message with ``allowed_mentions`` none.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from imagine.runner import Delivery, Failure

NO_PINGS = discord.AllowedMentions.none()
COLOR_OK = discord.Color.from_rgb(88, 101, 242)
COLOR_FAIL = discord.Color.red()

LABELS = {"cancel": "Cancel", "reroll": "Reroll", "delete": "Delete", "retry": "Retry"}
STYLES = {
    "cancel": discord.ButtonStyle.secondary,
    "reroll": discord.ButtonStyle.primary,
    "delete": discord.ButtonStyle.danger,
    "retry": discord.ButtonStyle.primary,
}
EMOJI = {"cancel": "✖️", "reroll": "🎲", "delete": "🗑️", "retry": "🔁"}


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


def status_content(prompt: str, model: str, status: str) -> str:
    excerpt = shown_prompt(one_line(prompt), 150)
    return clip(f"**{excerpt}**\n`{model}` · {status}", 2000)


def job_button(action: str, job_id: int) -> discord.ui.Button:
    return discord.ui.Button(
        label=LABELS[action],
        style=STYLES[action],
        emoji=EMOJI[action],
        custom_id=f"imagine:{action}:{job_id}",
    )


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"imagine:(?P<action>cancel|reroll|delete|retry):(?P<job_id>[0-9]{1,19})",
):
    """A persistent button: the job id is in its ``custom_id``, the job in the database, so
    it still works after a restart."""

    def __init__(self, action: str, job_id: int) -> None:
        super().__init__(job_button(action, job_id))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        return cls(match["action"], int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # An event, not a call: the cog that handles it is loaded as an extension (its own
        # module object), and this view knows nothing of it.
        interaction.client.dispatch("job_button", interaction, self.action, self.job_id)


def job_view(job_id: int, *actions: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(JobButton(action, job_id))
    return view


def result_embed(delivery: Delivery, requester: str | None) -> discord.Embed:
    job = delivery.job
    prompt = one_line(job.prompt)
    title = shown_prompt(prompt, 256)
    embed = discord.Embed(title=title, color=COLOR_OK)
    if title.endswith("…"):
        embed.description = shown_prompt(job.prompt, 4096)
    model = delivery.model
    if delivery.fallback_from:
        model += f" (fallback: {delivery.fallback_from} failed)"
    embed.add_field(name="Model", value=clip(model, 1024))
    embed.add_field(name="Seed", value=str(delivery.seed) if delivery.seed is not None else "—")
    embed.add_field(name="Size", value=f"{delivery.width}×{delivery.height}")
    embed.add_field(name="Time", value=f"{delivery.elapsed:.1f}s")
    notes = []
    if delivery.fallback_from and delivery.fallback_reason:
        notes.append(f"{delivery.fallback_from}: {clip(delivery.fallback_reason, 300)}")
    if delivery.reencoded:
        notes.append("re-encoded to fit Discord's upload limit")
    if delivery.extra_images:
        notes.append(f"{delivery.extra_images} more image(s) made; the first is shown")
    footer = " · ".join(
        [f"Requested by {requester}" if requester else "", f"drawn by {delivery.backend}", *notes]
    ).strip(" ·")
    embed.set_footer(text=clip(footer, 2048))
    if delivery.image is not None:
        embed.set_image(url=f"attachment://{delivery.image.filename}")
    elif delivery.link:
        embed.description = clip(
            f"{embed.description or ''}\nToo large to upload here even re-encoded: "
            f"[open the image]({delivery.link}) (the link expires).".strip(),
            4096,
        )
        embed.set_image(url=delivery.link)
    return embed


def failure_embed(failure: Failure) -> discord.Embed:
    title = "Interrupted" if failure.interrupted else "Couldn't make this image"
    text = failure.message
    if failure.backend and failure.backend not in text:
        text = f"{failure.backend} failed: {text}"
    if failure.retry_at is not None:
        text += f"\nYou can try again <t:{int(failure.retry_at)}:R>."
    elif failure.transient:
        text += "\nThis kind of hiccup usually passes: press **Retry** in a minute."
    embed = discord.Embed(title=title, description=clip(text, 4096), color=COLOR_FAIL)
    embed.add_field(name="Prompt", value=shown_prompt(failure.job.prompt, 1024), inline=False)
    embed.add_field(name="Model", value=failure.job.model)
    return embed
