"""Shared fixtures: in-memory OpenTelemetry SDK providers, a Telemetry that injects them, and global resets.

Every test starts with structlog at its defaults and without ``BATCHLENS_*`` / ``AWS_LAMBDA_*`` variables (and
the Lambda runtime markers), and ends with every flush target healthy, so results never depend on the shell or on
test order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from batchlens import Telemetry
from batchlens._telemetry import _health

_ENV_PREFIXES = ("BATCHLENS_", "AWS_LAMBDA_")
_ENV_NAMES = ("LAMBDA_TASK_ROOT", "_X_AMZN_TRACE_ID", "SENTRY_DSN", "OTEL_SPAN_LINK_COUNT_LIMIT")


@pytest.fixture(autouse=True)
def _clean_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reset structlog and remove batchlens/Lambda environment variables around every test."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
    structlog.reset_defaults()
    _health.reset_all()
    yield
    structlog.reset_defaults()
    # a flush target a test left failing (Sentry's is the sentry_sdk module, shared by every test) would make the
    # next test's flush wait 40 ms for it instead of its whole budget
    _health.reset_all()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """An exporter that keeps finished spans in memory (``get_finished_spans()``)."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """An SDK tracer provider exporting synchronously to ``span_exporter``; not installed globally."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """A metric reader whose ``get_metrics_data()`` collects on demand."""
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    """An SDK meter provider read by ``metric_reader``; not installed globally."""
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def telemetry(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Telemetry:
    """A ``Telemetry`` with tracing, metrics and logging on, injecting the in-memory providers (Sentry off)."""
    return Telemetry(
        tracing=True,
        metrics=True,
        logging=True,
        sentry=False,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
