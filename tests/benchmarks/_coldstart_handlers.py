"""The handler modules bench_coldstart.py deploys: batchlens as its README deploys it (D), Powertools' kit (K).

Each is written to a file and imported by a fresh interpreter, as Lambda's runtime imports the handler module; the
driver then optionally runs one invocation with a one-record SQS event and a Lambda-like context. Both sides run in
the same Lambda-like environment (``lambda_environment``): X-Ray's daemon address points at a local UDP port and the
invocation's trace header is sampled, so batchlens' ``configure()`` takes its X-Ray branch and Powertools' Tracer
sends its segment. Like batchlens' defaults, the Powertools handler writes a log line, a metric and a subsegment
for the record (as its documentation shows), so the first invocation does comparable work on both sides.
"""

from __future__ import annotations

DEPLOYED = """
from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.telemetry import configure

configure(service_name="orders")
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record):
    return record.body


def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
"""

KIT = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

logger = Logger(service="orders")
tracer = Tracer(service="orders")
metrics = Metrics(namespace="orders", service="orders")
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record):
    logger.info("record processed", extra={"message_id": record.message_id})
    metrics.add_metric(name="RecordsProcessed", unit=MetricUnit.Count, value=1)
    return record.body


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
"""

INVOKE = """
import time as _time


class _Context:
    function_name = "orders"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/orders"
    log_stream_name = "2026/12/08/[$LATEST]0123456789abcdef"
    _deadline = _time.monotonic() + 30.0

    def get_remaining_time_in_millis(self):
        return int((self._deadline - _time.monotonic()) * 1000)


_event = {"Records": [{
    "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
    "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
    "body": "hello",
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1545082649183",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1545082649185",
    },
    "messageAttributes": {},
    "md5OfBody": "5d41402abc4b2a76b9719d911017c592",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
    "awsRegion": "us-east-1",
}]}
_response = handler.lambda_handler(_event, _Context())
assert _response == {"batchItemFailures": []}, _response
"""


# D's cold start, one step at a time: the third-party parts first (each import's increment), then batchlens' own;
# memory is the current RSS (Linux /proc), time the wall time of each step.
STEPS = (
    """
import resource, sys, time
_steps = []
_last = (time.perf_counter(), 0, 0)  # the first step shows the absolute RSS and module count

def _rss_kib():
    # the current RSS: max RSS would start at the parent's, which a child inherits across fork and exec
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024

def _step(name):
    global _last
    now = (time.perf_counter(), _rss_kib(), len(sys.modules))
    _steps.append((name, now[0] - _last[0], now[1] - _last[1], now[2] - _last[2]))
    _last = now

_step("interpreter start (absolute RSS and modules)")
import opentelemetry.trace, opentelemetry.metrics
_step("opentelemetry-api (trace, metrics)")
import structlog
_step("structlog (its __init__ imports stdlib -> asyncio -> ssl)")
import opentelemetry.sdk.resources, opentelemetry.sdk.trace, opentelemetry.sdk.trace.export
_step("opentelemetry-sdk trace (+ resources)")
import opentelemetry.sdk.metrics, opentelemetry.sdk.metrics.export
_step("opentelemetry-sdk metrics")
import orjson
_step("orjson")
from batchlens import BatchProcessor, EventType, process_partial_response
_step("from batchlens import BatchProcessor, ...")
from batchlens.telemetry import configure
_step("from batchlens.telemetry import configure")
configure(service_name="orders")
_step("configure(service_name=...)")
processor = BatchProcessor(event_type=EventType.SQS)
_step("BatchProcessor(EventType.SQS)")

class handler:
    @staticmethod
    def lambda_handler(event, context):
        return process_partial_response(event, lambda record: record.body, processor, context)
"""
    + INVOKE
    + """
_step("first invocation (one record, span sent)")
import json
print(json.dumps(_steps))
"""
)


def program(module_dir: str, module: str, invoke: bool) -> str:
    """Code for ``python -c``: import the handler module from ``module_dir``, then optionally invoke it once."""
    code = f"import sys\nsys.path.insert(0, {module_dir!r})\nimport {module} as handler\n"
    return code + (INVOKE if invoke else "")


def lambda_environment(udp_port: int) -> dict[str, str]:
    """A Lambda-like environment whose X-Ray daemon is a local UDP port and whose invocation is sampled."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{udp_port}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    }
