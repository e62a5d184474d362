"""Stop a stream batch at the first failure (batchlens addition).

Not in the seed: for Kinesis, DynamoDB Streams and Kafka, Lambda restarts from the lowest reported
sequence number, so the records after a failure are delivered again anyway. When they must not be applied
before the failed one (a ledger, state changes of one entity), ``stop_on_first_failure=True`` stops at the
first failure: the handler is not called for later records, which are reported as failed
(``StreamCircuitBreakerError``) and come back in order on the retry. It is the stream counterpart of
``SqsFifoPartialProcessor``. Configuration alternative: ``BATCHLENS_STOP_ON_FIRST_FAILURE=true``.

Run it: ``python examples/stream_stop_on_first_failure/app.py`` - the second ledger entry is malformed,
so the third and fourth are not applied either.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import KinesisStreamRecord

processor = BatchProcessor(event_type=EventType.KinesisDataStreams, stop_on_first_failure=True)

BALANCES: dict[str, Decimal] = {}  # stands in for the account store


def record_handler(record: KinesisStreamRecord) -> str:
    entry = record.kinesis.data_as_json()
    delta = Decimal(entry["delta"]) if isinstance(entry["delta"], int) else None
    if delta is None:
        raise ValueError(f"delta must be an integer, got {entry['delta']!r}")
    BALANCES[entry["account"]] = BALANCES.get(entry["account"], Decimal(0)) + delta
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
    print(json.dumps(response))
