"""The ``batchlens`` command: ``demo``, ``run``, ``events``, ``dashboards`` and ``poll``.

Only the standard library is imported at start-up; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from batchlens._cli_common import (
    EXIT_BAD_INPUT,
    EXIT_BATCH_FAILED,
    EXIT_OK,
    BadInput,
    _configure_stderr_logging,
    _load_handler,
)

__all__ = ["main"]

EVENT_KINDS = ("sqs", "fifo", "kinesis", "dynamodb", "kafka")
PROCESSORS = ("sync", "async", "fifo", "fifo-async")


# -- sample events and the sample handler -----------------------------------------------------------------------
def _make_event(kind: str, count: int, fail_rate: float, seed: int | None, groups: int = 1) -> dict[str, Any]:
    from batchlens import testing

    if kind == "sqs":
        return testing.sqs_event(count=count, fail_rate=fail_rate, seed=seed)
    if kind == "fifo":
        return testing.sqs_fifo_event(count=count, fail_rate=fail_rate, seed=seed, groups=groups)
    if kind == "kinesis":
        return testing.kinesis_event(count=count, fail_rate=fail_rate, seed=seed)
    if kind == "dynamodb":
        return testing.dynamodb_event(count=count, fail_rate=fail_rate, seed=seed)
    return testing.kafka_event(count=count, fail_rate=fail_rate, seed=seed)


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


# -- building processors -------------------------------------------------------------------------------------------
def _event_type_for(kind: str) -> Any:
    from batchlens import EventType

    return {
        "sqs": EventType.SQS,
        "fifo": EventType.SQS,
        "kinesis": EventType.KinesisDataStreams,
        "dynamodb": EventType.DynamoDBStreams,
        "kafka": EventType.Kafka,
    }[kind]


def _processor_for(event_type: Any, processor: str, telemetry: Any = None) -> Any:
    import batchlens

    if processor in ("fifo", "fifo-async") and event_type is not batchlens.EventType.SQS:
        raise BadInput(f"--processor {processor} needs an SQS event, got {event_type.value}")
    if processor == "fifo":
        return batchlens.SqsFifoPartialProcessor(telemetry=telemetry)
    if processor == "fifo-async":
        return batchlens.SqsFifoPartialProcessorAsync(telemetry=telemetry)
    if processor == "async":
        return batchlens.AsyncBatchProcessor(event_type, telemetry=telemetry)
    return batchlens.BatchProcessor(event_type, telemetry=telemetry)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# -- demo ------------------------------------------------------------------------------------------------------------
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


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Process a generated batch with full in-memory telemetry and print what happened."""
    import batchlens
    from batchlens.testing import capture_telemetry, lambda_context

    if args.records < 1:
        raise BadInput("--records must be at least 1")
    if not 0.0 <= args.fail_rate <= 1.0:
        raise BadInput("--fail-rate must be between 0 and 1")
    # up to four FIFO message groups, so that small batches too show a failing group next to healthy ones
    event = _make_event(args.event_type, args.records, args.fail_rate, args.seed, groups=min(4, args.records))
    event_type = _event_type_for(args.event_type)
    if args.event_type == "fifo":
        # the event spreads records over message groups; skipping only the failing groups shows what they are for
        processor: Any = batchlens.SqsFifoPartialProcessor(skip_group_on_error=True, telemetry=batchlens.Telemetry())
    else:
        processor = _processor_for(event_type, "sync", batchlens.Telemetry())
    context = lambda_context(seed=args.seed)
    whole_batch_failed = False
    with capture_telemetry(id_generator=_seeded_id_generator(args.seed)) as telemetry:
        try:
            response: Any = batchlens.process_partial_response(event, sample_handler, processor, context)
        except batchlens.BatchProcessingError as error:
            whole_batch_failed = True
            response = {"error": type(error).__name__, "message": str(error).splitlines()[0]}
        spans = telemetry.spans
        record_spans = telemetry.record_spans()
        logs = list(telemetry.logs)

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
    total = len(event.get("Records") or [r for rs in event.get("records", {}).values() for r in rs])
    failed = sum(failures.values())
    seed = "random" if args.seed is None else args.seed
    print(
        f"batchlens demo: {args.event_type} batch of {total} records (fail rate {args.fail_rate}, seed {seed})",
        file=out,
    )
    print("", file=out)
    print("Log lines (structlog, first 5):", file=out)
    for entry in logs[:5]:
        print("  " + json.dumps(entry, default=str, sort_keys=True), file=out)
    if len(logs) > 5:
        print(f"  ... {len(logs) - 5} more", file=out)
    print("", file=out)
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
    print(f"  log lines    {len(logs)}", file=out)
    budget = processor.telemetry.capture_max_bytes_per_batch
    print(f"  captured     {captured} bytes of handler results on spans (batch budget {budget})", file=out)
    print("", file=out)
    print("Partial-failure response (what the Lambda handler returns):", file=out)
    print(json.dumps(response), file=out)
    return EXIT_BATCH_FAILED if whole_batch_failed else EXIT_OK


# -- run ---------------------------------------------------------------------------------------------------------------
def _default_processor(kind: str | None, event_type: Any, event: Any, handler: Any) -> str:
    """The processor ``run`` uses without ``--processor``: FIFO for FIFO queues, async for ``async def`` handlers."""
    import inspect

    from batchlens import EventType

    fifo = kind == "fifo"
    if kind is None and event_type is EventType.SQS:
        records = event.get("Records") if isinstance(event, dict) else None
        first = records[0] if isinstance(records, list) and records else None
        arn = first.get("eventSourceARN") if isinstance(first, dict) else None
        fifo = isinstance(arn, str) and arn.endswith(".fifo")
    is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )
    if fifo:
        return "fifo-async" if is_async else "fifo"
    return "async" if is_async else "sync"


_MAX_INT_DIGITS = 4300  # CPython's default int_max_str_digits, enforced the same on every Python version


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {_MAX_INT_DIGITS})")
    return int(text)


def _read_event(path: str) -> Any:
    """The event JSON of ``path`` (``-``: stdin); anything unreadable is ``BadInput`` (exit 2, one line)."""
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data: str | bytes = stream.read() if stream is not None else sys.stdin.read()
        else:
            data = Path(path).read_bytes()
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except OSError as exc:
        raise BadInput(f"cannot read event file {path!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"event file {path!r} is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise BadInput(f"event file {path!r} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError:
        raise BadInput(f"event file {path!r} is not usable JSON: nested too deeply") from None
    except ValueError as exc:
        raise BadInput(f"event file {path!r} is not usable JSON: {_first_line(exc)}") from None


def _first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of ``error``'s message, bounded (the class name when it has none)."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    """Run a user's record handler on an event file, like Lambda would."""
    import batchlens
    from batchlens._sources import detect_event_type
    from batchlens.testing import lambda_context

    event = _read_event(args.event)
    if args.event_type:
        event_type = _event_type_for(args.event_type)
    else:
        event_type = detect_event_type(event)
        if event_type is None:
            raise BadInput("cannot tell the event type from eventSource; pass --event-type")
    handler = _load_handler(args.handler)
    processor_kind = args.processor or _default_processor(args.event_type, event_type, event, handler)
    _configure_stderr_logging()
    processor = _processor_for(event_type, processor_kind)
    run = (
        batchlens.async_process_partial_response
        if processor_kind in ("async", "fifo-async")
        else batchlens.process_partial_response
    )
    try:
        response = run(event, handler, processor, lambda_context())
    except batchlens.BatchProcessingError as error:
        if isinstance(error, batchlens.UnexpectedBatchTypeError):
            raise BadInput(_first_line(error)) from error
        print(f"batchlens: the whole batch failed: {_first_line(error)}", file=sys.stderr)
        return EXIT_BATCH_FAILED
    except ValueError as error:
        raise BadInput(_first_line(error)) from error
    print(json.dumps(response), file=out)
    failures = len(response["batchItemFailures"])
    size = len(processor.records)
    if size and failures == size:
        return EXIT_BATCH_FAILED
    return EXIT_OK


# -- events ----------------------------------------------------------------------------------------------------------
def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    """Write a sample event to stdout."""
    if args.count < 1:
        raise BadInput("--count must be at least 1")
    if not 0.0 <= args.fail_rate <= 1.0:
        raise BadInput("--fail-rate must be between 0 and 1")
    if args.groups < 1:
        raise BadInput("--groups must be at least 1")
    event = _make_event(args.kind, args.count, args.fail_rate, args.seed, groups=args.groups)
    json.dump(event, out, indent=2)
    out.write("\n")
    return EXIT_OK


# -- dashboards ------------------------------------------------------------------------------------------------------
def dashboards_dir() -> Path:
    """Where the bundled dashboards are: inside the installed package, or the source tree's dashboards/."""
    packaged = Path(__file__).resolve().parent / "_dashboards"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "dashboards"
    if source_tree.is_dir():
        return source_tree
    raise BadInput("no bundled dashboards found in this installation")


def cmd_dashboards(args: argparse.Namespace, out: TextIO) -> int:
    """List or export the bundled dashboards (Grafana files as they are, CloudWatch rendered for NS and region)."""
    import os

    from batchlens import _dashboard_export

    folder = dashboards_dir()
    if args.action == "list":
        for name, title in _dashboard_export.listing(folder):
            print(f"{name}\t{title}", file=out)
        return EXIT_OK
    target = Path(args.directory)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        namespace = args.namespace
        if namespace is None:
            namespace = os.environ.get("BATCHLENS_EMF_NAMESPACE") or _dashboard_export.DEFAULT_NAMESPACE
        written = _dashboard_export.export(folder, target, args.format, namespace, region)
    except ValueError as problem:
        raise BadInput(str(problem)) from problem
    except OSError as exc:
        raise BadInput(f"cannot write to {str(target)!r}: {exc.strerror or exc}") from exc
    for path in written:
        print(str(path), file=out)
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``batchlens`` command."""
    parser = argparse.ArgumentParser(
        prog="batchlens",
        description="Partial-failure batch processing for AWS Lambda with telemetry built in.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser("demo", help="process a generated batch with full telemetry and show the result")
    demo.add_argument("--records", type=int, default=20, help="records in the batch (default 20)")
    demo.add_argument("--fail-rate", type=float, default=0.2, help="share of records that fail (default 0.2)")
    demo.add_argument("--event-type", choices=EVENT_KINDS, default="sqs", help="event source (default sqs)")
    demo.add_argument("--seed", type=int, default=7, help="random seed, for a repeatable demo (default 7)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run your record handler on an event file, like Lambda would")
    run.add_argument("event", help="path of the event JSON file ('-' for stdin)")
    run.add_argument("--handler", required=True, help="record handler as module:function (imported from the cwd)")
    run.add_argument(
        "--processor",
        choices=PROCESSORS,
        help="processor kind (default: sync, or async for an async def handler; the fifo kinds for FIFO queues)",
    )
    run.add_argument("--event-type", choices=EVENT_KINDS, help="event source (default: detected from eventSource)")
    run.set_defaults(func=cmd_run)

    events = sub.add_parser("events", help="write a valid sample event JSON to stdout")
    events.add_argument("kind", choices=EVENT_KINDS, help="event source")
    events.add_argument("--count", type=int, default=10, help="records (default 10)")
    events.add_argument("--fail-rate", type=float, default=0.0, help="share of records containing 'fail'")
    events.add_argument("--groups", type=int, default=1, help="FIFO message groups (default 1)")
    events.add_argument("--seed", type=int, default=None, help="random seed for a repeatable event")
    events.set_defaults(func=cmd_events)

    dashboards = sub.add_parser("dashboards", help="list or export the bundled Grafana and CloudWatch dashboards")
    dash_sub = dashboards.add_subparsers(dest="action", metavar="ACTION")
    dash_sub.required = True
    dash_sub.add_parser("list", help="list the bundled dashboards").set_defaults(func=cmd_dashboards)
    export = dash_sub.add_parser("export", help="write the dashboards' JSON files into DIR")
    export.add_argument("directory", metavar="DIR")
    export.add_argument(
        "--format",
        choices=("grafana", "cloudwatch"),
        default="grafana",
        help="grafana (default): the Grafana JSON as is; cloudwatch: the CloudWatch body for NAMESPACE and REGION",
    )
    export.add_argument("--namespace", help="CloudWatch metric namespace (default: BATCHLENS_EMF_NAMESPACE, batchlens)")
    export.add_argument("--region", help="CloudWatch dashboard region (default: AWS_REGION, AWS_DEFAULT_REGION)")
    export.set_defaults(func=cmd_dashboards)

    from batchlens._poll._args import add_parser as add_poll_parser  # standard library only

    add_poll_parser(sub).set_defaults(func=cmd_poll)
    return parser


def cmd_poll(args: argparse.Namespace, out: TextIO) -> int:
    """Run a Lambda handler against a real queue or stream (batchlens/_poll)."""
    from batchlens._poll._runner import cmd_poll as run_poll

    return run_poll(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchlens`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, sys.stdout))
    except BadInput as problem:
        message = " ".join(str(problem).split())
        print(f"batchlens: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader went away (e.g. `batchlens events sqs | head`): not an error; keep Python from
        # complaining again when it flushes stdout at exit
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
