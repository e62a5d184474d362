"""Processing Kafka (Amazon MSK or self-managed) batches.

Not a section of the seed page, but supported by Powertools and batchlens alike: ``EventType.Kafka``.
Records arrive grouped by topic-partition; a failure is reported as ``{"partition": "<topic>-<partition>",
"offset": <offset>}`` and Lambda resumes that partition from the lowest reported offset.

Run it: ``python examples/kafka/app.py`` - payment P-2 has a non-numeric amount.
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import KafkaEventRecord

processor = BatchProcessor(event_type=EventType.Kafka)


def record_handler(record: KafkaEventRecord) -> str:
    payment = record.json_value  # base64-decoded value, parsed as JSON
    if not isinstance(payment["amount"], int | float):
        raise TypeError(f"payment {payment['payment_id']}: amount must be a number")
    return f"{record.topic}/{record.partition}@{record.offset}"


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
