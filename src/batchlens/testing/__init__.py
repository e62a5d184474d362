"""Helpers for testing record handlers: sample events, a fake Lambda context, and in-memory telemetry.

Example::

    from batchlens import BatchProcessor, EventType, process_partial_response
    from batchlens.testing import capture_telemetry, lambda_context, sqs_event

    def test_second_record_fails():
        event = sqs_event(["ok", "fail"])
        with capture_telemetry() as telemetry:
            response = process_partial_response(event, record_handler, processor, lambda_context())
        assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][1]["messageId"]}]
        assert telemetry.failed_record_ids() == [event["Records"][1]["messageId"]]

``capture_telemetry`` needs the ``sdk`` extra (``pip install 'batchlens[sdk]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from batchlens.testing._events import (
    FakeLambdaContext,
    dynamodb_event,
    kafka_event,
    kinesis_event,
    lambda_context,
    sqs_event,
    sqs_fifo_event,
    to_dynamodb_json,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = [
    "CapturedTelemetry",
    "FakeLambdaContext",
    "capture_telemetry",
    "dynamodb_event",
    "kafka_event",
    "kinesis_event",
    "lambda_context",
    "sqs_event",
    "sqs_fifo_event",
    "to_dynamodb_json",
]


class CapturedTelemetry:
    """What batchlens emitted inside a ``capture_telemetry()`` block.

    Attributes:
        tracer_provider / meter_provider: The in-memory SDK providers batchlens used.
        logs: The structlog entries (dicts), as ``structlog.testing.capture_logs()`` records them.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        exporter: InMemorySpanExporter,
        meter_provider: MeterProvider,
        reader: InMemoryMetricReader,
        logs: list[dict[str, Any]],
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logs = logs
        self._exporter = exporter
        self._reader = reader

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self._exporter.get_finished_spans())

    def batch_spans(self) -> list[ReadableSpan]:
        """Batch spans (those with ``messaging.batch.message_count``)."""
        return [s for s in self.spans if s.attributes and "messaging.batch.message_count" in s.attributes]

    def record_spans(self) -> list[ReadableSpan]:
        """Per-record spans (those with ``messaging.message.id`` set by batchlens), in end order."""
        return [
            s
            for s in self.spans
            if s.attributes
            and "messaging.message.id" in s.attributes
            and "messaging.batch.message_count" not in s.attributes
        ]

    def failed_record_ids(self) -> list[str]:
        """Message ids of record spans that ended in error (failed or skipped), in the order the spans ended."""
        from opentelemetry.trace import StatusCode

        failed = [s for s in self.record_spans() if s.status.status_code is StatusCode.ERROR]
        return [str(s.attributes["messaging.message.id"]) for s in failed if s.attributes]

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Log entries emitted by batchlens, optionally only those with the given ``event``."""
        entries = [e for e in self.logs if "record_id" in e or e.get("event") == "batch processed"]
        return [e for e in entries if event is None or e.get("event") == event]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric data points by metric name (collected now)."""
        data = self._reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points

    def counter(self, name: str, **attributes: Any) -> float:
        """Sum of counter ``name`` over points whose attributes include ``attributes`` (dots as ``__``)."""
        wanted = {k.replace("__", "."): v for k, v in attributes.items()}
        total: float = 0
        for point in self.metrics().get(name, []):
            attrs = dict(point.attributes or {})
            if all(attrs.get(k) == v for k, v in wanted.items()):
                total += point.value
        return total

    def histogram_count(self, name: str, **attributes: Any) -> int:
        """Number of values recorded in histogram ``name`` over matching points."""
        wanted = {k.replace("__", "."): v for k, v in attributes.items()}
        total = 0
        for point in self.metrics().get(name, []):
            attrs = dict(point.attributes or {})
            if all(attrs.get(k) == v for k, v in wanted.items()):
                total += int(point.count)
        return total


@contextmanager
def capture_telemetry(*, id_generator: IdGenerator | None = None) -> Iterator[CapturedTelemetry]:
    """Collect the spans, metrics and log entries batchlens emits inside the block, in memory.

    Works for processors created before the block too (they resolve providers per batch), unless a processor
    was given explicit providers through ``Telemetry(tracer_provider=..., meter_provider=...)``. The captured
    data stays readable after the block; nothing emitted after it is added.

    Args:
        id_generator: OpenTelemetry ID generator for the spans (e.g. a seeded one, for repeatable trace and
            span ids); the SDK's random generator when omitted.
    """
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("capture_telemetry needs the OpenTelemetry SDK: pip install 'batchlens[sdk]'") from exc
    from structlog.testing import capture_logs

    from batchlens._telemetry._providers import override

    exporter = InMemorySpanExporter()
    # Both are shut down when the block exits; the default atexit hooks would keep every captured provider
    # (and its data) alive until the interpreter exits.
    tracer_provider = TracerProvider(id_generator=id_generator, shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        with override(tracer_provider=tracer_provider, meter_provider=meter_provider), capture_logs() as logs:
            # structlog types the entries as MutableMapping; they are plain dicts
            entries = cast("list[dict[str, Any]]", logs)
            yield CapturedTelemetry(tracer_provider, exporter, meter_provider, reader, entries)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
