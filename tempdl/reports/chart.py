"""What the admin page draws, worked out from `stats.Dashboard`: chart geometry, short names, local times.

No queries here and no markup: `templates/admin.html` turns these plain values into HTML and SVG.
"""

from __future__ import annotations

import datetime
import math
import zoneinfo
from dataclasses import dataclass

from tempdl.audit.records import Outcome
from tempdl.reports.breakdowns import NONE_KEY, REFUSED_OUTCOMES, BreakdownRow
from tempdl.reports.formats import human_bytes

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def short_recipient(key: str) -> str:
    """`oyORnu…f0rs`: enough to tell followers apart on screen, not enough to identify one."""
    if key == NONE_KEY or len(key) <= 12:
        return key
    return f"{key[:6]}…{key[-4:]}"


def outcome_class(outcome: str) -> str:
    """CSS class of an outcome badge."""
    if outcome in (Outcome.OK, Outcome.PARTIAL):
        return outcome
    return "refused" if outcome in REFUSED_OUTCOMES else "other"


def local_time(moment: datetime.datetime, zone: zoneinfo.ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def thousands(number: int) -> str:
    return f"{number:,}"


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Bar:
    day: str
    slot_x: float  # the whole column: hovering anywhere in it shows the title
    slot_width: float
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    empty: bool


def byte_ticks(maximum: int, count: int = 4) -> tuple[int, list[tuple[int, str]]]:
    """A round axis top and about `count` evenly spaced, labelled ticks from 0 to it.

    Steps are 1, 2 or 5 times a power of ten in the binary unit that fits `maximum`
    (`0, 50 GiB, 100 GiB, 150 GiB`), so labels stay short.
    """
    if maximum <= 0:
        return 1, [(0, "0")]
    exponent = min(int(math.log(maximum, 1024)), len(_BYTE_UNITS) - 1)
    unit_size, unit = 1024**exponent, _BYTE_UNITS[exponent]
    rough_step = maximum / unit_size / count
    magnitude = 10 ** math.floor(math.log10(rough_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough_step)
    if unit == "B":
        step = max(step, 1)  # no half bytes
    steps = math.ceil(maximum / unit_size / step - 1e-9)
    ticks = []
    for index in range(steps + 1):
        value = index * step
        ticks.append((round(value * unit_size), "0" if index == 0 else f"{value:g} {unit}"))
    return ticks[-1][0], ticks


def bytes_per_day_chart(days: list[BreakdownRow], *, width: int = 720, height: int = 260) -> BarChart:
    """One bar per day (every day of the period, zeros included), scaled to a round axis top."""
    left, right, top, bottom = 80, width - 12, 12, height - 34
    top_value, ticks = byte_ticks(max((day.bytes_sent for day in days), default=0))
    plot_height = bottom - top
    slot = (right - left) / max(len(days), 1)
    bar_width = max(slot * 0.72, 1.0)
    bars = []
    for index, day in enumerate(days):
        bar_height = plot_height * day.bytes_sent / top_value
        if day.bytes_sent and bar_height < 1:
            bar_height = 1.0  # a day with any traffic stays visible
        bars.append(
            Bar(
                day=day.key,
                slot_x=round(left + index * slot, 2),
                slot_width=round(slot, 2),
                x=round(left + index * slot + (slot - bar_width) / 2, 2),
                y=round(bottom - bar_height, 2),
                width=round(bar_width, 2),
                height=round(bar_height, 2),
                title=(
                    f"{day.key}: {human_bytes(day.bytes_sent)} · {thousands(day.attempts)} attempts, "
                    f"{thousands(day.ok)} complete, {thousands(day.partial)} partial, "
                    f"{thousands(day.refused)} refused · {thousands(day.links_issued)} links issued"
                ),
            )
        )
    every = max(1, math.ceil(len(days) / 8))
    x_ticks = [Tick(bar.slot_x + bar.slot_width / 2, bar.day[5:]) for bar in bars[::every]]
    y_ticks = [Tick(round(bottom - plot_height * value / top_value, 2), label) for value, label in ticks]
    return BarChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        empty=not any(day.bytes_sent for day in days),
    )
