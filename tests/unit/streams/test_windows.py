"""Event-time tumbling windows: boundaries, grace, late events, gaps and idle close."""

from __future__ import annotations

from detectors.windows import TumblingWindows

DAY = 86_400.0
KEY = ("hs6:DE>KG:854231",)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def add(w: TumblingWindows, ts: float, value: float = 1.0, ident: str = "d") -> bool:
    return w.add(ts=ts, keys=KEY, value=value, mass=1.0, declaration_id=ident)


def test_a_window_closes_only_after_its_end_plus_grace() -> None:
    w = TumblingWindows(size=DAY, grace=3600)
    add(w, 100.0)
    add(w, DAY + 3599)  # watermark inside the grace period
    assert w.advance() == []
    add(w, DAY + 3600)
    closed = w.advance()
    assert [(c.start, c.end) for c in closed] == [(0.0, DAY)]
    assert closed[0].aggregates[KEY[0]].count == 1


def test_out_of_order_events_within_grace_count_in_their_own_window() -> None:
    w = TumblingWindows(size=DAY, grace=3600)
    add(w, DAY + 10, value=5.0)
    add(w, DAY - 10, value=7.0)  # earlier window, still open
    add(w, 2 * DAY + 3600)
    first, second = w.advance()
    assert first.aggregates[KEY[0]].value_eur == 7.0
    assert second.aggregates[KEY[0]].value_eur == 5.0


def test_an_event_for_a_closed_window_is_late_and_not_counted() -> None:
    w = TumblingWindows(size=DAY, grace=0)
    add(w, 10.0)
    add(w, DAY)
    (closed,) = w.advance()
    assert add(w, 20.0) is False
    assert closed.aggregates[KEY[0]].count == 1
    assert w.is_late(20.0) and not w.is_late(DAY + 5)


def test_windows_without_events_between_busy_ones_are_emitted_empty() -> None:
    w = TumblingWindows(size=DAY, grace=0)
    add(w, 10.0)
    add(w, 3 * DAY + 1)
    closed = w.advance()
    assert [c.start for c in closed] == [0.0, DAY, 2 * DAY]
    assert [c.is_empty for c in closed] == [False, True, True]


def test_a_long_gap_emits_at_most_max_empty_windows() -> None:
    w = TumblingWindows(size=DAY, grace=0, max_empty_windows=2)
    add(w, 10.0)
    add(w, 100 * DAY + 1)
    closed = w.advance()
    assert [c.start for c in closed] == [0.0, DAY, 2 * DAY]
    add(w, 101 * DAY + 1)
    assert [c.start for c in w.advance()] == [100 * DAY]


def test_idle_windows_close_after_the_wall_clock_timeout() -> None:
    clock = FakeClock()
    w = TumblingWindows(size=DAY, grace=3600, idle_timeout=5.0, clock=clock)
    add(w, 10.0)
    clock.now = 4.9
    assert w.close_idle() == []
    clock.now = 5.0
    (closed,) = w.close_idle()
    assert closed.start == 0.0 and closed.aggregates[KEY[0]].count == 1
    assert add(w, 20.0) is False  # after an idle close the window is final


def test_an_arriving_event_resets_the_idle_timer() -> None:
    clock = FakeClock()
    w = TumblingWindows(size=DAY, idle_timeout=5.0, clock=clock)
    add(w, 10.0)
    clock.now = 4.0
    add(w, 20.0)
    clock.now = 8.0
    assert w.close_idle() == []


def test_evidence_keeps_the_largest_declarations_first() -> None:
    w = TumblingWindows(size=DAY, top_k=2)
    for i, value in enumerate([5.0, 50.0, 1.0, 20.0]):
        add(w, 10.0 + i, value=value, ident=f"d{i}")
    (closed,) = w.flush()
    agg = closed.aggregates[KEY[0]]
    assert agg.top_declarations() == ["d1", "d3"]
    assert (agg.count, agg.value_eur) == (4, 76.0)


def test_flush_closes_everything_and_later_events_are_late() -> None:
    w = TumblingWindows(size=DAY)
    add(w, 10.0)
    add(w, DAY + 10)
    assert [c.start for c in w.flush()] == [0.0, DAY]
    assert w.flush() == []
    assert add(w, DAY + 20) is False
