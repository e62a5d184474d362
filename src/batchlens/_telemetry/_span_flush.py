"""A span processor that exports at flush time, in the flushing thread: no worker thread, no queue hand-off.

Meant for exporters that never wait (UDP): ended spans are kept in a list, and ``force_flush`` (which batchlens
calls before the Lambda handler returns) exports them inline, so every span of an invocation has left by the time
the flush returns. A full list (``max_export_batch_size`` spans) is exported at once by the thread ending the span.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["FlushSpanProcessor"]

_logger = logging.getLogger("batchlens.telemetry")


class FlushSpanProcessor(SpanProcessor):
    """Keeps sampled spans until the next flush (or until ``max_export_batch_size`` of them wait), then exports.

    Args:
        exporter: Where the spans go; its ``export`` runs in the thread that flushes.
        max_export_batch_size: Export as soon as this many spans wait.
    """

    def __init__(self, exporter: SpanExporter, max_export_batch_size: int = 512) -> None:
        self.exporter = exporter
        self._max = max(1, int(max_export_batch_size))
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Keep the span if it is sampled; export the batch when it is full."""
        context = span.context
        if self._shut_down or context is None or not context.trace_flags.sampled:
            return
        with self._lock:
            self._spans.append(span)
            if len(self._spans) < self._max:
                return
            batch, self._spans = self._spans, []
        self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> bool:
        try:
            return self.exporter.export(batch) is SpanExportResult.SUCCESS
        except Exception:  # an exporter fault must never reach the code that ended the span
            _logger.exception("batchlens.telemetry: exporting spans failed")
            return False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every waiting span now, in this thread."""
        with self._lock:
            batch, self._spans = self._spans, []
        return self._export(batch) if batch else True

    def shutdown(self) -> None:
        """Export what waits, then shut the exporter down."""
        if self._shut_down:
            return
        self.force_flush()
        self._shut_down = True
        self.exporter.shutdown()
