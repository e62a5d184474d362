"""The benchmark's contract floor (configuration M) must emit what batchlens emits, or its ratios mean nothing.

``tests/benchmarks/bench_overhead.py`` claims that M makes exactly the OpenTelemetry and structlog calls C's
telemetry contract requires, so that M/D and (M - A)/F bound what any contract-keeping implementation can reach.
These tests hold it to that: same response, same spans (names, kinds, parentage, attribute keys and messaging
values, status, events), same log entries (events and keys) and the same metric series and counts as batchlens
with full telemetry on the same batch.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

import batchlens
from batchlens.testing import sqs_event

BENCH = Path(__file__).parent / "benchmarks" / "bench_overhead.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_overhead", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_overhead"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_overhead", None)


class Emitted:
    """One run's telemetry, kept in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.logs: list[dict[str, Any]] = []
        self.response: Any = None

    def run(self, fn: Any, event: dict[str, Any]) -> Emitted:
        with capture_logs() as logs:
            self.response = fn(event)
        self.logs = logs
        return self

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, dict[frozenset[tuple[str, Any]], float]]:
        """Metric name -> attribute set -> counter sum or histogram count."""
        out: dict[str, dict[frozenset[tuple[str, Any]], float]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    series = out.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        key = frozenset((point.attributes or {}).items())
                        if isinstance(point, HistogramDataPoint):
                            series[key] = point.count
                        else:
                            assert isinstance(point, NumberDataPoint)
                            series[key] = point.value
        return out


@pytest.fixture
def event() -> dict[str, Any]:
    return sqs_event(count=40, fail_rate=0.25, seed=7)


@pytest.fixture
def pair(bench: ModuleType, event: dict[str, Any]) -> tuple[Emitted, Emitted]:
    """(C, M) run on the same batch, each into its own providers."""
    c = Emitted()
    telemetry = batchlens.Telemetry(tracer_provider=c.tracer_provider, meter_provider=c.meter_provider, flush="never")
    processor = batchlens.BatchProcessor(batchlens.EventType.SQS, telemetry=telemetry)
    c.run(lambda e: batchlens.process_partial_response(e, bench.handler, processor), event)
    m = Emitted()
    m.run(bench.contract_floor(m.tracer_provider, m.meter_provider), event)
    return c, m


def test_same_response(pair: tuple[Emitted, Emitted], event: dict[str, Any]) -> None:
    c, m = pair
    failed = [r["messageId"] for r in event["Records"] if '"fail"' in r["body"]]
    assert failed, "the batch must contain failures for the comparison to mean anything"
    assert c.response == m.response == {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


def _by_role(spans: list[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    batch = [s for s in spans if "messaging.batch.message_count" in (s.attributes or {})]
    assert len(batch) == 1
    records = [s for s in spans if s is not batch[0]]
    records.sort(key=lambda s: str((s.attributes or {})["messaging.message.id"]))
    return batch[0], records


def test_same_spans(pair: tuple[Emitted, Emitted]) -> None:
    c, m = pair
    c_batch, c_records = _by_role(c.spans)
    m_batch, m_records = _by_role(m.spans)
    assert (c_batch.name, c_batch.kind, dict(c_batch.attributes or {})) == (
        m_batch.name,
        m_batch.kind,
        dict(m_batch.attributes or {}),
    )
    assert len(c_records) == len(m_records) == 40
    for c_span, m_span in zip(c_records, m_records, strict=True):
        c_attrs, m_attrs = dict(c_span.attributes or {}), dict(m_span.attributes or {})
        assert (c_span.name, c_span.kind) == (m_span.name, m_span.kind)
        assert set(c_attrs) == set(m_attrs)
        # everything but the captured text (whose JSON spacing may differ) and its size is identical
        for key in c_attrs.keys() - {"batchlens.record.response", "batchlens.record.response.size"}:
            assert c_attrs[key] == m_attrs[key], key
        assert c_span.status.status_code == m_span.status.status_code
        assert [e.name for e in c_span.events] == [e.name for e in m_span.events]
        for c_event, m_event in zip(c_span.events, m_span.events, strict=True):
            assert set(c_event.attributes or {}) == set(m_event.attributes or {})
        assert c_span.parent is not None
        assert m_span.parent is not None
        assert c_span.parent.span_id == c_batch.context.span_id
        assert m_span.parent.span_id == m_batch.context.span_id


def test_same_log_entries(pair: tuple[Emitted, Emitted]) -> None:
    c, m = pair
    assert [e["event"] for e in c.logs] == [e["event"] for e in m.logs]
    for c_entry, m_entry in zip(c.logs, m.logs, strict=True):
        assert set(c_entry) == set(m_entry), c_entry["event"]
        assert c_entry["log_level"] == m_entry["log_level"]


def test_same_metric_series_and_counts(pair: tuple[Emitted, Emitted]) -> None:
    c, m = pair
    c_metrics, m_metrics = c.metrics(), m.metrics()
    assert set(c_metrics) == set(m_metrics)
    for name in c_metrics:
        assert c_metrics[name] == m_metrics[name], name
