"""Tests for the telemetry SAM templates in examples/sam: their function, run locally with the template's
environment, emits EMF lines or OTLP spans; the templates wire the dashboard, collector layer and permissions."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from _sam_support import SAM_DIR, load, only_function, resources_of_type
from _xray_support import Daemon, decode, spans_of
from _xray_support import daemon_fixture as daemon_fixture

# -- the telemetry templates' function, run locally with the template's environment ----------------------------------
# The function runs in a child process (this file, run as a script): configure() installs global providers, which a
# process accepts once. The child imports the handler as Lambda does (CodeUri on sys.path, Handler = module.function),
# calls it with a fake context, prints the response and leaves with os._exit, so only what the invocation itself
# flushed is seen: nothing from interpreter shutdown.
REPLY = "@@"
ROOT = SAM_DIR.parents[1]
EMF_SCHEMA = ROOT / "tests" / "schemas" / "emf.schema.json"
QUEUE = "orders-queue"
FUNCTION_NAME = "orders-consumer-function"


def template_environment(name: str) -> dict[str, str]:
    """The function's environment variables as deployed: Globals, then the function's own, Refs resolved to defaults."""
    template = load(name)
    function = only_function(template)
    variables = {
        **template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **function["Properties"].get("Environment", {}).get("Variables", {}),
    }
    resolved = {}
    for key, value in variables.items():
        if isinstance(value, dict):
            (parameter,) = value.values()
            value = template["Parameters"][parameter]["Default"]
        resolved[key] = str(value)
    return resolved


def sample_event() -> dict[str, Any]:
    """Four orders: two fine (one of them redelivered), one declined by the handler, one body that is not JSON."""
    from batchlens.testing import sqs_event

    bodies: list[Any] = [
        {"order_id": 1, "amount": 10},
        {"order_id": 2, "amount": 5000},
        "not json",
        {"order_id": 4, "amount": 20},
    ]
    event = sqs_event(bodies, queue=QUEUE, seed=14)
    event["Records"][3]["attributes"]["ApproximateReceiveCount"] = "2"
    return event


def run_function(name: str, tmp_path: Path, **extra_env: str) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """Run the template's handler on sample_event() in a Lambda-like child process: (response, stdout lines, event)."""
    function = only_function(load(name))["Properties"]
    code_dir = (SAM_DIR / function["CodeUri"]).resolve()
    event = sample_event()
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BATCHLENS_", "AWS_", "LAMBDA_"))}
    env.update(
        template_environment(name),
        AWS_LAMBDA_FUNCTION_NAME=FUNCTION_NAME,
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(load(name)["Globals"]["Function"]["MemorySize"]),
        AWS_REGION="eu-west-1",
        LAMBDA_TASK_ROOT=str(code_dir),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        **extra_env,
    )
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(code_dir), function["Handler"], str(event_path)],
        capture_output=True, text=True, timeout=120, env=env, cwd=code_dir, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    replies = [line for line in lines if line.startswith(REPLY)]
    assert len(replies) == 1, result.stdout[-3000:]
    return json.loads(replies[0][len(REPLY) :]), [line for line in lines if not line.startswith(REPLY)], event


def expected_failures(event: dict[str, Any]) -> list[dict[str, str]]:
    return [{"itemIdentifier": event["Records"][i]["messageId"]} for i in (1, 2)]


def _invoke_handler(code_dir: str, handler: str, event_path: str) -> None:
    """Child side: import the handler as Lambda does, call it once, print the response, leave without shutdown."""
    import importlib

    sys.path.insert(0, code_dir)
    module_name, function_name = handler.rsplit(".", 1)
    handler_function = getattr(importlib.import_module(module_name), function_name)
    from batchlens.testing import lambda_context

    event = json.loads(Path(event_path).read_text())
    response = handler_function(event, lambda_context(function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"]))
    print(REPLY + json.dumps(response), flush=True)
    sys.stderr.flush()
    os._exit(0)


class OTLPReceiver:
    """A local stand-in for the collector extension's OTLP/HTTP receiver: keeps each request's path and body."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str) -> list[bytes]:
        return [body for request_path, body in self.requests if request_path == path]


@pytest.fixture
def otlp_receiver() -> Any:
    receiver = OTLPReceiver()
    yield receiver
    receiver.close()


def test_template_environment_resolves_parameters() -> None:
    """The EMF template's namespace comes from its parameter default; OTEL_METRICS_EXPORTER is left to the default."""
    env = template_environment("sqs_emf_telemetry.yaml")
    assert env["BATCHLENS_EMF_NAMESPACE"] == "batchlens"
    assert "OTEL_METRICS_EXPORTER" not in env
    assert env["OTEL_SERVICE_NAME"] == "orders-consumer"


def test_emf_template_creates_the_bundled_cloudwatch_dashboard() -> None:
    """The EMF stack's dashboard is dashboards/cloudwatch/batchlens-overview.json, filled by Fn::Sub for the stack."""
    template = load("sqs_emf_telemetry.yaml")
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    body, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    bundled = (ROOT / "dashboards" / "cloudwatch" / "batchlens-overview.json").read_text(encoding="utf-8")
    assert json.loads(body) == json.loads(bundled)
    assert variables == {"Namespace": {"Ref": "MetricsNamespace"}, "Region": {"Ref": "AWS::Region"}}
    assert set(re.findall(r"\$\{([^}]*)\}", body)) == set(variables)  # nothing else for Fn::Sub to resolve
    env = template_environment("sqs_emf_telemetry.yaml")
    assert env["BATCHLENS_EMF_NAMESPACE"] == template["Parameters"]["MetricsNamespace"]["Default"]


def test_adot_template_points_the_layer_at_the_shipped_collector_config() -> None:
    """The ADOT template takes the layer ARN as a parameter and loads collector.yaml, a copy of lambda-adot.yaml."""
    template = load("sqs_adot_telemetry.yaml")
    function = only_function(template)["Properties"]
    assert function["Layers"] == [{"Ref": "AdotCollectorLayerArn"}]
    assert template["Parameters"]["AdotCollectorLayerArn"]["Type"] == "String"
    env = template_environment("sqs_adot_telemetry.yaml")
    config_uri = env["OPENTELEMETRY_COLLECTOR_CONFIG_URI"]
    assert config_uri.startswith("/var/task/")  # Lambda unpacks CodeUri into /var/task
    shipped = SAM_DIR / function["CodeUri"] / config_uri.removeprefix("/var/task/")
    assert shipped.read_bytes() == (ROOT / "exporters" / "collector" / "lambda-adot.yaml").read_bytes()
    assert (env["OTEL_TRACES_EXPORTER"], env["OTEL_METRICS_EXPORTER"]) == ("otlp", "otlp")
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in env  # the collector layer needs none (see the template's comment)


def test_adot_template_grants_xray_and_the_emf_log_group() -> None:
    """The role may write X-Ray segments and the awsemf exporter's log group named in collector.yaml."""
    function = only_function(load("sqs_adot_telemetry.yaml"))["Properties"]
    policies = function["Policies"]
    assert "AWSXrayWriteOnlyAccess" in policies
    statements = [s for p in policies if isinstance(p, dict) for s in p["Statement"]]
    actions = {a for s in statements for a in s["Action"]}
    assert {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"} <= actions
    log_group = yaml.safe_load((SAM_DIR / "telemetry_app" / "collector.yaml").read_text())["exporters"]["awsemf"][
        "log_group_name"
    ]
    resources = [r["Fn::Sub"] for s in statements for r in s["Resource"]]
    assert any(r.endswith(f":log-group:{log_group}") for r in resources)


def test_adot_function_sends_spans_and_delta_metrics_to_the_collector(tmp_path: Path, otlp_receiver: Any) -> None:
    """With the ADOT template's environment, the invocation itself delivers its record spans and metrics over OTLP."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    response, _, event = run_function(
        "sqs_adot_telemetry.yaml", tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint
    )
    assert response == {"batchItemFailures": expected_failures(event)}

    spans = []
    for body in otlp_receiver.bodies("/v1/traces"):
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert resource["service.name"] == "orders-consumer"
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    record_spans = [s for s in spans if any(a.key == "messaging.message.id" for a in s.attributes)]
    assert sorted(s.name for s in record_spans) == [f"process {QUEUE}"] * 4
    failed = {
        next(a.value.string_value for a in s.attributes if a.key == "error.type")
        for s in record_spans
        if s.status.code == 2  # STATUS_CODE_ERROR
    }
    # (the error type's module part is error_type()'s business; the class names are the handler's)
    assert {error.rsplit(".", 1)[-1] for error in failed} == {"PaymentDeclined", "JSONDecodeError"}

    metrics = {}
    for body in otlp_receiver.bodies("/v1/metrics"):
        request = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                metrics.update({m.name: m for m in scope.metrics})
    assert {"messaging.client.consumed.messages", "batchlens.records.failed", "messaging.process.duration"} <= set(
        metrics
    )
    consumed = metrics["messaging.client.consumed.messages"].sum
    assert sum(p.as_int for p in consumed.data_points) == 4
    # awsemf keeps the first value of each label set only for delta data (retain_initial_value_of_delta_metric)
    delta = 1  # AGGREGATION_TEMPORALITY_DELTA
    assert consumed.aggregation_temporality == delta
    assert metrics["messaging.process.duration"].histogram.aggregation_temporality == delta


def emf_values(value: Any) -> tuple[float, float]:
    """(number of samples, their sum) of one EMF metric value: a number, an array, or a Values/Counts distribution."""
    if isinstance(value, dict):
        return float(value["Count"]), float(value["Sum"])
    if isinstance(value, list):
        return float(len(value)), float(sum(value))
    return 1.0, float(value)


def test_emf_function_writes_valid_emf_lines_that_add_up(tmp_path: Path) -> None:
    """With the EMF template's environment the invocation prints EMF documents that validate and count the batch."""
    jsonschema = pytest.importorskip("jsonschema")
    if not EMF_SCHEMA.exists():
        pytest.skip("tests/schemas/emf.schema.json is not in this tree")
    validator = jsonschema.Draft202012Validator(json.loads(EMF_SCHEMA.read_text()))
    response, lines, event = run_function("sqs_emf_telemetry.yaml", tmp_path)
    assert response == {"batchItemFailures": expected_failures(event)}

    documents = []
    for line in lines:
        # every stdout line is one JSON object, EMF document or log line (console spans, multi-line, would fail here)
        document = json.loads(line)
        if "_aws" in document:
            errors = sorted(validator.iter_errors(document), key=str)
            assert not errors, [e.message for e in errors]
            documents.append(document)
        else:
            assert "event" in document, document  # a structlog line (configure(logs="json") in Lambda)
    assert documents

    namespace = template_environment("sqs_emf_telemetry.yaml")["BATCHLENS_EMF_NAMESPACE"]
    totals: dict[tuple[str, frozenset[tuple[str, str]]], list[float]] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == namespace
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    key = (metric["Name"], frozenset((d, str(document[d])) for d in dimensions))
                    count, total = emf_values(document[metric["Name"]])
                    entry = totals.setdefault(key, [0.0, 0.0])
                    entry[0] += count
                    entry[1] += total
    queue = {("messaging.system", "aws_sqs"), ("messaging.destination.name", QUEUE)}

    def total(metric: str, *extra: tuple[str, str]) -> list[float]:
        return totals.get((metric, frozenset(queue | set(extra))), [0.0, 0.0])

    assert total("messaging.client.consumed.messages")[1] == 4
    assert total("batchlens.records.failed")[1] == 2
    assert total("batchlens.records.failed", ("error.type", "app.PaymentDeclined"))[1] == 1
    assert total("batchlens.records.redelivered")[1] == 1
    assert total("messaging.process.duration")[0] == 4  # one sample per record
    assert total("batchlens.batch.oldest_record_age")[0] == 1  # one sample per batch
    assert total("batchlens.batch.size", ("batchlens.batch.outcome", "partial_failure")) == [1, 4]


def test_emf_function_sends_the_spans_of_a_sampled_invocation_to_xray(tmp_path: Path, daemon: Daemon) -> None:
    """With no OTEL_TRACES_EXPORTER and no collector, a sampled invocation's spans reach the daemon before it ends."""
    trace = "5759e988bd862e3fe1be46a994272793"
    header = f"Root=1-{trace[:8]}-{trace[8:]};Parent=53995c3f42cd8ad8;Sampled=1"
    response, _lines, event = run_function(
        "sqs_emf_telemetry.yaml", tmp_path, AWS_XRAY_DAEMON_ADDRESS=daemon.address, _X_AMZN_TRACE_ID=header
    )
    assert response == {"batchItemFailures": expected_failures(event)}
    spans = spans_of([decode(d) for d in daemon.datagrams()])
    assert len(spans) == 1 + len(event["Records"])
    assert {span.trace_id.hex() for span in spans} == {trace}


if __name__ == "__main__":
    _invoke_handler(*sys.argv[1:4])
