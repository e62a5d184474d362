"""The three configurations of ``bench_kit.py``, each a Lambda handler ``(event, context) -> response``.

A  Powertools' ``BatchProcessor`` with no telemetry (the anchor).
P  Powertools' kit: ``BatchProcessor`` + ``Logger`` (``inject_lambda_context``, one ``info`` line per record,
   ``logger.exception`` per failure) + ``Tracer`` (aws-xray-sdk; ``capture_lambda_handler`` and one subsegment per
   record with one annotation, sent by UDP to ``AWS_XRAY_DAEMON_ADDRESS``) + ``Metrics`` (one count per record,
   ``log_metrics`` flushing EMF to stdout).
L  batchlens as the README deploys it: ``configure(service_name=...)`` with the Lambda defaults of this branch
   (whatever traces exporter it picks: ``OTEL_TRACES_EXPORTER`` when set), a ``BatchProcessor`` and
   ``process_partial_response(event, handler, processor, context)``, which flushes before returning.

Each is built in a fresh interpreter whose environment looks like Lambda's (see ``bench_kit.lambda_environment``).
The record handler does the same trivial work everywhere: records whose payload is ``"fail"`` raise ValueError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]
SERVICE = "bench"


class LambdaContext:
    """The attributes Powertools' Logger and batchlens read from Lambda's context, with a minute left."""

    function_name = SERVICE
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 1024
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2026/12/08/[$LATEST]bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def payload(record: Any) -> str:
    kinesis = getattr(record, "kinesis", None)
    if kinesis is not None:
        text: str = kinesis.data_as_text()
        return text
    body: str = record.body
    return body


def work(record: Any) -> str:
    """The record handler's own work: nothing, or a ValueError for a failing record."""
    if payload(record) == "fail":
        raise ValueError("record failed")
    return "ok"


def _event_type(module: Any, source: str) -> Any:
    return module.EventType.SQS if source == "sqs" else module.EventType.KinesisDataStreams


def anchor(source: str) -> Handler:
    """A: Powertools' BatchProcessor, bare."""
    from aws_lambda_powertools.utilities import batch

    processor = batch.BatchProcessor(event_type=_event_type(batch, source))

    def handler(event: dict[str, Any], context: Any) -> Any:
        return batch.process_partial_response(event=event, record_handler=work, processor=processor, context=context)

    return handler


def powertools_kit(source: str) -> Handler:
    """P: Powertools' BatchProcessor with its Logger, Tracer and Metrics doing per-record work."""
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities import batch

    logger = Logger(service=SERVICE)
    tracer = Tracer(service=SERVICE)
    metrics = Metrics(namespace=SERVICE, service=SERVICE)
    processor = batch.BatchProcessor(event_type=_event_type(batch, source))
    in_subsegment = tracer.provider.in_subsegment

    def record_handler(record: Any) -> str:
        with in_subsegment("## record") as subsegment:
            subsegment.put_annotation("message_id", record.message_id if source == "sqs" else record.event_id)
            metrics.add_metric(name="RecordsProcessed", unit=MetricUnit.Count, value=1)
            logger.info("processing record")
            try:
                return work(record)
            except ValueError:
                logger.exception("record failed")
                raise

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> Any:
        return batch.process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler


def record_sampling_supported() -> bool:
    """Whether this branch's ``Telemetry`` takes ``record_sampling``."""
    import dataclasses

    import batchlens

    telemetry = batchlens.Telemetry
    return dataclasses.is_dataclass(telemetry) and any(
        field.name == "record_sampling" for field in dataclasses.fields(telemetry)
    )


def batchlens_lambda(source: str) -> Handler:
    """L: batchlens with configure()'s Lambda defaults; process_partial_response flushes with the context.

    ``BENCH_RECORD_SAMPLING`` (set by bench_kit for the Kinesis batch when Telemetry takes it) samples records.
    """
    import os

    import batchlens
    from batchlens.telemetry import configure

    configure(service_name=SERVICE)
    sampling = os.environ.get("BENCH_RECORD_SAMPLING")
    options: dict[str, Any] = {}
    if sampling:
        options["telemetry"] = batchlens.Telemetry(record_sampling=float(sampling))  # type: ignore[call-arg]
    processor = batchlens.BatchProcessor(event_type=_event_type(batchlens, source), **options)

    def handler(event: dict[str, Any], context: Any) -> Any:
        return batchlens.process_partial_response(event, work, processor, context)

    return handler


CONFIGS: dict[str, Callable[[str], Handler]] = {"A": anchor, "P": powertools_kit, "L": batchlens_lambda}
