"""``--traces`` for ``demo``, ``run`` and ``poll``: tracing through ``batchlens.telemetry.configure``.

``tree`` prints each batch as a terminal tree when its batch span ends (the batch span above its record spans,
with status, duration, error type, trace id and producer links); ``console``, ``otlp`` and ``xray`` are
configure()'s exporters. Standard library only at import; the SDK is imported when tracing starts.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from batchlens._cli_common import BadInput

__all__ = ["TRACE_CHOICES", "TraceSetup", "add_traces_flag", "render_batch", "start_traces"]

TRACE_CHOICES = ("tree", "console", "otlp", "xray", "none")
TREE_MAX_RECORDS = 20
"""Record rows a tree shows per batch (failed records first); the rest are counted on one line."""

SDK_HINT = "needs the OpenTelemetry SDK: pip install 'batchlens[sdk]'"
_BATCH_COUNT = "messaging.batch.message_count"


def add_traces_flag(parser: argparse.ArgumentParser, default: str | None, where: str) -> None:
    """The ``--traces`` option of ``demo``, ``run`` and ``poll``."""
    default_text = f"default {default}" if default else "default: OTEL_TRACES_EXPORTER, else none"
    parser.add_argument(
        "--traces",
        choices=TRACE_CHOICES,
        default=default,
        help=(
            f"tracing ({default_text}): tree prints each batch as a terminal tree on {where}, console the "
            "OpenTelemetry JSON spans, otlp exports to OTEL_EXPORTER_OTLP_ENDPOINT, xray to the X-Ray daemon"
        ),
    )


def _ms(span: Any) -> float:
    if span.end_time is None or span.start_time is None:
        return 0.0
    return float(span.end_time - span.start_time) / 1e6


def _status(span: Any) -> str:
    from opentelemetry.trace import StatusCode

    error = span.status.status_code is StatusCode.ERROR
    kind = (span.attributes or {}).get("error.type")
    if not error:
        return "OK"
    return f"ERROR {kind}" if kind else "ERROR"


def _links(span: Any, limit: int = 2) -> str:
    links = [f"{link.context.trace_id:032x}" for link in span.links]
    if not links:
        return ""
    shown = ", ".join(links[:limit]) + (f", +{len(links) - limit}" if len(links) > limit else "")
    return f"  <- producer {shown}"


def _row(span: Any) -> str:
    attrs = span.attributes or {}
    ident = attrs.get("messaging.message.id")
    label = f"{span.name} {ident}" if ident is not None else span.name
    return f"{label}  {_status(span)}  {_ms(span):.3f} ms{_links(span)}"


def render_batch(root: Any, spans: Sequence[Any], max_records: int = TREE_MAX_RECORDS) -> list[str]:
    """The lines of one batch's tree: ``root`` above its descendants among ``spans``."""
    children: dict[int, list[Any]] = {}
    for span in spans:
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    attrs = root.attributes or {}
    count = attrs.get(_BATCH_COUNT)
    size = f" ({count} records)" if count is not None else ""
    producers = f"  {len(root.links)} producer links" if root.links else ""
    lines = [
        f"trace {root.context.trace_id:032x}",
        f"{root.name}{size}  {_status(root)}  {_ms(root):.3f} ms{producers}",
    ]
    records = sorted(children.get(root.context.span_id, []), key=lambda s: s.start_time or 0)
    shown = records
    if len(records) > max_records:
        failed = [s for s in records if _status(s) != "OK"]
        shown = sorted((failed + [s for s in records if _status(s) == "OK"])[:max_records], key=records.index)

    def walk(span: Any, prefix: str, last: bool) -> None:
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_row(span)}")
        below = sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time or 0)
        for i, child in enumerate(below):
            walk(child, prefix + ("   " if last else "│  "), i == len(below) - 1)

    hidden = len(records) - len(shown)
    for i, span in enumerate(shown):
        walk(span, "", i == len(shown) - 1 and not hidden)
    if hidden:
        hidden_failed = sum(1 for s in records if _status(s) != "OK") - sum(1 for s in shown if _status(s) != "OK")
        lines.append(f"└─ ... {hidden} more records ({hidden_failed} failed)")
    return lines


def _tree_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class TreeExporter(SpanExporter):
        """Keeps the spans of batches in flight; renders a batch's tree when its batch span arrives.

        The export thread only renders; :meth:`take` hands the text to the CLI's thread, which prints it in
        order with its own output.
        """

        def __init__(self) -> None:
            self._pending: list[Any] = []
            self._rendered: list[str] = []
            self._lock = threading.Lock()

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            with self._lock:
                for span in spans:
                    self._pending.append(span)
                    if span.parent is None or _BATCH_COUNT in (span.attributes or {}):
                        trace_id = span.context.trace_id
                        mine = [s for s in self._pending if s.context.trace_id == trace_id]
                        self._pending = [s for s in self._pending if s.context.trace_id != trace_id]
                        self._rendered.append("\n".join(render_batch(span, mine)))
            return SpanExportResult.SUCCESS

        def take(self) -> list[str]:
            with self._lock:
                rendered, self._rendered = self._rendered, []
            return rendered

        def shutdown(self) -> None:
            self._pending.clear()

    return TreeExporter()


class TraceSetup:
    """The providers ``--traces`` built; use :meth:`active` around the batches, :meth:`flush` after each."""

    def __init__(self, handle: Any, out: TextIO, tree: Any = None, collector: Any = None) -> None:
        self.handle = handle
        self.collector = collector
        self._out = out
        self._tree = tree

    @property
    def spans(self) -> list[Any]:
        """Spans kept for a summary (``collect=True``), in the order they ended."""
        return list(self.collector.get_finished_spans()) if self.collector is not None else []

    @contextmanager
    def active(self) -> Iterator[None]:
        """batchlens processors use these providers in the block, whatever the OpenTelemetry globals are."""
        from batchlens._telemetry._providers import override

        with override(tracer_provider=self.handle.tracer_provider, meter_provider=self.handle.meter_provider):
            yield

    def flush(self) -> None:
        """Export what the batches left; ``tree`` prints their trees now, in the calling thread."""
        self.handle.flush()
        if self._tree is not None:
            for text in self._tree.take():
                print(text, file=self._out, flush=True)

    def shutdown(self) -> None:
        self.handle.shutdown()


def start_traces(
    choice: str | None,
    out: TextIO,
    *,
    collect: bool = False,
    metrics_port: int | None = None,
    id_generator: Any = None,
    set_global: bool = True,
) -> TraceSetup | None:
    """Configure tracing for a CLI command; None when there is nothing to set up.

    Args:
        choice: The ``--traces`` value; None falls back to ``OTEL_TRACES_EXPORTER`` (nothing when unset).
        out: Where ``tree`` and ``console`` write.
        collect: Keep the finished spans in memory too (the demo's summary counts them).
        metrics_port: Serve Prometheus metrics on this port (``poll --metrics-port``).
        id_generator: The tracer provider's ID generator (a seeded one makes the demo's ids repeat).
        set_global: Install the providers as the OpenTelemetry globals too (for a user's handler and its own
            spans); batchlens processors use them inside :meth:`TraceSetup.active` either way.
    """
    env_traces = os.environ.get("OTEL_TRACES_EXPORTER")
    if choice is None and not env_traces and metrics_port is None and not collect:
        return None
    wanted = choice or env_traces or "none"
    try:
        from batchlens.telemetry import configure

        # tree and console are exporter objects (console writes to ``out``, not to stdout, which holds the
        # response); the other names are configure()'s own, which also rejects unknown ones
        names = [name.strip() for name in wanted.split(",")]
        objects: list[Any] = []
        tree = None
        if "tree" in names:
            tree = _tree_exporter()
            objects.append(tree)
        if "console" in names:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            objects.append(ConsoleSpanExporter(out=out))
        rest = ",".join(name for name in names if name not in ("tree", "console")) or "none"
        traces: Any = objects[0] if len(objects) == 1 and rest == "none" else rest
        metrics = "prometheus" if metrics_port is not None else os.environ.get("OTEL_METRICS_EXPORTER") or "none"
        handle = configure(
            traces=traces, metrics=metrics, logs="none", prometheus_port=metrics_port, set_global=set_global
        )
        if traces is rest:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            for exporter in objects:
                handle.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    except ImportError:
        what = f"--traces {wanted}" if wanted != "none" else "--metrics-port"
        raise BadInput(f"{what} {SDK_HINT}") from None
    except ValueError as problem:
        raise BadInput(" ".join(str(problem).split())) from None
    if id_generator is not None:
        handle.tracer_provider.id_generator = id_generator
    collector = None
    if collect:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        collector = InMemorySpanExporter()
        handle.tracer_provider.add_span_processor(SimpleSpanProcessor(collector))
    return TraceSetup(handle, out, tree, collector)
