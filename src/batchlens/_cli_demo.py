"""``batchlens demo``: a generated batch through a real processor, with its log lines, trace tree and summary."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from batchlens._cli_batch import event_type_for, make_event, processor_for
from batchlens._cli_common import EXIT_BATCH_FAILED, EXIT_OK, BadInput

__all__ = ["DEMO_HINT", "MAX_FAILURES_SHOWN", "cmd_demo", "sample_handler"]

DEMO_HINT = "batchlens demo needs the OpenTelemetry SDK: pip install 'batchlens[sdk]'"
MAX_FAILURES_SHOWN = 10
"""``batchItemFailures`` entries the demo prints; the rest are counted."""


class OrderRejectedError(Exception):
    """The sample handler's business error."""


def _payload_text(record: Any) -> str:
    for getter in ("body", "decoded_value"):
        value = getattr(record, getter, None)
        if isinstance(value, (str, bytes)):
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    kinesis = getattr(record, "kinesis", None)
    if kinesis is not None:
        return str(kinesis.data_as_text())
    dynamodb = getattr(record, "dynamodb", None)
    if dynamodb is not None:
        return str(dynamodb.new_image)
    return str(getattr(record, "raw_event", record))


def sample_handler(record: Any) -> dict[str, Any]:
    """The demo's record handler: fails records whose payload contains "fail", returns a small result otherwise."""
    text = _payload_text(record)
    if "fail" in text:
        # two kinds of failure, so the demo's "failures by error type" has something to show
        if sum(map(ord, text)) % 3 == 0:
            raise TimeoutError("downstream timed out")
        raise OrderRejectedError("order rejected by validation")
    return {"status": "processed", "bytes": len(text)}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _seeded_id_generator(seed: int | None) -> Any:
    """An OpenTelemetry ID generator drawing from ``random.Random(seed)``, so a seeded demo repeats its ids."""
    if seed is None:
        return None
    import random

    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class SeededIdGenerator(IdGenerator):
        def __init__(self) -> None:
            self._rng = random.Random(seed)

        def generate_span_id(self) -> int:
            return self._rng.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            return self._rng.getrandbits(128) or 1

    return SeededIdGenerator()


@contextmanager
def _json_logs_into(buffer: io.StringIO) -> Iterator[None]:
    """structlog writes the JSON lines a Lambda function's ``configure(logs="json")`` writes, into ``buffer``."""
    import structlog

    from batchlens._telemetry._structlog_setup import _processors

    def as_text(logger: Any, method_name: str, rendered: Any) -> Any:
        # the JSON renderer gives bytes with orjson; the demo's buffer takes text
        return rendered.decode("utf-8") if isinstance(rendered, bytes) else rendered

    previous = structlog.get_config()
    structlog.configure(
        processors=[*_processors("json"), as_text],
        logger_factory=structlog.PrintLoggerFactory(buffer),
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)


def _check_args(args: argparse.Namespace) -> None:
    if args.records < 1:
        raise BadInput("--records must be at least 1")
    if not 0.0 <= args.fail_rate <= 1.0:
        raise BadInput("--fail-rate must be between 0 and 1")
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise BadInput(DEMO_HINT) from None


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Process a generated batch with real telemetry and print what happened."""
    import batchlens
    from batchlens._cli_traces import render_batch, start_traces
    from batchlens.testing import lambda_context

    _check_args(args)
    # up to four FIFO message groups, so that small batches too show a failing group next to healthy ones
    event = make_event(
        args.event_type, args.records, args.fail_rate, args.seed, groups=min(4, args.records), timestamp_ms=None
    )
    # the tree is drawn from the spans kept for the summary (synchronously, none dropped however large the
    # batch); any other choice is configure()'s exporter
    exporter = "none" if args.traces == "tree" else args.traces
    traces = start_traces(exporter, out, collect=True, id_generator=_seeded_id_generator(args.seed), set_global=False)
    assert traces is not None  # collect=True always sets up
    if args.event_type == "fifo":
        # the event spreads records over message groups; skipping only the failing groups shows what they are for
        processor: Any = batchlens.SqsFifoPartialProcessor(skip_group_on_error=True)
    else:
        processor = processor_for(event_type_for(args.event_type), "sync")
    error: BaseException | None = None
    logs = io.StringIO()
    with traces.active(), _json_logs_into(logs):
        try:
            response: Any = batchlens.process_partial_response(
                event, sample_handler, processor, lambda_context(seed=args.seed)
            )
        except batchlens.BatchProcessingError as raised:
            error, response = raised, None
    log_lines = logs.getvalue().splitlines()
    total = len(event.get("Records") or [r for rs in event.get("records", {}).values() for r in rs])
    seed = "random" if args.seed is None else args.seed
    print(
        f"batchlens demo: {args.event_type} batch of {total} records (fail rate {args.fail_rate}, seed {seed})",
        file=out,
    )
    print("", file=out)
    shown = f"first 5 of {len(log_lines)}" if len(log_lines) > 5 else f"all {len(log_lines)}"
    print(f"Log lines (the JSON a Lambda function writes to CloudWatch; {shown}):", file=out)
    for line in log_lines[:5]:
        print("  " + line, file=out)
    print("", file=out)
    if args.traces == "tree":
        print("Traces (one tree per batch):", file=out)
    out.flush()
    traces.flush()
    spans = traces.spans
    traces.shutdown()
    if args.traces == "tree":
        for root in (s for s in spans if s.parent is None):
            print("\n".join(render_batch(root, spans)), file=out)
        print("", file=out)
    _print_summary(out, spans, total, len(log_lines), processor)
    print("", file=out)
    if error is not None:
        print("The batch raised BatchProcessingError (no partial-failure response; Lambda retries it whole):", file=out)
        message = f"all {total} records failed; each error is in the log lines and spans above"
        print(json.dumps({"error": type(error).__name__, "message": message}), file=out)
        return EXIT_BATCH_FAILED
    print("Partial-failure response (what the Lambda handler returns):", file=out)
    _print_response(out, response)
    return EXIT_OK


def _print_summary(out: TextIO, spans: list[Any], total: int, log_count: int, processor: Any) -> None:
    record_spans = [
        s
        for s in spans
        if s.attributes
        and "messaging.message.id" in s.attributes
        and "messaging.batch.message_count" not in s.attributes
    ]
    failures: dict[str, int] = {}
    durations: list[float] = []
    captured = 0
    links = 0
    for span in record_spans:
        attrs = dict(span.attributes or {})
        if "error.type" in attrs:
            name = str(attrs["error.type"])
            failures[name] = failures.get(name, 0) + 1
        response_attr = attrs.get("batchlens.record.response")
        if isinstance(response_attr, str):
            captured += len(response_attr.encode("utf-8"))
        if span.end_time is not None and span.start_time is not None:
            durations.append((span.end_time - span.start_time) / 1e6)
        links += len(span.links)
    durations.sort()
    failed = sum(failures.values())
    print("Summary:", file=out)
    print(f"  records      {total} ({total - failed} succeeded, {failed} failed)", file=out)
    kinds = ", ".join(f"{name} x{count}" for name, count in sorted(failures.items())) or "none"
    print(f"  failures     {kinds}", file=out)
    p50, p95, p99 = (_percentile(durations, q) for q in (0.5, 0.95, 0.99))
    print(f"  duration     p50 {p50:.3f} ms, p95 {p95:.3f} ms, p99 {p99:.3f} ms per record", file=out)
    print(
        f"  spans        {len(spans)} ({len(spans) - len(record_spans)} batch, {len(record_spans)} record, "
        f"{links} producer links)",
        file=out,
    )
    print(f"  log lines    {log_count}", file=out)
    budget = processor.telemetry.capture_max_bytes_per_batch
    print(f"  captured     {captured} bytes of handler results on spans (batch budget {budget})", file=out)


def _print_response(out: TextIO, response: Any) -> None:
    failures = list(response.get("batchItemFailures", []))
    if len(failures) <= MAX_FAILURES_SHOWN:
        print(json.dumps(response), file=out)
        return
    shown = {**response, "batchItemFailures": failures[:MAX_FAILURES_SHOWN]}
    text = json.dumps(shown, indent=2)
    print(text, file=out)
    print(f"  ... {len(failures) - MAX_FAILURES_SHOWN} more batchItemFailures entries not shown", file=out)
