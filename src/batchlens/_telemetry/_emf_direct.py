"""batchlens' own metrics aggregated in plain Python, for a meter provider whose only exporter is EMF.

With ``configure()``'s Lambda defaults the metrics leave as EMF lines at each flush. The SDK's instruments (a
lock, a ``Measurement`` and an attribute copy per sample) and its collect cycle (data point objects per
attribute set, then the exporter's walk over them) cost about as much as the rest of a small batch's telemetry.
Here the same aggregation is done with dicts and lists: per instrument, per attribute set, a counter's sum or a
histogram's bucket counts, sum, min and max. At flush ``EmfMetricExporter`` writes them exactly as it writes the
SDK's data points (same bucket rule, same sums in the same order, same document order), so the EMF output is
identical (``tests/test_emf_direct.py`` compares the two paths).

:class:`DirectMeter` has the two ``Meter`` methods batchlens' metrics observer calls; the observer holds its
``lock`` while it records a batch, and :meth:`DirectMeter.drain` takes it to hand over and reset the aggregates.
No SDK import: the observer looks the meter up (:func:`direct_meter`) for every provider it meets.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["DirectMeter", "DrainedMetric", "HistogramPoint", "direct_meter", "register"]

# The SDK's default explicit bucket boundaries, for a histogram created without the advisory.
_DEFAULT_BOUNDS: tuple[float, ...] = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
_MAX_ALIASES = 1024  # attribute dicts remembered by identity, per instrument (each also found by content)

_METERS: weakref.WeakKeyDictionary[Any, DirectMeter] = weakref.WeakKeyDictionary()


def register(provider: Any, meter: DirectMeter) -> None:
    """Have batchlens' metrics observer record into ``meter`` whenever it meets ``provider``."""
    _METERS[provider] = meter


def direct_meter(provider: Any) -> DirectMeter | None:
    """The meter registered for ``provider``, if any."""
    try:
        return _METERS.get(provider)
    except TypeError:  # a provider that cannot be weakly referenced was never registered
        return None


class HistogramPoint:
    """One attribute set's histogram since the last drain (the fields of the SDK's ``HistogramDataPoint``)."""

    __slots__ = ("bucket_counts", "count", "explicit_bounds", "max", "min", "sum")

    def __init__(self, bounds: tuple[float, ...], counts: list[int], total: Any, low: Any, high: Any) -> None:
        self.explicit_bounds = bounds
        self.bucket_counts = tuple(counts)
        self.count = sum(counts)
        self.sum = total
        self.min = low
        self.max = high


class DrainedMetric(NamedTuple):
    """One instrument's values since the last drain, by attribute set, in first-recorded order."""

    name: str
    unit: str
    histogram: bool
    points: Sequence[tuple[Mapping[str, Any], Any]]  # (attributes, int sum or HistogramPoint)


class _Point:
    __slots__ = ("attributes", "counts", "max", "min", "sum", "value")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self.attributes = dict(attributes)
        self.value: Any = None  # a counter's sum since the last drain
        self.counts: list[int] | None = None  # a histogram's bucket counts since the last drain
        self.sum: Any = 0
        self.min = math.inf
        self.max = -math.inf


class _Instrument:
    __slots__ = ("_aliases", "_meter", "_points", "name", "unit")

    def __init__(self, meter: DirectMeter, name: str, unit: str) -> None:
        self._meter = meter
        self.name = name
        self.unit = unit
        self._points: dict[frozenset[tuple[str, Any]], _Point] = {}
        # id(attributes) -> (the dict, its point): the observer passes the same cached dicts batch after batch
        self._aliases: dict[int, tuple[Mapping[str, Any], _Point]] = {}

    def _point(self, attributes: Mapping[str, Any] | None) -> _Point:
        alias = self._aliases.get(id(attributes))
        if alias is not None and alias[0] is attributes:
            return alias[1]
        attributes = attributes or {}
        key = frozenset(attributes.items())
        point = self._points.get(key)
        if point is None:
            if not self._points:
                self._meter._first_recorded(self)
            point = self._points[key] = _Point(attributes)
        if len(self._aliases) < _MAX_ALIASES:
            self._aliases[id(attributes)] = (attributes, point)  # holds the dict: its id stays its own
        return point


class _Counter(_Instrument):
    __slots__ = ()

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None:
        if amount < 0:
            return  # the SDK drops negative counter increments too
        point = self._point(attributes)
        point.value = amount if point.value is None else point.value + amount

    def drain(self) -> DrainedMetric:
        points: list[tuple[Mapping[str, Any], Any]] = []
        for point in self._points.values():
            if point.value is not None:
                points.append((point.attributes, point.value))
                point.value = None
        return DrainedMetric(self.name, self.unit, False, points)


class _Histogram(_Instrument):
    __slots__ = ("_bounds",)

    def __init__(self, meter: DirectMeter, name: str, unit: str, bounds: Sequence[float]) -> None:
        super().__init__(meter, name, unit)
        self._bounds = tuple(bounds)

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None:
        if amount < 0:
            return  # the SDK drops negative histogram samples too
        point = self._point(attributes)
        counts = point.counts
        if counts is None:
            counts = point.counts = [0] * (len(self._bounds) + 1)
        point.sum += amount
        point.min = min(point.min, amount)
        point.max = max(point.max, amount)
        counts[bisect_left(self._bounds, amount)] += 1

    def drain(self) -> DrainedMetric:
        points: list[tuple[Mapping[str, Any], Any]] = []
        bounds = self._bounds
        for point in self._points.values():
            counts = point.counts
            if counts is not None:
                points.append(
                    (
                        point.attributes,
                        HistogramPoint(bounds, counts, point.sum, point.min, point.max),
                    )
                )
                point.counts, point.sum, point.min, point.max = None, 0, math.inf, -math.inf
        return DrainedMetric(self.name, self.unit, True, points)


class DirectMeter:
    """A meter whose counters and histograms aggregate in plain Python until :meth:`drain`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._instruments: dict[str, _Counter | _Histogram] = {}
        self._recorded: list[Any] = []  # in order of their first sample, like the SDK's storage

    def create_counter(self, name: str, unit: str = "", description: str = "") -> _Counter:
        existing = self._instruments.get(name)
        if isinstance(existing, _Counter):
            return existing
        counter = _Counter(self, name, unit)
        self._instruments[name] = counter
        return counter

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> _Histogram:
        existing = self._instruments.get(name)
        if isinstance(existing, _Histogram):
            return existing
        bounds = _DEFAULT_BOUNDS if explicit_bucket_boundaries_advisory is None else explicit_bucket_boundaries_advisory
        histogram = _Histogram(self, name, unit, bounds)
        self._instruments[name] = histogram
        return histogram

    def _first_recorded(self, instrument: _Instrument) -> None:
        self._recorded.append(instrument)

    def drain(self) -> tuple[int, list[DrainedMetric]]:
        """(now in ns since the epoch, what was recorded since the last drain); the aggregates start again."""
        with self.lock:
            now = time.time_ns()
            drained = [instrument.drain() for instrument in self._recorded]
        return now, [metric for metric in drained if metric.points]
