"""Event-time tumbling windows: boundaries, grace, late events, gaps, idle close, outliers."""

from __future__ import annotations

from detectors.windows import TumblingWindows

DAY = 86_400.0
KEY = ("hs6:DE>KG:854231",)


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


def test_an_idle_close_closes_every_open_window_and_they_stay_closed() -> None:
    w = TumblingWindows(size=DAY, grace=3600)
    add(w, 10.0)
    add(w, DAY + 10)
    assert w.advance() == []
    assert [c.start for c in w.close_idle()] == [0.0, DAY]
    assert add(w, 20.0) is False  # after an idle close the window is final
    assert add(w, 2 * DAY + 5) is True  # the next window is not


# -- the watermark is bounded against outliers ------------------------------------------


def bounded(**kwargs: object) -> TumblingWindows:
    return TumblingWindows(size=DAY, grace=3600, max_lead=DAY, confirmations=3, **kwargs)  # type: ignore[arg-type]


def test_the_first_record_sets_the_watermark_however_far_it_is() -> None:
    w = bounded()
    add(w, 1_700_000_000.0)
    assert w.watermark == 1_700_000_000.0 and w.held == []


def test_a_record_dated_far_ahead_delays_nothing_and_makes_nothing_late() -> None:
    """A declaration dated "now" in the middle of a 2022 stream."""
    w = bounded()
    add(w, 10.0)
    add(w, 1_700_000_000.0, ident="outlier")
    assert w.watermark == 10.0 and w.advance() == []
    assert all(add(w, 20.0 + h * 3600) for h in range(30))  # the rest of the stream
    closed = w.advance()
    assert [c.start for c in closed] == [0.0]  # closed by the stream's own time
    assert closed[0].aggregates[KEY[0]].count == 25


def test_a_genuine_jump_is_followed_once_confirmed() -> None:
    """After an upstream outage the backlog arrives days ahead: the watermark follows it."""
    w = bounded()
    add(w, 10.0)
    add(w, 5 * DAY)
    add(w, 5 * DAY + 60)
    assert w.watermark == 10.0
    add(w, 5 * DAY + 120)  # the third record beyond the bound confirms the jump
    assert w.watermark == 5 * DAY and w.held == []
    assert [c.start for c in w.advance()][:2] == [0.0, DAY]


def test_an_outlier_among_the_confirmations_does_not_lead_the_watermark() -> None:
    w = bounded()
    add(w, 10.0)
    add(w, 1_700_000_000.0)  # the outlier
    add(w, 5 * DAY)
    add(w, 5 * DAY + 60)  # third held record: confirmed, at the third largest
    assert w.watermark == 5 * DAY
    assert w.held == [1_700_000_000.0]  # still held: it never leads


def test_outliers_amid_a_stream_that_moves_on_never_add_up_to_a_jump() -> None:
    """A producer stamping "now" on one record a month: each is held, none confirms another."""
    w = bounded()
    for day in range(120):
        add(w, day * DAY + 10)
        if day % 30 == 15:
            add(w, 1_700_000_000.0 + day)
    assert w.watermark == 119 * DAY + 10
    assert all(add(w, 119 * DAY + 20 + h) for h in range(10))


def test_a_held_record_does_not_move_the_watermark_when_the_stream_catches_up() -> None:
    w = bounded()
    add(w, 10.0)
    add(w, 2 * DAY)  # held
    add(w, DAY + 10)  # ordinary progress
    assert w.watermark == DAY + 10 and w.held == []


def test_an_idle_close_leaves_the_windows_of_held_records_open() -> None:
    w = bounded()
    add(w, 10.0)
    add(w, 1_700_000_000.0)
    assert [c.start for c in w.close_idle()] == [0.0]
    assert add(w, DAY + 5) is True  # the stream goes on where it was
    assert add(w, 1_700_000_000.0 + 1) is True  # the held window is still open
    assert [c.start for c in w.flush()][-1] == w.window_start(1_700_000_000.0)


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


# -- calendar grids --------------------------------------------------------------------


def _utc(*args: int) -> float:
    import datetime as dt

    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_late_data_across_a_month_boundary_is_taken_within_the_grace() -> None:
    from detectors.calendar import WindowGrid

    w = TumblingWindows(grid=WindowGrid.calendar("month"), grace=3 * DAY)
    add(w, _utc(2024, 2, 29, 22), value=1.0, ident="feb")  # leap day
    add(w, _utc(2024, 3, 3, 23), value=2.0, ident="mar")
    assert w.advance() == []  # February is still in its grace (until 4 March)
    assert add(w, _utc(2024, 2, 29, 23), value=4.0, ident="late")  # late, but in time
    add(w, _utc(2024, 3, 4, 0, 0, 1), value=8.0, ident="mar2")  # Feb end + 3 days passed
    (feb,) = w.advance()
    assert (feb.start, feb.end) == (_utc(2024, 2, 1), _utc(2024, 3, 1))
    assert feb.aggregates[KEY[0]].value_eur == 5.0
    assert add(w, _utc(2024, 2, 29, 23, 30), ident="too late") is False
    assert w.is_late(_utc(2024, 2, 15)) and not w.is_late(_utc(2024, 3, 31, 23))


def test_empty_months_between_busy_ones_are_emitted_with_their_own_lengths() -> None:
    from detectors.calendar import WindowGrid

    w = TumblingWindows(grid=WindowGrid.calendar("month"))
    add(w, _utc(2023, 12, 5))
    add(w, _utc(2024, 4, 1))
    closed = w.advance()
    assert [(c.end - c.start) / DAY for c in closed] == [31, 31, 29, 31]
    assert [c.is_empty for c in closed] == [False, True, True, True]


def test_berlin_days_close_at_local_midnight() -> None:
    from detectors.calendar import WindowGrid

    w = TumblingWindows(grid=WindowGrid.calendar("day", timezone="Europe/Berlin"))
    add(w, _utc(2024, 10, 26, 21, 59), ident="sat")  # Saturday 23:59 CEST
    add(w, _utc(2024, 10, 26, 22, 0), ident="sun")  # Sunday 00:00 CEST: the 25 h day
    (sat,) = w.advance()
    assert sat.end == _utc(2024, 10, 26, 22)
    (sun,) = w.flush()
    assert sun.end - sun.start == 25 * 3600
