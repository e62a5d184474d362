"""Exporters that report to their flush target's health, for the pipelines ``configure()`` builds.

Each wrapped exporter tells its target's :class:`~batchlens._telemetry._health.TargetHealth` how every export went:
one that succeeds makes the target good, one that fails or raises makes it bad. While a wrapped export runs, a
logging filter on the exporters' loggers sees the exporter's own messages: a retry line ("Transient error ...
retrying") marks the target bad at once, and while the target is bad each kind of message prints once, not at
every invocation. After a SnapStart restore the exporters' pooled connections (made before the snapshot) are closed,
so the next export opens new ones.

Imports the OpenTelemetry SDK: imported by ``configure()`` only.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from batchlens._telemetry import _health, _restore

__all__ = ["Watch", "exporter_lines", "exporter_loggers"]

_EXPORTER_LOGGERS = (
    # the OTLP exporters hand their module's logger to the HTTP client that retries
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    # urllib3 logs its own retries when a pool retries
    "urllib3.connectionpool",
)
_RETRY_LINE = "Transient error"

_current = threading.local()  # .health: the TargetHealth of the export this thread is running, if any


def _export_health() -> _health.TargetHealth | None:
    health: _health.TargetHealth | None = getattr(_current, "health", None)
    return health


class _ExporterLines(logging.Filter):
    """Sees exporter messages logged during a watched export: retry lines mark the target bad; repeats are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        health = _export_health()
        if health is None:
            return True  # not inside a watched export: not ours to judge
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        if template.startswith(_RETRY_LINE):
            health.failed(f"its exporter could not reach the collector: {_message(record)}")
        return health.let_through(template[:200])


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)


exporter_lines = _ExporterLines()
"""The filter ``configure()`` adds to the loggers of :func:`exporter_loggers`."""


def exporter_loggers(exporter: object) -> list[str]:
    """The loggers whose messages during an export of ``exporter`` are watched."""
    names = list(_EXPORTER_LOGGERS)
    module = type(exporter).__module__
    if module not in names:
        names.append(module)
    return names


def _watch_lines(exporter: object) -> None:
    for name in exporter_loggers(exporter):
        logger = logging.getLogger(name)
        if exporter_lines not in logger.filters:
            logger.addFilter(exporter_lines)


def _run(health: _health.TargetHealth, export: Any, *args: Any, **kwargs: Any) -> Any:
    outer = _export_health()
    _current.health = health
    try:
        result = export(*args, **kwargs)
    except Exception as exc:
        health.failed(f"its exporter raised {type(exc).__name__}")
        raise
    finally:
        _current.health = outer
    # only an explicit FAILURE counts: an exporter of the application's making may return None for success
    if result is SpanExportResult.FAILURE or result is MetricExportResult.FAILURE:
        health.failed("an export failed")
    else:
        health.succeeded()
    return result


def _renew_connections(exporter: object) -> None:
    """Close the pooled connections of an OTLP/HTTP exporter (its transport, or the session of older versions).

    Both transports open a new connection at the next request; the pool's sockets from before a SnapStart snapshot
    point at a connection the collector closed long ago.
    """
    transport = getattr(getattr(exporter, "_client", None), "_transport", None)
    session = getattr(exporter, "_session", None)
    for owner in (transport, session):
        close = getattr(owner, "close", None)
        if callable(close):
            close()


_exporters: weakref.WeakSet[Any] = weakref.WeakSet()  # every watched exporter still alive


@_restore.register_after_restore
def _renew_all_connections() -> None:
    for exporter in list(_exporters):
        _renew_connections(exporter)


class _WatchedSpanExporter(SpanExporter):
    """A span exporter reporting each export to its target's health."""

    def __init__(self, exporter: SpanExporter, health: _health.TargetHealth) -> None:
        self.exporter = exporter
        self._health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result: SpanExportResult = _run(self._health, self.exporter.export, spans)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))


class _WatchedMetricExporter(MetricExporter):
    """A metric exporter reporting each export to its target's health."""

    def __init__(self, exporter: MetricExporter, health: _health.TargetHealth) -> None:
        # the reader takes its temporality and aggregation preferences from the exporter it is given
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
        )
        self.exporter = exporter
        self._health = health

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        result: MetricExportResult = _run(
            self._health, self.exporter.export, metrics_data, timeout_millis=timeout_millis, **kwargs
        )
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


class Watch:
    """The health of one ``configure()`` call's two providers, and the wrapping of their exporters."""

    def __init__(self) -> None:
        self.spans = _health.TargetHealth("tracer_provider", monitored=True)
        self.metrics = _health.TargetHealth("meter_provider", monitored=True)
        self._watched: set[str] = set()

    def span_exporter(self, exporter: SpanExporter) -> SpanExporter:
        """``exporter``, wrapped to report to the tracer provider's health."""
        self._prepare(exporter, "spans")
        return _WatchedSpanExporter(exporter, self.spans)

    def metric_exporter(self, exporter: MetricExporter) -> MetricExporter:
        """``exporter``, wrapped to report to the meter provider's health."""
        self._prepare(exporter, "metrics")
        return _WatchedMetricExporter(exporter, self.metrics)

    def attach(self, tracer_provider: object, meter_provider: object) -> None:
        """Make the healths the wrapped exporters feed the health of the providers they export for."""
        if "spans" in self._watched:
            _health.attach(tracer_provider, self.spans)
        if "metrics" in self._watched:
            _health.attach(meter_provider, self.metrics)

    def _prepare(self, exporter: object, signal: str) -> None:
        self._watched.add(signal)
        _watch_lines(exporter)
        try:
            _exporters.add(exporter)
        except TypeError:  # an exporter that cannot be weakly referenced keeps its connections
            pass
