"""Analyst feedback on alerts: what a false-positive or confirmed mark changes, no Kafka in sight.

``tradewatch alerts mark ALERT_ID --false-positive|--confirmed`` writes a
:class:`FeedbackRecord` to the feedback topic (:mod:`streams.feedback_topic`);
every worker folds the records into one :class:`FeedbackTable`, and so do the
offline replay and the scorecard (a JSON-lines file of the same records). The
table answers the two questions the pipeline asks:

* **suppress?** A false positive silences that detector on that series for the
  windows after the marked one, up to ``until`` (the marked window's end plus
  ``--for``, 30 days by default): :meth:`FeedbackTable.suppresses`, asked by the
  alert policy, which counts what it drops in
  ``tradewatch_alerts_suppressed_total{reason="feedback"}``. Other detectors on
  the series, and the detector on other series, alert as before.
* **learn?** A confirmed anomaly is kept out of what the series' detectors learn
  (river's advice: do not learn from anomalies): the value of that series in the
  marked window is scored but not learned, if that window is still open when the
  mark arrives or is processed again later (a replay, a restart from older state):
  :meth:`FeedbackTable.unlearned`. A window already learned stays learned; the
  detectors cannot forget one value (see the README).

All times are event time (epoch seconds), as the windows are: a mark replayed
over last year's file suppresses the same alerts it suppressed live.

>>> day = 86400.0
>>> fp = FeedbackRecord(alert_id="a1", series_key="hs6:DE>KG:854231", detector="spike",
...                     window_start=10 * day, window_end=11 * day, verdict="false_positive",
...                     until=41 * day, marked_by="ana", marked_at=0.0)
>>> table = FeedbackTable([fp])
>>> [table.suppresses("spike", "hs6:DE>KG:854231", d * day) for d in (10, 11, 40, 41)]
[False, True, True, False]
>>> table.suppresses("volume", "hs6:DE>KG:854231", 11 * day)
False
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import msgspec

from detectors.calendar import parse_duration

__all__ = ["FeedbackRecord", "FeedbackTable", "Verdict", "VERDICTS", "DEFAULT_SUPPRESS_FOR",
           "make_record", "read_feedback_file", "decode_feedback", "encode_feedback", "who"]

Verdict = Literal["false_positive", "confirmed"]
VERDICTS: tuple[str, ...] = ("false_positive", "confirmed")
#: How long a false positive silences its detector and series when ``--for`` is not given.
DEFAULT_SUPPRESS_FOR = "30d"


class FeedbackRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One analyst verdict on one alert (JSON on the feedback topic, keyed by ``alert_id``).

    ``window_start``/``window_end`` are the marked alert's window (epoch seconds,
    event time); ``until`` ends a false positive's suppression (None: it never
    ends). ``marked_by`` and ``marked_at`` (wall clock) say who and when.
    """

    format: Literal["tradewatch.feedback"] = "tradewatch.feedback"
    format_version: Literal[1] = 1
    alert_id: str
    series_key: str
    detector: str
    window_start: float
    window_end: float
    verdict: Verdict
    note: str = ""
    until: float | None = None
    marked_by: str = ""
    marked_at: float = 0.0


_decoder = msgspec.json.Decoder(FeedbackRecord)


def decode_feedback(raw: bytes) -> FeedbackRecord:
    """One record; raises ``msgspec.DecodeError``/``ValidationError`` on anything else."""
    return _decoder.decode(raw)


def encode_feedback(record: FeedbackRecord) -> bytes:
    return msgspec.json.encode(record)


def who() -> str:
    """Who marks: ``TRADEWATCH_USER``, else the login name."""
    try:
        return os.environ.get("TRADEWATCH_USER") or getpass.getuser()
    except OSError:  # no login name (a container without a passwd entry)
        return "unknown"


def make_record(*, alert_id: str, series_key: str, detector: str, window_start: float,
                window_end: float, verdict: Verdict, note: str = "",
                suppress_for: str | float | None = DEFAULT_SUPPRESS_FOR,
                marked_by: str | None = None, marked_at: float | None = None) -> FeedbackRecord:
    """A record with ``until`` = the window's end + ``suppress_for`` (false positives only).

    ``suppress_for`` is a duration (``"30d"``, ``"12h"``, seconds) or None for no end.

    >>> r = make_record(alert_id="a", series_key="s", detector="spike", window_start=0.0,
    ...                 window_end=86400.0, verdict="false_positive", suppress_for="7d",
    ...                 marked_by="ana", marked_at=1.0)
    >>> r.until / 86400
    8.0
    >>> make_record(alert_id="a", series_key="s", detector="spike", window_start=0.0,
    ...             window_end=86400.0, verdict="confirmed", marked_by="ana").until is None
    True
    """
    until = None
    if verdict == "false_positive" and suppress_for is not None:
        until = window_end + parse_duration(suppress_for)
    return FeedbackRecord(
        alert_id=alert_id, series_key=series_key, detector=detector, window_start=window_start,
        window_end=window_end, verdict=verdict, note=note, until=until,
        marked_by=who() if marked_by is None else marked_by,
        marked_at=time.time() if marked_at is None else marked_at)


class FeedbackTable:
    """Every alert's newest verdict, and the suppressions and unlearned windows they imply.

    One table per worker (shared by its partitions: marks are not partition state),
    rebuilt from the feedback topic at start. Keyed by alert id as the topic is
    compacted: a new mark of an alert replaces the old one, :meth:`remove` (a
    tombstone) takes it back.
    """

    def __init__(self, records: Iterable[FeedbackRecord] = ()) -> None:
        self._by_alert: dict[str, FeedbackRecord] = {}
        #: (detector, series key) -> false positives on it
        self._false: dict[tuple[str, str], list[FeedbackRecord]] = {}
        #: window start -> series keys with a confirmed anomaly in that window
        self._confirmed: dict[float, set[str]] = {}
        for record in records:
            self.add(record)

    def __len__(self) -> int:
        return len(self._by_alert)

    def __iter__(self) -> Iterator[FeedbackRecord]:
        return iter(self._by_alert.values())

    def add(self, record: FeedbackRecord) -> None:
        """Fold in one mark (replacing an earlier mark of the same alert)."""
        self.remove(record.alert_id)
        self._by_alert[record.alert_id] = record
        if record.verdict == "false_positive":
            self._false.setdefault((record.detector, record.series_key), []).append(record)
        else:
            self._confirmed.setdefault(record.window_start, set()).add(record.series_key)

    def remove(self, alert_id: str) -> None:
        """Forget the mark of ``alert_id``, if any."""
        old = self._by_alert.pop(alert_id, None)
        if old is None:
            return
        if old.verdict == "false_positive":
            key = (old.detector, old.series_key)
            self._false[key] = [r for r in self._false[key] if r.alert_id != alert_id]
            if not self._false[key]:
                del self._false[key]
        else:
            # another confirmed mark may name the same series and window
            still = {r.series_key for r in self._by_alert.values()
                     if r.verdict == "confirmed" and r.window_start == old.window_start}
            if still:
                self._confirmed[old.window_start] = still
            else:
                self._confirmed.pop(old.window_start, None)

    def suppresses(self, detector: str, series_key: str, window_start: float) -> bool:
        """Whether a false positive silences ``detector`` on ``series_key`` in that window.

        A mark covers the windows that start after the marked one and before
        ``until``: the marked alert itself was published before anyone saw it.
        """
        for r in self._false.get((detector, series_key), ()):
            if r.window_start < window_start and (r.until is None or window_start < r.until):
                return True
        return False

    def unlearned(self, window_start: float) -> frozenset[str]:
        """The series whose value in the window starting at ``window_start`` is not learned."""
        keys = self._confirmed.get(window_start)
        return frozenset(keys) if keys else frozenset()

    def active(self, at: float) -> list[FeedbackRecord]:
        """Marks still in force at event time ``at``: confirmed ones, and unexpired false positives."""
        return [r for r in self._by_alert.values()
                if r.verdict == "confirmed" or r.until is None or at < r.until]


def read_feedback_file(path: str | Path) -> FeedbackTable:
    """A table from a JSON-lines file of :class:`FeedbackRecord` (blank lines skipped).

    Raises ``ValueError`` naming the line of a record that does not decode.
    """
    records = []
    for number, line in enumerate(Path(path).read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(decode_feedback(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            raise ValueError(f"{path}:{number}: not a feedback record: {err}") from None
    return FeedbackTable(records)
