"""Rendering without a database: sizes for people, chart geometry, short names, the table layout."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from tempdl.reports.breakdowns import BreakdownRow, Totals
from tempdl.reports.chart import byte_ticks, bytes_per_day_chart, short_recipient
from tempdl.reports.formats import as_table, human_bytes, period_text
from tempdl.reports.period import Period
from tempdl.reports.stats import Report

UTC = zoneinfo.ZoneInfo("UTC")


@pytest.mark.parametrize(
    "size, text",
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (13_002_342, "12.4 MiB"), (5 * 1024**4, "5.0 TiB")],
)
def test_human_bytes(size, text):
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    "since, until, text",
    [
        (None, None, "all time"),
        ("2026-11-01", None, "since 2026-11-01"),
        (None, "2026-11-30", "up to 2026-11-30"),
        ("2026-11-01", "2026-11-30", "2026-11-01 to 2026-11-30"),
        ("2026-11-30", "2026-11-30", "2026-11-30"),
    ],
)
def test_period_text(since, until, text):
    day = lambda value: value and datetime.date.fromisoformat(value)  # noqa: E731
    assert period_text(Period(day(since), day(until), UTC)) == text


def test_table_for_an_empty_report_is_friendly():
    text = as_table(Report(Period(None, None, UTC), "day", Totals(), []))
    assert text.startswith("No downloads yet")


def test_table_columns_line_up():
    report = Report(
        Period(None, None, UTC),
        "file",
        Totals(links_issued=3, attempts=2, downloads_ok=2, bytes_served=2048),
        [BreakdownRow("a-rather-long-file-name.zip", 1, 1, 1, 0, 0, 1024), BreakdownRow("b", 2, 1, 1, 0, 0, 1024)],
    )
    lines = as_table(report).splitlines()
    header, first, second = lines[-3:]
    assert header.index("links") + len("links") == first.index(" 1 ") + 2 == second.index(" 2 ") + 2
    assert first.endswith("1.0 KiB") and second.endswith("1.0 KiB")


def test_short_recipient_keeps_enough_to_tell_followers_apart():
    assert short_recipient("oyORnuP8q7ou2gfYjqLzSIWZf0rs") == "oyORnu…f0rs"
    assert short_recipient("tester") == "tester"
    assert short_recipient("-") == "-"


@pytest.mark.parametrize(
    "maximum, top, labels",
    [
        (0, 1, ["0"]),
        (3, 3, ["0", "1 B", "2 B", "3 B"]),
        (5000, 6144, ["0", "2 KiB", "4 KiB", "6 KiB"]),
        (12_400_000, 15 * 1024**2, ["0", "5 MiB", "10 MiB", "15 MiB"]),
        (222 * 1024**3, 300 * 1024**3, ["0", "100 GiB", "200 GiB", "300 GiB"]),
    ],
)
def test_byte_ticks_are_round(maximum, top, labels):
    axis_top, ticks = byte_ticks(maximum)
    assert axis_top == top and axis_top >= maximum
    assert [label for _value, label in ticks] == labels


def test_chart_geometry():
    days = [BreakdownRow(f"2026-11-{day:02}", bytes_sent=size) for day, size in [(1, 0), (2, 500), (3, 1000), (4, 1)]]
    chart = bytes_per_day_chart(days, width=400, height=200)
    assert [bar.day for bar in chart.bars] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    plot_height = chart.bottom - chart.top
    assert chart.bars[0].height == 0
    assert chart.bars[2].height == plot_height and chart.bars[2].y == chart.top  # the maximum fills the plot
    assert chart.bars[1].height == plot_height / 2
    assert chart.bars[3].height == 1.0  # tiny but not invisible
    assert all(chart.left <= bar.x and bar.x + bar.width <= chart.right for bar in chart.bars)
    assert chart.bars[2].title.startswith("2026-11-03: 1000 B · 0 attempts")
    assert [tick.label for tick in chart.x_ticks] == ["11-01", "11-02", "11-03", "11-04"]
    assert not chart.empty


def test_chart_labels_at_most_about_eight_days():
    days = [BreakdownRow((datetime.date(2026, 1, 1) + datetime.timedelta(days=n)).isoformat()) for n in range(365)]
    chart = bytes_per_day_chart(days)
    assert len(chart.bars) == 365 and chart.empty
    assert 6 <= len(chart.x_ticks) <= 8
