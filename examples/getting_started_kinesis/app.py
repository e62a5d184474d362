"""Getting started with Kinesis Data Streams.

Seed section: "Processing messages from Kinesis" (Recommended).

Same three steps as SQS with ``EventType.KinesisDataStreams``. A failed record is reported by its sequence
number; Lambda then restarts the shard from the lowest reported sequence number, so records after it are
delivered again: keep the handler idempotent.

Run it: ``python examples/getting_started_kinesis/app.py`` - the second record's data is not JSON.
"""

from __future__ import annotations

from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import KinesisStreamRecord

processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
logger = structlog.get_logger()


def record_handler(record: KinesisStreamRecord) -> None:
    click = record.kinesis.data_as_json()  # base64-decoded, then parsed as JSON
    logger.info("click", page=click["page"], user=click["user"], shard_key=record.kinesis.partition_key)


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=processor,
        context=context,
    )


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
