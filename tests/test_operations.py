"""A job's operation (``imagine.operations``): what its row keeps and gives back, the size it
makes, its name for people, and Custom Zoom's factor as typed."""

from __future__ import annotations

import pytest

from imagine.canvas import Cell, Direction
from imagine.errors import BadInput
from imagine.i18n import Language, texts
from imagine.operations import Pan, Region, Upscale, ZoomOut, lossless, operation_of, parse_factor
from imagine.store import JobKind, JobRecord

OPERATIONS = [
    Upscale(),
    ZoomOut(2.0),
    ZoomOut(1.25),
    *(Pan(direction) for direction in Direction),
    Region(frozenset({Cell.BOTTOM_RIGHT, Cell.TOP_LEFT})),
]


def job(kind: JobKind, **columns) -> JobRecord:
    return JobRecord(1, 2, 3, 4, "zoom", "a fox", "flux-fill-dev", 1024, 1024, None, "done",
                     kind=kind, **columns)  # fmt: skip


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_a_job_row_gives_back_the_operation_it_was_asked(operation):
    assert operation_of(job(operation.kind, **operation.columns())) == operation
    assert lossless(operation.kind)


def test_other_jobs_have_no_operation_and_keep_their_jpeg():
    for kind in (JobKind.IMAGINE, JobKind.VARY, JobKind.EDIT, JobKind.PICK, JobKind.DESCRIBE):
        assert operation_of(job(kind)) is None and not lossless(kind)


def test_cells_are_kept_in_reading_order():
    region = Region.of(["bottom-right", Cell.TOP_LEFT, "middle-center"])
    assert region.columns() == {"cells": "top-left,middle-center,bottom-right"}
    with pytest.raises(BadInput, match="at least one part"):
        Region.of([])


def test_the_size_each_makes_and_a_shape_fill_cannot_take():
    assert Upscale().size((512, 768)) == (1024, 1536)
    assert ZoomOut(1.5).size((1024, 1024)) == (1024, 1024)
    assert Pan(Direction.RIGHT).size((1024, 1024)) == (1024, 688)
    assert Region(frozenset({Cell.MIDDLE_CENTER})).size((1344, 768)) == (1024, 592)
    with pytest.raises(BadInput, match="9:16 to 16:9"):
        Pan(Direction.LEFT).size((1344, 768))


def test_names_in_english_and_russian():
    ru = texts(Language.RU)
    assert str(Upscale().title()) == "Upscaled 2×"
    assert str(ZoomOut(1.25).title()) == "Zoomed out 1.25×"
    assert ru(ZoomOut(1.5).title()) == "Отдалено ×1,5"
    assert str(Pan(Direction.UP).title()) == "Panned up"
    region = Region.of(["middle-center", "top-left"])
    assert str(region.title()) == "Region: top left, centre"
    assert ru(region.title()) == "Область: сверху слева, в центре"


@pytest.mark.parametrize(
    ("typed", "factor"),
    [("1.5", 1.5), ("1,5", 1.5), ("1.25x", 1.25), (" 2 ", 2.0), ("1.1×", 1.1), ("1.333", 1.33)],
)
def test_custom_zoom_reads_a_factor_as_people_type_it(typed, factor):
    assert parse_factor(typed) == factor


@pytest.mark.parametrize("typed", ["3", "1", "1.09", "", "two", "nan", "inf", "-1.5"])
def test_custom_zoom_refuses_anything_outside_1_1_to_2(typed):
    with pytest.raises(BadInput, match=r"from 1\.1 to 2"):
        parse_factor(typed)
