"""The adapters' bounded memory: pure."""

from __future__ import annotations

from platforms.recent import Recent


def test_remembers_reports_new_and_forgets_the_least_recent() -> None:
    recent = Recent[str](2)
    assert recent.add("a") and recent.add("b")
    assert not recent.add("a")  # known, and now the most recent
    assert recent.add("c")  # full: "b" goes
    assert "a" in recent and "c" in recent and "b" not in recent
