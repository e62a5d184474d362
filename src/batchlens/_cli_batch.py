"""What ``demo``, ``run`` and ``events`` share: sample events, event types and processors.

Standard library only at import; batchlens and its testing factories are imported when called.
"""

from __future__ import annotations

import random
import time
from typing import Any

from batchlens._cli_common import BadInput

__all__ = [
    "DEFAULT_FIXED_TIME_MS",
    "EVENT_KINDS",
    "PROCESSORS",
    "check_event_type",
    "default_processor",
    "event_type_for",
    "make_event",
    "processor_for",
]

EVENT_KINDS = ("sqs", "fifo", "kinesis", "dynamodb", "kafka")
PROCESSORS = ("sync", "async", "fifo", "fifo-async")
DEFAULT_FIXED_TIME_MS = 1_700_000_000_000
"""The instant ``--fixed-time`` uses when given without a value (2023-11-14T22:13:20Z)."""

_EVENT_SOURCES = {
    "sqs": "aws:sqs",
    "fifo": "aws:sqs",
    "kinesis": "aws:kinesis",
    "dynamodb": "aws:dynamodb",
    "kafka": ("aws:kafka", "SelfManagedKafka"),
}


def make_event(
    kind: str, count: int, fail_rate: float, seed: int | None, groups: int = 1, timestamp_ms: int | None = None
) -> dict[str, Any]:
    """A sample event of ``kind`` whose records carry producer trace headers (``AWSTraceHeader``, ``traceparent``).

    ``seed`` fixes ids, payloads, the failing records and the trace headers; ``timestamp_ms`` fixes the clock
    (default: now, so record ages are those of a fresh batch).
    """
    from batchlens import testing

    now_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    clock: dict[str, Any] = {"seed": seed, "timestamp_ms": now_ms}
    if kind == "sqs":
        event = testing.sqs_event(count=count, fail_rate=fail_rate, **clock)
    elif kind == "fifo":
        event = testing.sqs_fifo_event(count=count, fail_rate=fail_rate, groups=groups, **clock)
    elif kind == "kinesis":
        event = testing.kinesis_event(count=count, fail_rate=fail_rate, **clock)
    elif kind == "dynamodb":
        event = testing.dynamodb_event(count=count, fail_rate=fail_rate, **clock)
    else:
        event = testing.kafka_event(count=count, fail_rate=fail_rate, **clock)
    _add_producer_traces(event, random.Random(None if seed is None else seed + 1))
    return event


def _add_producer_traces(event: dict[str, Any], rng: random.Random) -> None:
    """Give each record the trace headers its producer would have set, where the source carries any.

    SQS: ``AWSTraceHeader`` (X-Ray, as SQS sets it) and a ``traceparent`` message attribute (an OpenTelemetry
    producer) naming the same span; Kafka: a ``traceparent`` header. Kinesis and DynamoDB events carry none.
    """
    for record in event.get("Records") or []:
        if record.get("eventSource") != "aws:sqs":
            return
        trace, span = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
        record["attributes"]["AWSTraceHeader"] = f"Root=1-{trace[:8]}-{trace[8:]};Parent={span};Sampled=1"
        record["messageAttributes"]["traceparent"] = {
            "stringValue": f"00-{trace}-{span}-01",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    for records in (event.get("records") or {}).values():
        for record in records:
            traceparent = f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"
            record.setdefault("headers", []).append({"traceparent": list(traceparent.encode("ascii"))})


def event_type_for(kind: str) -> Any:
    from batchlens import EventType

    return {
        "sqs": EventType.SQS,
        "fifo": EventType.SQS,
        "kinesis": EventType.KinesisDataStreams,
        "dynamodb": EventType.DynamoDBStreams,
        "kafka": EventType.Kafka,
    }[kind]


def check_event_type(kind: str, event: Any) -> None:
    """Refuse an event whose ``eventSource`` is not ``kind``'s (a record without one is let through).

    Kafka events carry ``eventSource`` at the top level, the others on every record.
    """
    expected = _EVENT_SOURCES[kind]
    accepted = expected if isinstance(expected, tuple) else (expected,)
    if not isinstance(event, dict):
        return
    if kind == "kafka":
        sources = [event.get("eventSource")]
    else:
        records = event.get("Records")
        sources = [r.get("eventSource") for r in records if isinstance(r, dict)] if isinstance(records, list) else []
    for index, source in enumerate(sources):
        if isinstance(source, str) and source not in accepted:
            where = "the event's eventSource" if kind == "kafka" else f"record {index}'s eventSource"
            raise BadInput(f"--event-type {kind} expects eventSource {accepted[0]!r}, but {where} is {source!r}")


def default_processor(kind: str | None, event_type: Any, event: Any, handler: Any) -> str:
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


def processor_for(event_type: Any, processor: str, telemetry: Any = None) -> Any:
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
