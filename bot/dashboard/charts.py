"""The overview's charts as plain numbers a template draws as SVG: no script, no library.

A chart is bars of equal width, one a day, scaled to the chart's own highest day; the
template writes each bar as an SVG rect (presentation attributes only, so the CSP that
allows no inline style still draws them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from bot.conversation import EndReason

DAYS = 30
WIDTH, HEIGHT = 300, 60  # the SVG's viewBox; CSS scales it to the page
SERIES = (
    ("conversation", "Conversations"),
    ("redirect", "Redirects"),
    ("warning", "Warnings"),
    *((f"end:{reason.value}", f"Ends: {reason.value.replace('_', ' ')}") for reason in EndReason),
    ("crisis_flagged", "Crisis flags"),
    ("feedback", "Called a mistake"),
    ("review:reopened", "Reopened on review"),
    ("review:upheld", "Upheld on review"),
    ("review:readmitted", "Shut-outs readmitted on review"),
    ("would_end", "Would have ended (alert-only mode)"),
    ("model_unavailable", "Model errors"),
)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    count: int


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    total: int
    peak: int
    bars: tuple[Bar, ...]
    first: str
    last: str


def days_ending(today: date, days: int = DAYS) -> list[str]:
    return [(today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]


def charts(rows: Iterable[tuple[str, str, int]], today: date) -> list[Chart]:
    """One chart per series over the last `DAYS` days up to `today` (missing days are 0)."""
    counts: dict[tuple[str, str], int] = {}
    for day, series, count in rows:
        counts[(series, day)] = counts.get((series, day), 0) + count
    days = days_ending(today)
    return [
        _chart(key, title, [counts.get((key, d), 0) for d in days], days) for key, title in SERIES
    ]


def _chart(key: str, title: str, values: list[int], days: list[str]) -> Chart:
    peak = max(values)
    step = WIDTH / len(values)
    bars = tuple(
        Bar(
            x=round(i * step + step * 0.1, 2),
            y=round(HEIGHT - HEIGHT * v / peak, 2) if peak else HEIGHT,
            width=round(step * 0.8, 2),
            height=round(HEIGHT * v / peak, 2) if peak else 0,
            day=day,
            count=v,
        )
        for i, (v, day) in enumerate(zip(values, days, strict=True))
    )
    return Chart(key, title, sum(values), peak, bars, days[0], days[-1])
