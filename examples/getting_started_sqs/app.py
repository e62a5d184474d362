"""Getting started with SQS: one function per record, partial failures reported for you.

Seed section: "Processing messages from SQS" (Recommended).

Three steps, as with Powertools: create a ``BatchProcessor`` for ``EventType.SQS``, write a function that
handles one record, and hand both to ``process_partial_response``. The response lists only the messages
that failed, so SQS deletes the others and redelivers just those.

There is no Tracer or Logger to wire up: batchlens itself opens a span per record, counts successes and
failures and writes one structured log entry per record (OpenTelemetry API + structlog).

Run it: ``python examples/getting_started_sqs/app.py`` - the second message is not JSON, so it is reported.
"""

from __future__ import annotations

from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)  # step 1: module level, reused by warm invocations
logger = structlog.get_logger()


def record_handler(record: SQSRecord) -> str:  # step 2: one record at a time
    order = record.json_body  # raises for a body that is not JSON: the record fails, the batch goes on
    logger.info("order received", order_id=order["order_id"], item=order["item"])
    return str(order["order_id"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(  # step 3: {"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}
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
