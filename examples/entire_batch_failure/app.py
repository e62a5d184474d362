"""Working with full batch failures: return a response instead of raising.

Seed section: "Working with full batch failures".

By default, when every record of a batch fails, the processor raises ``BatchProcessingError`` so the
invocation shows up as an error. With small batches, or when failures are expected (errors used as flow
control), that makes Lambda scale the function down. ``raise_on_entire_batch_failure=False`` returns the
normal response listing every record instead.

Run it: ``python examples/entire_batch_failure/app.py`` - neither message is JSON; both are reported and
the invocation succeeds.
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> Any:
    return record.json_body


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
