"""The overview's bars: a day each, scaled to the highest day, empty days drawn as none."""

from __future__ import annotations

from datetime import date

from bot.dashboard.charts import DAYS, HEIGHT, charts


def test_bars_scale_to_the_busiest_day_and_old_days_are_left_out() -> None:
    rows = [
        ("2026-03-30", "redirect", 2),
        ("2026-03-31", "redirect", 4),
        ("2026-01-01", "redirect", 100),  # before the window
        ("2026-03-31", "nonsense", 7),  # not a series
    ]
    found = {chart.key: chart for chart in charts(rows, date(2026, 3, 31))}
    redirects = found["redirect"]
    assert len(redirects.bars) == DAYS and redirects.total == 6 and redirects.peak == 4
    assert redirects.bars[-1].height == HEIGHT and redirects.bars[-1].y == 0
    assert redirects.bars[-2].height == HEIGHT / 2
    assert redirects.first == "2026-03-02" and redirects.last == "2026-03-31"
    assert found["warning"].total == 0 and {b.height for b in found["warning"].bars} == {0}
    assert "nonsense" not in found
