"""Stop a stream batch at the first failure (batchlens addition).

Not in the seed: for Kinesis, DynamoDB Streams and Kafka, a stream processor runs every record and reports
each failure; Lambda restarts from the lowest reported sequence number, so records after the failure that
succeeded run again on the retry. When they must not be applied before the failed one (a ledger, state
changes of one entity), ``stop_on_first_failure=True`` stops at the first failure: the handler is not called
for later records, which are reported as failed (``StreamCircuitBreakerError``, outcome ``skipped`` in the
log entry and on the span) and come back in order on the retry. No record is processed after a failed one
(checkpoint semantics); it is the stream counterpart of ``SqsFifoPartialProcessor``.

It works with ``BatchProcessor`` and ``AsyncBatchProcessor`` (which then awaits records one at a time); SQS
processors raise ``ValueError``, and it cannot be combined with ``max_workers > 1``. Configuration
alternative: ``BATCHLENS_STOP_ON_FIRST_FAILURE=true`` (stream processors only; SQS processors ignore it).

Run it: ``python examples/stream_stop_on_first_failure/app.py`` - the second ledger entry is malformed,
so the third and fourth are not applied either: ``APPLIED`` holds only the first entry's sequence number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import KinesisStreamRecord

processor = BatchProcessor(event_type=EventType.KinesisDataStreams, stop_on_first_failure=True)

BALANCES: dict[str, Decimal] = {}  # stands in for the account store
APPLIED: list[str] = []  # sequence numbers in the order their entries were applied


def record_handler(record: KinesisStreamRecord) -> str:
    entry = record.kinesis.data_as_json()
    delta = Decimal(entry["delta"]) if isinstance(entry["delta"], int) else None
    if delta is None:
        raise ValueError(f"delta must be an integer, got {entry['delta']!r}")
    BALANCES[entry["account"]] = BALANCES.get(entry["account"], Decimal(0)) + delta
    APPLIED.append(record.kinesis.sequence_number)  # a side effect that must happen in shard order
    return str(BALANCES[entry["account"]])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    response = lambda_handler(sample, lambda_context())
    print(f"balances: { {k: str(v) for k, v in BALANCES.items()} }")
    print(f"applied in order: {len(APPLIED)} of {len(sample['Records'])} entries, then stopped")
    print(json.dumps(response))
