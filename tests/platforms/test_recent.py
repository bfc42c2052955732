"""The adapters' bounded memory: pure."""

from __future__ import annotations

from platforms.recent import Recent


def test_remembers_reports_new_and_forgets_the_least_recent() -> None:
    recent = Recent[str](2)
    assert recent.add("a") and recent.add("b")
    assert not recent.add("a")  # known, and now the most recent
    assert recent.add("c")  # full: "b" goes
    assert "a" in recent and "c" in recent and "b" not in recent


def test_holds_no_more_than_its_size_however_many_are_added() -> None:
    recent = Recent[int](100)
    for item in range(2000):
        recent.add(item)
    assert len(recent) == 100
    assert all(item in recent for item in range(1900, 2000)) and 1899 not in recent
