"""The ``batchlens poll`` loop: build the source, invoke batch after batch, stop cleanly."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TextIO

from batchlens._poll._args import PollOptions, options_from_args
from batchlens._poll._summary import BatchSummary, Totals

__all__ = ["BOTO3_HINT", "cmd_poll", "poll"]

BOTO3_HINT = "batchlens poll needs boto3: pip install 'batchlens[local]'"


def _bad_input(message: str) -> Exception:
    from batchlens._cli_common import BadInput

    return BadInput(message)


def cmd_poll(args: argparse.Namespace, out: TextIO) -> int:
    """The ``poll`` command: validate, then run until stopped. Summary lines go to stderr."""
    try:
        options = options_from_args(args)
    except ValueError as problem:
        raise _bad_input(str(problem)) from None
    return poll(options, err=sys.stderr)


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise _bad_input(BOTO3_HINT) from None
    return boto3


def _source(options: PollOptions, session: Any, invoke: Callable[[dict[str, Any], str], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint = endpoint_for(options)
    source = options.source

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=endpoint)

    try:
        if source.startswith(("kinesis:", "dynamodb:")):
            return _stream_source(options, client, invoke)
        if source.startswith(("https://", "http://", "arn:aws:sqs:")):
            return _sqs_source(options, client, invoke)
    except (ClientError, BotoCoreError, LookupError) as exc:
        raise _bad_input(f"cannot open {source}: {exc}") from None
    raise _bad_input(f"SOURCE {source!r} is not an SQS queue URL, kinesis:STREAM or dynamodb:TABLE")


_AWS_HOST = re.compile(r"(^|\.)amazonaws\.com(\.cn)?$")


def endpoint_for(options: PollOptions) -> str | None:
    """``--endpoint-url``, else ``AWS_ENDPOINT_URL``, else the queue URL's own host when it is not AWS's.

    A queue URL on localhost, 127.0.0.1 or any other host outside ``amazonaws.com`` names its endpoint: sending
    those calls to the region's AWS endpoint would reach a real account by surprise.
    """
    explicit = options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if explicit:
        return explicit
    if not options.source.startswith(("http://", "https://")):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(options.source)
    host = parts.hostname or ""
    if not host or _AWS_HOST.search(host):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _sqs_source(options: PollOptions, client: Callable[[str], Any], invoke: Any) -> Any:
    from batchlens._poll._sqs import SqsSource

    sqs = client("sqs")
    url = options.source
    if url.startswith("arn:"):
        _, _, _, _, account, name = url.split(":", 5)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    batch_size = options.batch_size or 10
    if batch_size > 10 and options.batching_window <= 0:
        raise _bad_input("an SQS --batch-size above 10 needs a --batching-window of at least 1 s, as in Lambda")
    if url.endswith(".fifo") and batch_size > 10:
        raise _bad_input("a FIFO queue takes --batch-size 1-10, as in Lambda")
    return SqsSource(
        sqs,
        url,
        batch_size=batch_size,
        batching_window_s=options.batching_window,
        report_batch_item_failures=bool(options.report_batch_item_failures),
        invoke=invoke,
    )


def _stream_source(options: PollOptions, client: Callable[[str], Any], invoke: Any) -> Any:
    from batchlens._poll._stream_apis import DynamoDBStreamApi, KinesisApi, StreamApi
    from batchlens._poll._streams import StreamSource

    kind, _, name = options.source.partition(":")
    if not name:
        raise _bad_input(f"SOURCE {options.source!r} names no stream or table")
    api: StreamApi
    if kind == "kinesis":
        api = KinesisApi(client("kinesis"), name)
    else:
        if options.starting_position == "AT_TIMESTAMP":
            raise _bad_input("DynamoDB streams start at TRIM_HORIZON or LATEST, as in Lambda")
        api = DynamoDBStreamApi(client("dynamodb"), client("dynamodbstreams"), name)
    return StreamSource(
        api,
        batch_size=options.batch_size or 100,
        batching_window_s=options.batching_window,
        report_batch_item_failures=bool(options.report_batch_item_failures),
        starting_position=options.starting_position,
        starting_timestamp=options.starting_position_timestamp,
        bisect_on_error=options.bisect_on_error,
        maximum_retry_attempts=options.maximum_retry_attempts,
        maximum_record_age_s=options.maximum_record_age,
        invoke=invoke,
    )


@contextmanager
def _graceful_interrupts(stop: threading.Event, err: TextIO) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): finish the batch in flight, then stop. Second Ctrl-C: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        print("batchlens poll: stopping after the batch in flight (Ctrl-C again to quit now)", file=err, flush=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_telemetry(options: PollOptions, err: TextIO) -> Any:
    from batchlens._cli_traces import start_traces

    setup = start_traces(options.traces, err, metrics_port=options.metrics_port)
    if setup is not None and options.metrics_port is not None:
        port = setup.handle.prometheus_port
        print(f"batchlens poll: Prometheus metrics on http://127.0.0.1:{port}/metrics", file=err)
    return setup


def poll(options: PollOptions, *, err: TextIO = sys.stderr, stop: threading.Event | None = None) -> int:
    """Run ``batchlens poll`` with validated options; return the exit code (0 once stopped as asked).

    Args:
        options: What to poll and how.
        err: Where the summary lines go.
        stop: Set it (from another thread) to stop after the batch in flight, as Ctrl-C does.
    """
    boto3 = _boto3()
    from batchlens._cli_common import _configure_stderr_logging
    from batchlens._cli_handler import LAMBDA, HandlerChoice, as_lambda_handler, load
    from batchlens._poll._context import invoke, make_context
    from batchlens._poll._events import region_and_account

    stop = stop or threading.Event()
    telemetry = _start_telemetry(options, err)
    try:
        handler, kind = load(HandlerChoice(options.handler, options.handler_kind))
        if options.report_batch_item_failures is None:
            options = replace(options, report_batch_item_failures=kind != LAMBDA)
        if kind != LAMBDA:
            handler = as_lambda_handler(handler)
        import structlog

        if not structlog.is_configured():  # a handler module that configures structlog keeps its own output
            _configure_stderr_logging()
        session = boto3.session.Session(region_name=options.region)
        if not session.region_name:
            # no region configured: the one in the queue URL or ARN, else us-east-1 (LocalStack's and moto's default)
            session = boto3.session.Session(region_name=_region_of(options.source) or "us-east-1")

        def call(event: dict[str, Any], source_arn: str) -> Any:
            region, account = region_and_account(source_arn)
            context = make_context(options.function_timeout, region, account)
            if telemetry is None:
                return invoke(handler, event, context, options.function_timeout)
            with telemetry.active():
                invocation = invoke(handler, event, context, options.function_timeout)
            telemetry.flush()  # --traces tree prints the batch here, before its summary line
            return invocation

        source = _source(options, session, call)
        source.until_empty = options.until_empty
        endpoint = endpoint_for(options)
        at = f" at {endpoint}" if endpoint else ""
        reporting = "on" if options.report_batch_item_failures else "off"
        print(
            f"batchlens poll: polling {source.arn}{at} with {options.handler} ({kind} handler; "
            f"report-batch-item-failures {reporting})",
            file=err,
            flush=True,
        )
        return _run(source, options, stop, err)
    finally:
        if telemetry is not None:
            telemetry.shutdown()


def _run(source: Any, options: PollOptions, stop: threading.Event, err: TextIO) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    totals = Totals()
    started = time.monotonic()
    reason = "interrupted"
    code = 0
    try:
        with _graceful_interrupts(stop, err):
            reason = _loop(source, options, stop, totals, err)
    except (BotoCoreError, ClientError) as exc:
        # the endpoint went away or refused a call: the batch in flight was not settled and will come back
        reason = f"AWS error: {' '.join(str(exc).split())}"
        code = 1
    finally:
        dlq = bool(getattr(source, "has_dlq", False))
        totals.write(err, source.settled_name, time.monotonic() - started, reason, dlq=dlq)
    return code


def _region_of(source: str) -> str | None:
    match = re.match(r"https?://sqs\.([a-z0-9-]+)\.amazonaws\.com", source) or re.search(
        r"arn:aws[a-z-]*:[a-z]+:([a-z0-9-]+):", source
    )
    return match.group(1) if match else None


def _loop(source: Any, options: PollOptions, stop: threading.Event, totals: Totals, err: TextIO) -> str:
    if hasattr(source, "on_wait"):
        source.on_wait = lambda note: print(f"batchlens poll: {note}", file=err, flush=True)
    while not stop.is_set():
        summary: BatchSummary | None = source.poll_once(totals.batches + 1, stop)
        if summary is not None:
            totals.add(summary)
            print(summary.line(), file=err, flush=True)
            if options.max_batches is not None and totals.batches >= options.max_batches:
                return "max-batches"
            continue
        if options.until_empty and source.drained():
            return "empty"
        if source.idle_wait_s:
            stop.wait(source.idle_wait_s)
    return "interrupted"
