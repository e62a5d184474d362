"""An SQS consumer that emits its telemetry: the function behind sqs_emf_telemetry.yaml and sqs_adot_telemetry.yaml.

``configure()`` runs once per cold start and takes everything from the environment the template sets:

- ``sqs_emf_telemetry.yaml``: no ``OTEL_METRICS_EXPORTER``, so in Lambda the metrics go out as CloudWatch Embedded
  Metric Format lines on stdout (namespace ``BATCHLENS_EMF_NAMESPACE``); no ``OTEL_TRACES_EXPORTER``, so with no
  collector the spans of sampled invocations go to X-Ray by UDP; no collector, no extra infrastructure.
- ``sqs_adot_telemetry.yaml``: ``OTEL_TRACES_EXPORTER=otlp`` and ``OTEL_METRICS_EXPORTER=otlp`` to the ADOT
  collector layer on localhost, which sends spans to X-Ray and metrics to CloudWatch (``collector.yaml``).

Given the Lambda context, ``process_partial_response`` flushes spans and metrics before returning, so the
EMF lines (or the OTLP exports) leave before the sandbox freezes.
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord
from batchlens.telemetry import configure

telemetry = configure()  # module level: once per cold start; exporters from OTEL_* / BATCHLENS_* variables
processor = BatchProcessor(event_type=EventType.SQS)


class PaymentDeclined(Exception):
    """An order the payment provider refused: the record fails, and SQS redelivers it."""


def record_handler(record: SQSRecord) -> str:
    order = record.json_body  # a body that is not JSON fails the record with a JSONDecodeError
    if order.get("amount", 0) > 1000:
        raise PaymentDeclined("amount above the card limit")
    return str(order["order_id"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
