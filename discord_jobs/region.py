"""The Vary (Region) picker: a private message that shows the image, a menu of its 3×3 cells
(several may be chosen) and a button that asks for the prompt.

Persistent like the job buttons, and with nothing kept in memory: the menu's custom id names
the job and the message the image is in, and the button's adds the cells chosen (a bit each,
in reading order), so a picker shown before a restart still works. The image to repaint is
the one the picker shows: its embed's image, one of our own results, read back by its URL
(and its message, fetched again for a fresh URL once that one expired).
"""

from __future__ import annotations

import re
from typing import Any

import discord

from imagine.canvas import Cell
from imagine.i18n import ENGLISH, Texts, _

CELLS_TEMPLATE = r"imagine:cells:(?P<job_id>\d{1,19}):(?P<message_id>\d{1,19})"
PAINT_TEMPLATE = r"imagine:paint:(?P<job_id>\d{1,19}):(?P<message_id>\d{1,19}):(?P<mask>\d{1,3})"
ALL_CELLS = list(Cell)


def mask_of(cells: frozenset[Cell]) -> int:
    """The cells as bits, top left first (the button's custom id carries them)."""
    return sum(1 << ALL_CELLS.index(cell) for cell in cells)


def cells_of(mask: int) -> frozenset[Cell]:
    return frozenset(cell for index, cell in enumerate(ALL_CELLS) if mask >> index & 1)


def picker_embed(image_url: str, tr: Texts = ENGLISH) -> discord.Embed:
    embed = discord.Embed(
        title=tr(_("Vary (Region)")),
        description=tr(
            _(
                "Choose the parts of the image to repaint (as many as you like), then press "
                "**Repaint** and say what they should show. The rest stays as it is."
            )
        ),
    )
    embed.set_image(url=image_url)
    return embed


def picked_image(message: discord.Message | None) -> str | None:
    """The URL of the image a picker shows."""
    if message is None or not message.embeds:
        return None
    return message.embeds[0].image.url


def cell_select(
    job_id: int, message_id: int, chosen: frozenset[Cell], tr: Texts = ENGLISH
) -> discord.ui.Select:
    return discord.ui.Select(
        custom_id=f"imagine:cells:{job_id}:{message_id}",
        placeholder=tr(_("Parts of the image to repaint")),
        min_values=1,
        max_values=len(ALL_CELLS),
        options=[
            discord.SelectOption(label=tr(cell.label), value=cell.value, default=cell in chosen)
            for cell in ALL_CELLS
        ],
    )


def paint_button(
    job_id: int, message_id: int, chosen: frozenset[Cell], tr: Texts = ENGLISH
) -> discord.ui.Button:
    return discord.ui.Button(
        custom_id=f"imagine:paint:{job_id}:{message_id}:{mask_of(chosen)}",
        label=tr(_("Repaint")),
        emoji="🖌️",
        style=discord.ButtonStyle.primary,
        disabled=not chosen,  # nothing to repaint yet
    )


class CellSelect(discord.ui.DynamicItem[discord.ui.Select], template=CELLS_TEMPLATE):
    """The picker's menu: a choice updates the picker (``region_cells``)."""

    def __init__(
        self,
        job_id: int,
        message_id: int,
        chosen: frozenset[Cell] = frozenset(),
        tr: Texts = ENGLISH,
    ) -> None:
        super().__init__(cell_select(job_id, message_id, chosen, tr), row=0)
        self.job_id = job_id
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CellSelect:
        return cls(int(match["job_id"]), int(match["message_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        values = list(self.item.values)
        interaction.client.dispatch(
            "region_cells", interaction, self.job_id, self.message_id, values
        )


class PaintButton(discord.ui.DynamicItem[discord.ui.Button], template=PAINT_TEMPLATE):
    """The picker's button: asks for the prompt (``region_paint``)."""

    def __init__(
        self, job_id: int, message_id: int, chosen: frozenset[Cell], tr: Texts = ENGLISH
    ) -> None:
        super().__init__(paint_button(job_id, message_id, chosen, tr), row=1)
        self.job_id = job_id
        self.message_id = message_id
        self.chosen = chosen

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> PaintButton:
        return cls(int(match["job_id"]), int(match["message_id"]), cells_of(int(match["mask"])))

    async def callback(self, interaction: discord.Interaction) -> None:
        interaction.client.dispatch(
            "region_paint", interaction, self.job_id, self.message_id, self.chosen
        )


def picker_view(
    job_id: int, message_id: int, chosen: frozenset[Cell], tr: Texts = ENGLISH
) -> discord.ui.View:
    """The menu (the chosen cells shown as chosen) and the button, in the reader's language.
    Stopped before it is sent: nothing is kept for the message; the dynamic items registered
    at start answer it."""
    view = discord.ui.View(timeout=None)
    view.add_item(CellSelect(job_id, message_id, chosen, tr))
    view.add_item(PaintButton(job_id, message_id, chosen, tr))
    view.stop()
    return view
