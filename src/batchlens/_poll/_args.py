"""The ``batchlens poll`` arguments, with Lambda's names, defaults and ranges, checked before anything starts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from batchlens._cli_handler import add_handler_flags, handler_choice
from batchlens._cli_traces import add_traces_flag

__all__ = ["PollOptions", "add_parser", "options_from_args"]

STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")


@dataclass(frozen=True)
class PollOptions:
    """A validated ``batchlens poll`` configuration."""

    source: str
    handler: str
    handler_kind: str | None = None  # "lambda" / "record" from the flag; None: the signature decides
    endpoint_url: str | None = None
    region: str | None = None
    batch_size: int | None = None  # None: Lambda's default for the source (SQS 10, streams 100)
    batching_window: float = 0.0
    function_timeout: float = 3.0
    report_batch_item_failures: bool | None = None  # None: on for a record handler, off (Lambda's default) else
    starting_position: str = "TRIM_HORIZON"
    starting_position_timestamp: datetime | None = None
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age: int = -1
    max_batches: int | None = None
    until_empty: bool = False
    metrics_port: int | None = None
    traces: str | None = None  # --traces; None: OTEL_TRACES_EXPORTER, else no tracing


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``poll`` subcommand to the CLI's subparsers."""
    poll: argparse.ArgumentParser = sub.add_parser(
        "poll",
        help="run your Lambda handler against a real SQS queue, Kinesis stream or DynamoDB stream",
        description=(
            "Poll SOURCE like Lambda's event source mapping and invoke HANDLER(event, context) with each batch. "
            "SOURCE: an SQS queue URL (or ARN), kinesis:STREAM (name or ARN), dynamodb:TABLE (its stream) or "
            "dynamodb:STREAM_ARN. A queue URL on a host that is not AWS's (localhost, 127.0.0.1, ...) is its own "
            "endpoint unless --endpoint-url says otherwise. Needs boto3: pip install 'batchlens[local]'."
        ),
    )
    poll.add_argument("source", metavar="SOURCE")
    add_handler_flags(poll)
    poll.add_argument("--endpoint-url", help="AWS endpoint (LocalStack, moto, ElasticMQ); default AWS_ENDPOINT_URL")
    poll.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / the profile's)")
    poll.add_argument("--batch-size", type=int, help="records per invocation (default: SQS 10, streams 100)")
    poll.add_argument("--batching-window", type=float, default=0.0, help="seconds to gather a batch, 0-300 (default 0)")
    poll.add_argument(
        "--function-timeout", type=float, default=3.0, help="seconds per invocation, as Lambda's Timeout (default 3)"
    )
    poll.add_argument(
        "--report-batch-item-failures",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "read batchItemFailures from the response (FunctionResponseTypes; default: off, Lambda's default, "
            "for a Lambda handler; on for a record handler, whose batchlens processor reports them)"
        ),
    )
    poll.add_argument(
        "--starting-position", choices=STARTING_POSITIONS, default="TRIM_HORIZON", help="streams (default TRIM_HORIZON)"
    )
    poll.add_argument("--starting-position-timestamp", help="for AT_TIMESTAMP (Kinesis): epoch seconds or ISO 8601")
    poll.add_argument(
        "--bisect-on-error",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="streams: split a failed batch in two before retrying (default off)",
    )
    poll.add_argument(
        "--maximum-retry-attempts", type=int, default=-1, help="streams: -1 (no limit, default) or 0-10000"
    )
    poll.add_argument(
        "--maximum-record-age", type=int, default=-1, help="streams: seconds, -1 (no limit, default) or 60-604800"
    )
    stop = poll.add_mutually_exclusive_group()
    stop.add_argument("--max-batches", type=int, help="stop after N batches")
    stop.add_argument("--until-empty", action="store_true", help="stop once the queue or every shard is drained")
    poll.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (0: a free one)")
    add_traces_flag(poll, None, "stderr")
    return poll


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--starting-position-timestamp {text!r} is neither epoch seconds nor ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def options_from_args(args: argparse.Namespace) -> PollOptions:
    """Check the parsed arguments against Lambda's ranges; raise ValueError naming the first bad one."""
    if args.batch_size is not None and not 1 <= args.batch_size <= 10_000:
        raise ValueError(f"--batch-size {args.batch_size} is out of range 1-10000")
    if not 0 <= args.batching_window <= 300:
        raise ValueError(f"--batching-window {args.batching_window} is out of range 0-300 seconds")
    if not 0 < args.function_timeout <= 900:
        raise ValueError(f"--function-timeout {args.function_timeout} is out of range (0, 900] seconds")
    if not -1 <= args.maximum_retry_attempts <= 10_000:
        raise ValueError(f"--maximum-retry-attempts {args.maximum_retry_attempts} is not -1 or 0-10000")
    if args.maximum_record_age != -1 and not 60 <= args.maximum_record_age <= 604_800:
        raise ValueError(f"--maximum-record-age {args.maximum_record_age} is not -1 or 60-604800 seconds")
    if args.max_batches is not None and args.max_batches < 1:
        raise ValueError("--max-batches must be at least 1")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65_535:
        raise ValueError(f"--metrics-port {args.metrics_port} is not a port")
    timestamp = None
    if args.starting_position == "AT_TIMESTAMP":
        if not args.starting_position_timestamp:
            raise ValueError("--starting-position AT_TIMESTAMP needs --starting-position-timestamp")
        timestamp = _timestamp(args.starting_position_timestamp)
    elif args.starting_position_timestamp:
        raise ValueError("--starting-position-timestamp goes with --starting-position AT_TIMESTAMP")
    choice = handler_choice(args)
    return PollOptions(
        source=args.source,
        handler=choice.spec,
        handler_kind=choice.kind,
        endpoint_url=args.endpoint_url,
        region=args.region,
        batch_size=args.batch_size,
        batching_window=args.batching_window,
        function_timeout=args.function_timeout,
        report_batch_item_failures=args.report_batch_item_failures,
        starting_position=args.starting_position,
        starting_position_timestamp=timestamp,
        bisect_on_error=args.bisect_on_error,
        maximum_retry_attempts=args.maximum_retry_attempts,
        maximum_record_age=args.maximum_record_age,
        max_batches=args.max_batches,
        until_empty=args.until_empty,
        metrics_port=args.metrics_port,
        traces=getattr(args, "traces", None),
    )
