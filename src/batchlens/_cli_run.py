"""``batchlens run``: a record handler or a Lambda handler on an event file, like Lambda would run it."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from batchlens._cli_batch import check_event_type, default_processor, event_type_for, processor_for
from batchlens._cli_common import EXIT_BATCH_FAILED, EXIT_OK, BadInput, _configure_stderr_logging

__all__ = ["DEFAULT_TIMEOUT_S", "cmd_run", "first_line", "read_event"]

DEFAULT_TIMEOUT_S = 30.0
"""The remaining time a ``run`` invocation starts with, unless ``--timeout``/``--remaining-time`` say otherwise."""

_MAX_INT_DIGITS = 4300  # CPython's default int_max_str_digits, enforced the same on every Python version
_LAMBDA_ARN = re.compile(r"arn:aws[a-z-]*:lambda:([a-z0-9-]+):(\d{12}):function:([A-Za-z0-9_-]{1,64})(?::[\w$-]+)?$")


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {_MAX_INT_DIGITS})")
    return int(text)


def read_event(path: str) -> Any:
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
        raise BadInput(f"event file {path!r} is not usable JSON: {first_line(exc)}") from None


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of ``error``'s message, bounded (the class name when it has none)."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _record_count(event: Any) -> int | None:
    if not isinstance(event, dict):
        return None
    records = event.get("Records")
    if isinstance(records, list):
        return len(records)
    grouped = event.get("records")
    if isinstance(grouped, dict):
        return sum(len(r) for r in grouped.values() if isinstance(r, list))
    return None


def _context(args: argparse.Namespace) -> tuple[Any, float]:
    """The invocation's Lambda context, and its time budget in seconds."""
    from batchlens.testing import lambda_context

    remaining_ms = int(DEFAULT_TIMEOUT_S * 1000)
    if args.timeout is not None:
        if not 0 < args.timeout <= 900:
            raise BadInput(f"--timeout {args.timeout} is out of range (0, 900] seconds")
        remaining_ms = int(args.timeout * 1000)
    elif args.remaining_time is not None:
        if args.remaining_time < 0:
            raise BadInput("--remaining-time must not be negative")
        remaining_ms = args.remaining_time
    names: dict[str, Any] = {}
    if args.function_arn:
        match = _LAMBDA_ARN.match(args.function_arn)
        if match is None:
            raise BadInput(f"--function-arn {args.function_arn!r} is not a Lambda function ARN")
        names = {"region": match.group(1), "account_id": match.group(2), "function_name": match.group(3)}
    if args.function_name:
        names["function_name"] = args.function_name
    context = lambda_context(remaining_ms=remaining_ms, **names)
    if args.function_arn:
        context.invoked_function_arn = args.function_arn
    return context, remaining_ms / 1000


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    """Run a user's handler on an event file, like Lambda would."""
    from batchlens._cli_handler import LAMBDA, handler_choice, load
    from batchlens._cli_traces import start_traces
    from batchlens._sources import detect_event_type

    event = read_event(args.event)
    count = _record_count(event)
    if count == 0:
        raise BadInput(f"event file {args.event!r} has no records: Lambda never invokes a function with an empty batch")
    if args.event_type:
        check_event_type(args.event_type, event)
        event_type = event_type_for(args.event_type)
    else:
        event_type = detect_event_type(event)
        if event_type is None:
            raise BadInput("cannot tell the event type from eventSource; pass --event-type")
    handler, kind = load(handler_choice(args))
    if kind == LAMBDA and args.processor:
        raise BadInput("--processor goes with a record handler; a Lambda handler builds its own processor")
    context, budget_s = _context(args)
    processor_kind = args.processor or default_processor(args.event_type, event_type, event, handler)
    processor = None if kind == LAMBDA else processor_for(event_type, processor_kind)
    traces = start_traces(args.traces, sys.stderr)
    _configure_stderr_logging()
    started = time.monotonic()
    try:
        if traces is None:
            code, response = _invoke(handler, processor, processor_kind, event, context)
        else:
            with traces.active():
                code, response = _invoke(handler, processor, processor_kind, event, context)
    finally:
        if traces is not None:
            traces.flush()
            traces.shutdown()
    elapsed = time.monotonic() - started
    if elapsed > budget_s:
        print(
            f"batchlens: the invocation took {elapsed:.3f} s, past its {budget_s:g} s: Lambda would have ended it "
            "and the whole batch would come back",
            file=sys.stderr,
        )
        code = max(code, EXIT_BATCH_FAILED)
    if response is not None:
        print(json.dumps(response), file=out)
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if isinstance(failures, list) and count and len(failures) == count:
            code = max(code, EXIT_BATCH_FAILED)
    return code


def _invoke(handler: Any, processor: Any, processor_kind: str, event: Any, context: Any) -> tuple[int, Any]:
    """Call the handler; (exit code, response to print or None)."""
    import batchlens

    try:
        if processor is None:
            return EXIT_OK, handler(event, context)
        run = (
            batchlens.async_process_partial_response
            if processor_kind in ("async", "fifo-async")
            else batchlens.process_partial_response
        )
        return EXIT_OK, run(event, handler, processor, context)
    except batchlens.UnexpectedBatchTypeError as error:
        raise BadInput(first_line(error)) from error
    except batchlens.BatchProcessingError as error:
        failed = len(getattr(error, "child_exceptions", None) or [])
        what = f"all {failed} records failed" if failed else first_line(error)
        print(
            f"batchlens: the whole batch failed: {what} (each error is in the log lines above); "
            "Lambda retries the whole batch",
            file=sys.stderr,
        )
        return EXIT_BATCH_FAILED, None
    except ValueError as error:
        if processor is None:
            return _handler_raised(error)
        raise BadInput(first_line(error)) from error
    except Exception as error:
        if processor is None:
            return _handler_raised(error)
        raise


def _handler_raised(error: BaseException) -> tuple[int, Any]:
    print(
        f"batchlens: the Lambda handler raised {type(error).__name__}: {first_line(error)}; "
        "Lambda retries the whole batch",
        file=sys.stderr,
    )
    return EXIT_BATCH_FAILED, None
