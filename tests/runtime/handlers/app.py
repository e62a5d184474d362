"""The README's Lambda set-up: configure() at module level, process_partial_response in the handler.

A record whose JSON body has ``"fail": true`` raises. Each invocation prints one ``{"probe": ...}`` line (request
id, process id, ``_X_AMZN_TRACE_ID``, the context's w3c trace context) so the tests can tell workers apart.
"""

import json
import os
import sys

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.telemetry import configure

telemetry = configure(service_name="orders")
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record):
    body = record.json_body
    if body.get("fail"):
        raise ValueError("order rejected")
    return body.get("order_id")


def lambda_handler(event, context):
    w3c = context.w3c() if hasattr(context, "w3c") else None
    probe = {
        "request_id": context.aws_request_id,
        "pid": os.getpid(),
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
        "w3c": w3c,
    }
    sys.stdout.write(json.dumps({"probe": probe}) + "\n")
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
