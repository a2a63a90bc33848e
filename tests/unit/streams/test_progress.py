"""The progress line: silent off a terminal, a count and a rate on one (no timings asserted)."""

from __future__ import annotations

import io
import itertools

from streams.progress import CHECK_EVERY, Progress, progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so the reporter writes to it."""

    def isatty(self) -> bool:
        return True


def ticking(step: float = 1.0):  # type: ignore[no-untyped-def]
    """A clock that moves ``step`` seconds each time it is read (no real time involved)."""
    counter = itertools.count()
    return lambda: next(counter) * step


def test_not_a_terminal_writes_nothing_and_passes_every_record_through() -> None:
    stream = io.StringIO()
    records = [f"r{i}".encode() for i in range(5 * CHECK_EVERY)]
    assert list(progress(iter(records), "replay", len(records), stream=stream)) == records
    assert stream.getvalue() == ""


def test_a_stream_without_isatty_counts_as_a_pipe() -> None:
    class Sink:
        def write(self, text: str) -> None:
            raise AssertionError("wrote to a pipe")

        def flush(self) -> None:
            pass

    assert list(progress(iter([1, 2, 3]), "replay", stream=Sink())) == [1, 2, 3]  # type: ignore[arg-type]


def test_a_terminal_gets_lines_with_the_count_and_the_rate() -> None:
    terminal = FakeTerminal()
    n = 10 * CHECK_EVERY
    out = list(progress(iter(range(n)), "baseline", n, stream=terminal, clock=ticking()))
    assert out == list(range(n))
    lines = [line for line in terminal.getvalue().split("\r") if line]
    assert len(lines) >= 2, terminal.getvalue()
    assert all(line.startswith("baseline: ") and "records/s" in line for line in lines)
    assert f"{CHECK_EVERY:,} / {n:,} records" in lines[0]
    assert "left" in lines[0]
    assert f"baseline: {n:,} records" in lines[-1] and "done in" in lines[-1]
    assert terminal.getvalue().endswith("\n")


def test_an_estimated_total_is_marked_and_overrunning_it_drops_the_time_left() -> None:
    reporter = Progress("evaluate", 100, estimated=True, stream=FakeTerminal(), clock=ticking())
    reporter.update(50)
    assert "/ ~100 records" in reporter.line(now=10.0)
    reporter.update(60)
    line = reporter.line(now=20.0)
    assert "110 records" in line and "~100" not in line and "left" not in line


def test_an_unknown_total_shows_count_rate_and_elapsed() -> None:
    reporter = Progress("replay", None, stream=FakeTerminal(), clock=lambda: 0.0)
    reporter.count = 2_000
    assert reporter.line(now=1.0) == "replay: 2,000 records  2.0k records/s  0:01 elapsed"


def test_close_is_idempotent() -> None:
    terminal = FakeTerminal()
    with Progress("x", 3, stream=terminal, clock=ticking()) as reporter:
        reporter.update(3)
    reporter.close()
    assert terminal.getvalue().count("\n") == 1
