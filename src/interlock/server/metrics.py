"""The per-request metrics (HTTP requests, their latency, decisions), exposed exactly as prometheus_client's
labelled Counter and Histogram expose them, without their cost per observation.

prometheus_client takes a lock (and checks and converts its arguments) at every `inc` and `observe`: ~4.5 µs
per proposal for its three observations, a sixth of what the HTTP side cost after its fifth pass
(docs/benchmarks.md). Every observation here is made on the server's event loop (the ASGI middleware and
routes are coroutines; /metrics is one too), so a plain dict of floats needs no lock. The families, samples,
their order, names, labels and values are prometheus_client's (tests/test_server_metrics.py compares the
text of both for the same observations); `_created` follows prometheus_client's switch
(PROMETHEUS_DISABLE_CREATED_SERIES).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import INF, floatToGoString


class Counts(Collector):
    """A labelled counter: `inc(*labels)`."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        #: labels → [value, created]; in the order each label set was first counted (prometheus_client's).
        self.values: dict[tuple[str, ...], list[float]] = {}

    def inc(self, *labels: str) -> None:
        cell = self.values.get(labels)
        if cell is None:
            cell = self.values[tuple(str(label) for label in labels)] = [0.0, time.time()]
        cell[0] += 1.0

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "counter")
        created = prometheus_metrics._use_created
        for labels, (value, made) in list(self.values.items()):
            series = list(zip(self.labelnames, labels, strict=True))
            metric.samples.append(Sample(self.name + "_total", dict(series), value, None, None))
            if created:
                metric.samples.append(Sample(self.name + "_created", dict(series), made, None, None))
        yield metric


class Latencies(Collector):
    """A labelled histogram: `observe(seconds, *labels)`."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        self.bounds = bounds if bounds[-1] == INF else [*bounds, INF]
        self._bounds = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        #: labels → ([count per bucket], [sum, created])
        self.values: dict[tuple[str, ...], tuple[list[float], list[float]]] = {}

    def observe(self, amount: float, *labels: str) -> None:
        cell = self.values.get(labels)
        if cell is None:
            cell = self.values[tuple(str(label) for label in labels)] = ([0.0] * len(self.bounds), [0.0, time.time()])
        cell[0][bisect_left(self.bounds, amount)] += 1.0  # the first bucket whose bound is >= amount
        cell[1][0] += amount

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "histogram")
        created = prometheus_metrics._use_created
        for labels, (counts, (total, made)) in list(self.values.items()):
            series = list(zip(self.labelnames, labels, strict=True))
            acc = 0.0
            for count, bound in zip(counts, self._bounds, strict=True):
                acc += count
                metric.samples.append(Sample(self.name + "_bucket", dict([*series, ("le", bound)]), acc, None, None))
            metric.samples.append(Sample(self.name + "_count", dict(series), acc, None, None))
            if self.bounds[0] >= 0:
                metric.samples.append(Sample(self.name + "_sum", dict(series), total, None, None))
            if created:
                metric.samples.append(Sample(self.name + "_created", dict(series), made, None, None))
        yield metric
