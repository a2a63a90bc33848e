"""The end-to-end benchmark's latency figure: a quantile of what was observed after the warm-up.

``bench.e2e`` samples the worker's latency histogram after a paced warm-up and
takes its quantiles over the buckets filled since, as Prometheus' ``increase``
then ``histogram_quantile`` would: the slow alerts of the worker's start must not
count, and an alert observed after it must.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.e2e import _buckets, _histogram_quantile

NAME = "tradewatch_event_to_alert_latency_seconds"


class _Worker:
    """Serves a registry's exposition text, as a running worker's /metrics does."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram(NAME, "latency", registry=self.registry,
                                   buckets=(0.1, 0.25, 1.0, 2.5, 10.0))

    def metrics_text(self) -> str:
        return generate_latest(self.registry).decode()


def test_the_start_does_not_count_what_follows_it_does() -> None:
    worker = _Worker()
    for _ in range(10):
        worker.histogram.observe(5.0)  # the start: seconds behind the producer
    since = _buckets(worker, NAME)  # type: ignore[arg-type]
    for _ in range(10):
        worker.histogram.observe(0.2)  # caught up

    assert _histogram_quantile(worker, NAME, 0.99, since) <= 0.25  # type: ignore[arg-type]
    assert _histogram_quantile(worker, NAME, 0.99) > 2.5  # type: ignore[arg-type]


def test_nothing_observed_since_gives_no_figure() -> None:
    worker = _Worker()
    worker.histogram.observe(5.0)
    since = _buckets(worker, NAME)  # type: ignore[arg-type]
    value = _histogram_quantile(worker, NAME, 0.5, since)  # type: ignore[arg-type]
    assert value != value  # NaN: no alert after the warm-up, no latency to report
