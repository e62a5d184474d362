"""CloudWatch Embedded Metric Format (EMF): an OpenTelemetry ``MetricExporter`` that writes JSON lines to stdout.

In Lambda, every line a function writes to stdout becomes a CloudWatch Logs event, and CloudWatch extracts the
metrics of the events that are EMF documents: no collector, no agent, no API call. The format is the one of
"Specification: Embedded metric format" (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html)::

    {"_aws": {"Timestamp": 1764637200000, "CloudWatchMetrics": [{"Namespace": "batchlens",
      "Dimensions": [["messaging.system", "messaging.destination.name", "error.type"],
                     ["messaging.system", "messaging.destination.name"]],
      "Metrics": [{"Name": "batchlens.records.failed", "Unit": "Count"}]}]},
     "messaging.system": "aws_sqs", "messaging.destination.name": "orders", "error.type": "ValueError",
     "batchlens.records.failed": 3}

- One document per set of dimension values; data points whose dimension values agree are merged (sums added,
  histograms combined), which is what CloudWatch would do with them anyway.
- Dimensions are the data point's attributes among ``dimensions`` (by default ``messaging.system``,
  ``messaging.destination.name``, ``error.type``, ``batchlens.batch.outcome``), in that order. Every other
  attribute (message ids, partitions, operation names) is left out, so no high-cardinality value ever becomes a
  CloudWatch metric. When the set holds ``error.type`` or ``batchlens.batch.outcome``, a second, rolled-up set
  (``messaging.system`` and ``messaging.destination.name``) is declared too, so a dashboard can graph the totals
  without a metric-math sum over every error type.
- Counters and histograms are exported with delta temporality: each document holds what happened since the last
  flush, which is what an EMF value means. Up-down counters and gauges are levels and export their value.
- Histograms become the value object CloudWatch reads as a distribution: ``Values`` (one representative value per
  non-empty bucket: the middle of the bucket, clamped to the observed min and max) with their ``Counts``, plus
  the exact ``Count``, ``Sum``, ``Min`` and ``Max``. This is the shape the AWS exporters send: the collector's
  ``awsemf`` exporter for exponential histograms (opentelemetry-collector-contrib, exporter/awsemfexporter,
  ``datapoint.go``) and the EMF exporter of aws-opentelemetry-distro
  (``aws_opentelemetry_distro/exporter/aws/metrics/base_emf_exporter.py``). CloudWatch computes averages,
  sums, sample counts, min and max exactly from it, and percentiles from the value distribution.
- Limits of the specification are respected by splitting: at most 100 metrics per directive, at most 100
  values per array (a histogram with more non-empty buckets is spread over several documents whose counts and
  sums add up to the exact totals), at most 30 dimensions per set, and documents below ``max_event_bytes``
  (256 KiB by default: CloudWatch Logs events were limited to 256 KB until 2025 and 1 MB since).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import (
    Histogram as HistogramData,
)

from batchlens._telemetry._emf_direct import DrainedMetric, HistogramPoint

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEFAULT_NAMESPACE",
    "MAX_DIMENSIONS",
    "MAX_EVENT_BYTES",
    "MAX_METRICS_PER_DIRECTIVE",
    "MAX_VALUES_PER_ARRAY",
    "NAMESPACE_VARIABLE",
    "EmfMetricExporter",
    "cloudwatch_unit",
]

DEFAULT_NAMESPACE = "batchlens"
NAMESPACE_VARIABLE = "BATCHLENS_EMF_NAMESPACE"
DEFAULT_DIMENSIONS: tuple[str, ...] = (
    "messaging.system",
    "messaging.destination.name",
    "error.type",
    "batchlens.batch.outcome",
)
"""Attributes that become CloudWatch dimensions, in this order; all are bounded (never ids)."""

_ROLLED_UP = ("error.type", "batchlens.batch.outcome")
_ROLLUP_KEYS = ("messaging.system", "messaging.destination.name")

MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_ARRAY = 100
MAX_DIMENSIONS = 30
MAX_EVENT_BYTES = 256 * 1024
MAX_DIMENSION_VALUE_CHARS = 1024
_MAX_KNOWN_DIMENSIONS = 1024

_UNITS = {
    "s": "Seconds",
    "ms": "Milliseconds",
    "us": "Microseconds",
    "By": "Bytes",
    "KiBy": "Kilobytes",
    "MiBy": "Megabytes",
    "GiBy": "Gigabytes",
    "bit": "Bits",
    "By/s": "Bytes/Second",
    "%": "Percent",
    "1": "None",
    "": "None",
}

_logger = logging.getLogger("batchlens.telemetry")


def cloudwatch_unit(unit: str | None) -> str:
    """The CloudWatch unit of an OpenTelemetry (UCUM) unit: ``s`` is Seconds, an annotation like ``{record}`` Count."""
    if not unit:
        return "None"
    mapped = _UNITS.get(unit)
    if mapped is not None:
        return mapped
    if unit.startswith("{") and unit.endswith("}"):
        return "Count"
    return "None"


class _Distribution:
    """A histogram data point, merged with others of the same dimension values."""

    __slots__ = ("bounds", "count", "counts", "max", "min", "sum")

    def __init__(self, point: HistogramDataPoint | HistogramPoint) -> None:
        self.bounds: tuple[float, ...] = tuple(point.explicit_bounds)
        self.counts: list[int] = list(point.bucket_counts)
        self.count = int(point.count)
        self.sum = float(point.sum)
        self.min = float(point.min) if point.count else math.inf
        self.max = float(point.max) if point.count else -math.inf

    def merge(self, point: HistogramDataPoint | HistogramPoint) -> None:
        if tuple(point.explicit_bounds) == self.bounds and len(point.bucket_counts) == len(self.counts):
            self.counts = [a + b for a, b in zip(self.counts, point.bucket_counts, strict=True)]
        else:  # different boundaries cannot be added bucket by bucket: keep the statistics, drop the shape
            self.bounds, self.counts = (), [self.count + int(point.count)]
        self.count += int(point.count)
        self.sum += float(point.sum)
        if point.count:
            self.min = min(self.min, float(point.min))
            self.max = max(self.max, float(point.max))

    def parts(self) -> list[dict[str, Any]]:
        """EMF value objects whose Count, Sum, Min and Max add up to this distribution's."""
        lo, hi = self.min, self.max
        values: list[float] = []
        counts: list[int] = []
        bounds = self.bounds
        for index, count in enumerate(self.counts):
            if not count:
                continue
            lower = bounds[index - 1] if 0 < index <= len(bounds) else lo
            upper = bounds[index] if index < len(bounds) else hi
            lower, upper = max(lower, lo), min(upper, hi)
            values.append((lower + upper) / 2 if lower <= upper else lo)
            counts.append(count)
        if not values:
            return []
        if len(values) <= MAX_VALUES_PER_ARRAY:
            return [_value_object(values, counts, self.count, self.sum, lo, hi)]
        weighted = sum(v * c for v, c in zip(values, counts, strict=True))
        parts = []
        for start in range(0, len(values), MAX_VALUES_PER_ARRAY):
            part_values = values[start : start + MAX_VALUES_PER_ARRAY]
            part_counts = counts[start : start + MAX_VALUES_PER_ARRAY]
            share = sum(v * c for v, c in zip(part_values, part_counts, strict=True))
            part_sum = self.sum * share / weighted if weighted else self.sum * sum(part_counts) / self.count
            part_min = lo if start == 0 else part_values[0]
            part_max = hi if start + MAX_VALUES_PER_ARRAY >= len(values) else part_values[-1]
            parts.append(_value_object(part_values, part_counts, sum(part_counts), part_sum, part_min, part_max))
        return parts


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # built once, not per document


def _dimensions(attributes: Any, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(key, value) of the dimension attributes present; CloudWatch values are 1-1024 characters."""
    found = []
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            text = str(value)[:MAX_DIMENSION_VALUE_CHARS]
            if text:
                found.append((key, text))
    return tuple(found)


def _add(
    groups: dict[tuple[tuple[str, str], ...], tuple[list[int], dict[str, list[Any]]]],
    dims: tuple[tuple[str, str], ...],
    name: str,
    unit: str,
    time_unix_nano: int,
    value: Any,
    histogram: bool,
    adds: bool,
) -> None:
    """Merge one data point into the document of its dimension values (a histogram point: count, sum, ...)."""
    stamp, members = groups.setdefault(dims, ([0], {}))
    stamp[0] = max(stamp[0], time_unix_nano // 1_000_000)
    entry = members.get(name)
    if histogram:
        if not value.count:
            return
        if entry is None:
            members[name] = [unit, _Distribution(value)]
        else:
            entry[1].merge(value)
        return
    if not math.isfinite(value):
        return
    if entry is None:
        members[name] = [unit, value]
    elif adds:
        entry[1] += value
    else:
        entry[1] = value  # a level: the last one reported wins


def _value_object(
    values: list[float], counts: list[int], count: int, total: float, low: float, high: float
) -> dict[str, Any]:
    return {"Values": values, "Counts": counts, "Max": high, "Min": low, "Count": count, "Sum": total}


class EmfMetricExporter(MetricExporter):
    """Writes metrics as CloudWatch EMF documents, one JSON object per line (see the module docstring).

    Args:
        out: The stream written to; None means ``sys.stdout`` as it is at each export.
        namespace: The CloudWatch namespace; defaults to ``BATCHLENS_EMF_NAMESPACE``, then ``"batchlens"``.
        dimensions: Attributes that become dimensions, in order (at most 30).
        max_event_bytes: Largest document written; larger ones are split.
    """

    def __init__(
        self,
        out: IO[str] | None = None,
        namespace: str | None = None,
        *,
        dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        delta = AggregationTemporality.DELTA
        cumulative = AggregationTemporality.CUMULATIVE
        super().__init__(
            preferred_temporality={
                Counter: delta,
                Histogram: delta,
                ObservableCounter: delta,
                UpDownCounter: cumulative,
                ObservableUpDownCounter: cumulative,
                ObservableGauge: cumulative,
            }
        )
        if namespace is None:
            namespace = (os.environ.get(NAMESPACE_VARIABLE) or "").strip() or DEFAULT_NAMESPACE
        if not 1 <= len(namespace) <= 255 or namespace.startswith(":"):
            raise ValueError(f"EMF namespace {namespace!r} is not valid: 1-255 characters, not starting with ':'")
        if len(dimensions) > MAX_DIMENSIONS:
            raise ValueError(f"EMF allows at most {MAX_DIMENSIONS} dimensions, {len(dimensions)} were given")
        self.namespace = namespace
        self.dimensions: tuple[str, ...] = tuple(dimensions)
        self.max_event_bytes = max_event_bytes
        self._out = out
        self._known_dimensions: dict[int, tuple[Any, tuple[str, ...], tuple[tuple[str, str], ...]]] = {}

    # -- MetricExporter ------------------------------------------------------------------------------------
    def export(
        self, metrics_data: MetricsData | None, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Write one EMF line per document; never raises (a failure is logged and reported as FAILURE).

        ``direct=(time_ns, drained)`` (from ``DirectMeter.drain``) adds batchlens' plain-Python metrics.
        """
        direct_time_ns, direct = kwargs.get("direct") or (0, ())
        try:
            lines = list(self.documents(metrics_data, direct, direct_time_ns))
            if lines:
                out = self._out if self._out is not None else sys.stdout
                out.write("".join(line + "\n" for line in lines))
                out.flush()
        except Exception:
            _logger.exception("batchlens.telemetry: writing EMF metrics failed")
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is buffered: every export is written at once."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""

    # -- documents -------------------------------------------------------------------------------------------
    def documents(
        self, metrics_data: MetricsData | None, direct: Sequence[DrainedMetric] = (), direct_time_ns: int = 0
    ) -> Iterable[str]:
        """The EMF documents (serialised JSON, no newline) of ``metrics_data`` and of batchlens' ``direct`` metrics.

        ``direct`` is what a ``DirectMeter`` drained at ``direct_time_ns``: the same values the SDK's instruments
        would have aggregated, written the same way.
        """
        # dimension values -> (timestamp ms, {metric name: (unit, value or _Distribution)})
        groups: dict[tuple[tuple[str, str], ...], tuple[list[int], dict[str, list[Any]]]] = {}
        keys = self.dimensions
        if metrics_data is not None:
            for resource_metrics in metrics_data.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        data = metric.data
                        if not isinstance(data, (Sum, Gauge, HistogramData)):
                            continue  # exponential histograms are not produced by batchlens' instruments
                        unit = cloudwatch_unit(metric.unit)
                        adds = isinstance(data, Sum) and data.is_monotonic
                        for point in data.data_points:
                            histogram = isinstance(point, HistogramDataPoint)
                            value: Any = point if isinstance(point, HistogramDataPoint) else point.value
                            _add(
                                groups,
                                _dimensions(point.attributes or {}, keys),
                                metric.name,
                                unit,
                                point.time_unix_nano,
                                value,
                                histogram,
                                adds,
                            )
        known = self._known_dimensions
        for drained in direct:
            unit = cloudwatch_unit(drained.unit)
            for attributes, value in drained.points:
                # a DirectMeter hands over the same attribute dicts flush after flush
                hit = known.get(id(attributes))
                if hit is not None and hit[0] is attributes and hit[1] is keys:
                    dims = hit[2]
                else:
                    dims = _dimensions(attributes, keys)
                    if len(known) < _MAX_KNOWN_DIMENSIONS:
                        known[id(attributes)] = (attributes, keys, dims)  # holds the dict: its id stays its own
                _add(groups, dims, drained.name, unit, direct_time_ns, value, drained.histogram, True)
        for dims, (stamp, members) in groups.items():
            yield from self._group_documents(dims, stamp[0], members)

    def _group_documents(
        self, dims: tuple[tuple[str, str], ...], timestamp: int, members: dict[str, list[Any]]
    ) -> Iterable[str]:
        names = [k for k, _ in dims]
        dimension_sets = [names]
        if any(k in _ROLLED_UP for k in names):
            dimension_sets.append([k for k in _ROLLUP_KEYS if k in names])
        # metric name -> unit and the values it still has to write (several only for histograms over 100 values)
        pending: list[tuple[str, str, list[Any]]] = []
        for name, (unit, value) in members.items():
            parts = value.parts() if isinstance(value, _Distribution) else [value]
            if parts:
                pending.append((name, unit, parts))
        round_index = 0
        while pending:
            batch = [(name, unit, parts[round_index]) for name, unit, parts in pending]
            step = MAX_METRICS_PER_DIRECTIVE
            for start in range(0, len(batch), step):
                yield from self._sized(dims, dimension_sets, timestamp, batch[start : start + step])
            round_index += 1
            pending = [entry for entry in pending if len(entry[2]) > round_index]

    def _sized(
        self,
        dims: tuple[tuple[str, str], ...],
        dimension_sets: list[list[str]],
        timestamp: int,
        metrics: list[tuple[str, str, Any]],
    ) -> Iterable[str]:
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": dimension_sets,
                        "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
                    }
                ],
            }
        }
        document.update(dims)
        for name, _, value in metrics:
            document[name] = value
        line = _encode(document)
        # a character is at most 4 bytes in UTF-8: most documents need no encoding to know they fit
        size = len(line) if len(line) * 4 <= self.max_event_bytes else len(line.encode())
        if size <= self.max_event_bytes or len(metrics) == 1:
            if len(metrics) == 1 and size > self.max_event_bytes:
                _logger.warning("batchlens.telemetry: an EMF document of %d bytes exceeds the limit", len(line))
            yield line
            return
        half = len(metrics) // 2
        yield from self._sized(dims, dimension_sets, timestamp, metrics[:half])
        yield from self._sized(dims, dimension_sets, timestamp, metrics[half:])
