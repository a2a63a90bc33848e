"""What analyst feedback does to a scorecard: precision and recall before and after the marks.

``tradewatch evaluate --feedback FILE`` replays a JSON-lines file of
:class:`~streams.feedback.FeedbackRecord` (the records ``tradewatch alerts mark``
writes) with the stream, as a worker following the feedback topic would, and
compares the scorecard with the one without it. ``--write-feedback FILE``
first writes such a file: an analyst who works the alert queue of the first part
of the scored period (``--mark-until``, a fraction of it) and marks every false
alert a false positive and every true one confirmed.

The marks are made on the alerts of that first part, so their effect is measured
where it is out of sample: on the windows that start after the last marked one
(:func:`effect`, ``after_marks``). The whole-stream figures are reported beside,
and include the marked part itself.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from streams.feedback import FeedbackRecord, make_record

__all__ = ["simulated_marks", "effect", "format_effect", "Effect"]

#: Scorecard labels an analyst marks false positive / confirmed.
_FALSE = ("fp", "trap_fp")
_TRUE = ("tp",)


def simulated_marks(alerts: Sequence[Any], labels: Sequence[str], until_ts: float,
                    suppress_for: str = "30d") -> list[FeedbackRecord]:
    """The marks of an analyst who worked every scored alert of windows before ``until_ts``.

    ``alerts``/``labels`` are a scorecard's (:func:`evaluation.scorecard.classify_alerts`):
    false alerts become false positives, true ones confirmed; tolerated trap alerts and
    probation alerts are left alone.
    """
    marks = []
    for alert, label in zip(alerts, labels, strict=True):
        start = alert.window_start.timestamp()
        if start >= until_ts or label not in _FALSE + _TRUE:
            continue
        marks.append(make_record(
            alert_id=alert.alert_id, series_key=alert.series.key, detector=alert.detector,
            window_start=start, window_end=alert.window_end.timestamp(),
            verdict="false_positive" if label in _FALSE else "confirmed",
            note=f"scorecard: {label}", suppress_for=suppress_for,
            marked_by="scorecard", marked_at=alert.window_end.timestamp()))
    return marks


@dataclasses.dataclass(frozen=True)
class Effect:
    """Alert counts and precision of one run over one span of windows."""

    counts: dict[str, int]

    @property
    def precision(self) -> float | None:
        tp, false = self.counts.get("tp", 0), sum(self.counts.get(k, 0) for k in _FALSE)
        return tp / (tp + false) if tp + false else None


def _span(alerts: Sequence[Any], labels: Sequence[str], from_ts: float) -> Effect:
    return Effect(dict(Counter(lab for a, lab in zip(alerts, labels, strict=True)
                               if a.window_start.timestamp() > from_ts)))


def effect(before: Any, after: Any, marks: Sequence[FeedbackRecord]) -> dict[str, Any]:
    """Precision before and after, over the whole stream and after the last marked window.

    ``before``/``after`` are :class:`~evaluation.scorecard.Scorecard` of the same
    stream without and with ``marks``.
    """
    last = max((m.window_start for m in marks), default=float("-inf"))
    out: dict[str, Any] = {"marks": dict(Counter(m.verdict for m in marks)), "last_marked_window": last}
    for name, card in (("before", before), ("after", after)):
        span = _span(card.alerts, card.labels, last)
        out[name] = {"precision": card.precision, "recall": card.recall,
                     "false_alerts_per_100k_benign": card.false_alerts_per_100k_benign,
                     "counts": card.counts,
                     "after_marks": {"precision": span.precision, "counts": span.counts}}
    return out


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def format_effect(result: dict[str, Any]) -> str:
    """The before/after lines ``tradewatch evaluate --feedback`` prints."""
    import datetime as dt

    b, a = result["before"], result["after"]
    last = result["last_marked_window"]
    when = (dt.datetime.fromtimestamp(last, tz=dt.UTC).date().isoformat()
            if last != float("-inf") else "-")
    marks = ", ".join(f"{n} {v}" for v, n in sorted(result["marks"].items())) or "none"
    ba, aa = b["after_marks"], a["after_marks"]
    false_b = sum(ba["counts"].get(k, 0) for k in _FALSE)
    false_a = sum(aa["counts"].get(k, 0) for k in _FALSE)
    return "\n".join([
        f"feedback: {marks} (last marked window {when})",
        f"  whole stream (includes the marked part)  precision {_f(b['precision'])} -> "
        f"{_f(a['precision'])}  recall {_f(b['recall'])} -> {_f(a['recall'])}  alerts "
        f"{b['counts']['total']} -> {a['counts']['total']}",
        f"  windows after the last mark (out of sample)  precision {_f(ba['precision'])} -> "
        f"{_f(aa['precision'])}  true {ba['counts'].get('tp', 0)} -> {aa['counts'].get('tp', 0)}"
        f"  false {false_b} -> {false_a}",
    ])
