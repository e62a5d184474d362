"""The reader behind ``configure(metrics="emf")``: it exports only when flushed, and can take batchlens' own
metrics from a plain-Python :class:`~batchlens._telemetry._emf_direct.DirectMeter` instead of the SDK's instruments.

The exporter, which writes the EMF documents, is :mod:`batchlens._telemetry.emf`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)

from batchlens._telemetry._emf_direct import DirectMeter, DrainedMetric, register
from batchlens._telemetry.emf import EmfMetricExporter

__all__ = ["FlushMetricReader", "aggregate_in_python"]

_logger = logging.getLogger("batchlens.telemetry")


class FlushMetricReader(PeriodicExportingMetricReader):
    """A reader that exports only when flushed or shut down: no thread, so a frozen Lambda sandbox holds none.

    ``PeriodicExportingMetricReader`` with an infinite interval starts no thread, but its last export on shutdown
    is done by that thread; here shutdown collects and exports first, so nothing recorded after the last flush
    is lost when the process ends.

    With ``direct`` set (see :func:`aggregate_in_python`), each collection also drains that meter: batchlens'
    own metrics, aggregated in plain Python, are written with the SDK's (the application's own instruments).
    """

    def __init__(self, exporter: MetricExporter) -> None:
        super().__init__(exporter, export_interval_millis=math.inf)
        self.direct: DirectMeter | None = None
        self._collecting = threading.Lock()
        self._drained: tuple[int, list[DrainedMetric]] | None = None

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Collect and export now (with ``direct``, its metrics too)."""
        self._collect_all(timeout_millis)
        self._exporter.force_flush(timeout_millis=timeout_millis)
        return True

    def _collect_all(self, timeout_millis: float) -> None:
        direct = self.direct
        if direct is None:
            self.collect(timeout_millis=timeout_millis)
            return
        with self._collecting:
            self._drained = direct.drain()
            try:
                self.collect(timeout_millis=timeout_millis)  # exports through _receive_metrics when the SDK has data
            finally:
                drained, self._drained = self._drained, None
            if drained is not None and drained[1]:
                self._export(None, drained, timeout_millis)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if self.direct is None:
            super()._receive_metrics(metrics_data, timeout_millis, **kwargs)
            return
        drained, self._drained = self._drained, None
        self._export(metrics_data, drained, timeout_millis)

    def _export(
        self, metrics_data: MetricsData | None, drained: tuple[int, list[DrainedMetric]] | None, timeout_millis: float
    ) -> None:
        try:
            with self._export_lock:
                data: Any = metrics_data  # EmfMetricExporter takes None: only the drained metrics
                self._exporter.export(data, timeout_millis=timeout_millis, direct=drained)
        except Exception:
            _logger.exception("batchlens.telemetry: exporting EMF metrics failed")

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Export what was recorded since the last flush, then shut the exporter down."""
        if not self._shutdown:
            try:
                self._collect_all(timeout_millis)
            except Exception:
                _logger.exception("batchlens.telemetry: the last EMF export failed")
        super().shutdown(timeout_millis, **kwargs)


def aggregate_in_python(meter_provider: Any, readers: Sequence[MetricReader]) -> bool:
    """When EMF is the provider's only exporter, have batchlens' metrics skip the SDK's instruments.

    batchlens' metrics observer then records into a :class:`DirectMeter` (plain-Python aggregation) that the
    reader drains at each flush; the EMF output is the same. Other instruments on the provider (the
    application's) still go through the SDK and are written alongside. Returns whether it applied.
    """
    if len(readers) != 1:
        return False
    (reader,) = readers
    if type(reader) is not FlushMetricReader or type(getattr(reader, "_exporter", None)) is not EmfMetricExporter:
        return False
    if reader.direct is None:
        reader.direct = DirectMeter()
    register(meter_provider, reader.direct)
    return True
