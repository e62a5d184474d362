"""Disabling response capture for handlers that return large results.

Seed section: "Caveats - Tracer response auto-capture for large batch sizes".

By default batchlens records what the record handler returns on the record's span, redacting sensitive
keys and truncating to ``capture_max_bytes_per_record`` (1 KiB per record) and
``capture_max_bytes_per_batch`` (32 KiB per batch). That keeps traces far below the 64 KB X-Ray segment
limit that Powertools' Tracer can exceed on large batches. When results are large or sensitive anyway,
switch capture off:

* in code: ``Telemetry(capture_response=False)`` (shown here), or
* by configuration: ``BATCHLENS_CAPTURE_RESPONSE=false`` in the function's environment.

Spans, metrics and logs are still emitted; only the captured results are left out.

Run it: ``python examples/disable_response_capture/app.py``.
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, Telemetry, process_partial_response
from batchlens.data_classes import SQSRecord

TELEMETRY = Telemetry(capture_response=False)
processor = BatchProcessor(event_type=EventType.SQS, telemetry=TELEMETRY)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    request = record.json_body
    # A large result: thousands of rows that have no business being copied into a trace.
    rows = [{"row": i, "value": f"{request['report_id']}-{i:05d}"} for i in range(request["rows"])]
    return {"report_id": request["report_id"], "rows": rows}


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
