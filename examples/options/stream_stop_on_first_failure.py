"""Checkpoint semantics for streams: ``BatchProcessor(EventType.KinesisDataStreams, stop_on_first_failure=True)``.

By default a stream processor runs every record and reports each failure; Lambda then restarts the shard
from the lowest failed sequence number, so records after it that succeeded are processed again. With
``stop_on_first_failure=True`` the processor stops at the first failed record and reports it and every later
record (``StreamCircuitBreakerError``, outcome ``skipped``): no record is processed after a failed one, which
keeps per-shard order for handlers with side effects. Works for Kinesis, DynamoDB Streams and Kafka, with
``BatchProcessor`` and ``AsyncBatchProcessor``; SQS refuses it (use ``SqsFifoPartialProcessor`` for ordered
queues). ``BATCHLENS_STOP_ON_FIRST_FAILURE=true`` turns it on for stream processors from the environment.

Run it: ``python examples/options/stream_stop_on_first_failure.py`` - record 2 of 6 fails.
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.data_classes import KinesisStreamRecord

processor = BatchProcessor(EventType.KinesisDataStreams, stop_on_first_failure=True)

applied: list[int] = []


def record_handler(record: KinesisStreamRecord) -> None:
    reading = record.kinesis.data_as_json()
    if reading["value"] < 0:
        raise ValueError(f"negative reading {reading['value']} at position {reading['seq']}")
    applied.append(reading["seq"])  # a side effect that must happen in order


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    from batchlens.testing import kinesis_event, lambda_context

    sample = kinesis_event([{"seq": i, "value": -1 if i == 2 else i} for i in range(6)], seed=1)
    response = lambda_handler(sample, lambda_context())
    print(f"applied in order: {applied}")
    print(f"reported for retry (failed + later): {len(response['batchItemFailures'])} of 6")
