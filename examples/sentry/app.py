"""Sending every failed record to Sentry, by configuration.

Seed section: "FAQ - Integrating exception handling with Sentry.io".

The Powertools recipe subclasses the processor and calls ``capture_exception()`` in ``failure_handler``.
batchlens does it for you: switch Sentry on and every failed record becomes one Sentry event, tagged with
the event source, queue or stream, message id and error type, and flushed before the invocation ends.

Configuration only (nothing in code) - set in the function's environment::

    BATCHLENS_SENTRY_ENABLED=true
    BATCHLENS_SENTRY_DSN=https://<key>@<org>.ingest.sentry.io/<project>   # or SENTRY_DSN

or in code: ``Telemetry(sentry=True, sentry_dsn=os.environ["SENTRY_DSN"])``. If the application already
called ``sentry_sdk.init()``, batchlens uses that client. Needs ``pip install 'batchlens[sentry]'``;
sentry_sdk is imported only when Sentry is switched on, so it costs no cold-start time otherwise.

Run it: ``BATCHLENS_SENTRY_ENABLED=true BATCHLENS_SENTRY_DSN=... python examples/sentry/app.py``
(without the variables it runs the same, without Sentry).
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, Telemetry, process_partial_response
from batchlens.data_classes import SQSRecord

# Read once at cold start: BATCHLENS_SENTRY_ENABLED, BATCHLENS_SENTRY_DSN and the other BATCHLENS_* settings.
# (Processors built without telemetry= do the same; it is spelled out here to show where it comes from.)
TELEMETRY = Telemetry.from_env()
processor = BatchProcessor(event_type=EventType.SQS, telemetry=TELEMETRY)


class OutOfStockError(Exception):
    """The ordered item cannot be delivered."""


def record_handler(record: SQSRecord) -> str:
    order = record.json_body
    if order["item"].startswith("fail"):
        raise OutOfStockError(f"order {order['order_id']}: {order['item']}")
    return str(order["order_id"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    print(f"Sentry enabled: {TELEMETRY.sentry}")
    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
