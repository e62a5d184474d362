"""Helpers shared by the tracing test modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def failing_handler(record: Any) -> Any:
    if "fail" in record.body:
        raise ValueError(f"cannot process {record.message_id}")
    return {"id": record.message_id}


def spans_by_kind(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """Split finished spans into the one batch span (no batchlens parent) and the record spans."""
    spans = exporter.get_finished_spans()
    batch = [s for s in spans if "messaging.batch.message_count" in (s.attributes or {})]
    assert len(batch) == 1, [s.name for s in spans]
    records = [s for s in spans if "messaging.message.id" in (s.attributes or {})]
    return batch[0], records


def by_message_id(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {str(s.attributes["messaging.message.id"]): s for s in spans}  # type: ignore[index]
