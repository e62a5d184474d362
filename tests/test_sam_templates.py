"""Tests for the SAM templates in examples/sam: they pass cfn-lint, configure partial batch responses and DLQs, and
the telemetry templates' function, run locally with the template's environment, emits EMF lines or OTLP spans."""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

SAM_DIR = Path(__file__).resolve().parent.parent / "examples" / "sam"
EXAMPLES_DIR = SAM_DIR.parent

STREAM_TEMPLATES = {
    "kinesis_batch_processing.yaml": ("Kinesis", "AWS::Kinesis::Stream"),
    "dynamodb_batch_processing.yaml": ("DynamoDB", "AWS::DynamoDB::Table"),
}
TELEMETRY_TEMPLATES = ["sqs_emf_telemetry.yaml", "sqs_adot_telemetry.yaml"]
SQS_TEMPLATES = ["sqs_batch_processing.yaml", "custom_partial_processor_dynamodb_table.yaml", *TELEMETRY_TEMPLATES]
ALL_TEMPLATES = sorted([*STREAM_TEMPLATES, *SQS_TEMPLATES])


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...) into their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(name: str) -> dict[str, Any]:
    with (SAM_DIR / name).open() as handle:
        return dict(yaml.load(handle, Loader=_CfnLoader))


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def only_function(template: dict[str, Any]) -> dict[str, Any]:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert len(functions) == 1
    return next(iter(functions.values()))


def runtime_of(template: dict[str, Any], function: dict[str, Any]) -> str:
    return str(function["Properties"].get("Runtime") or template["Globals"]["Function"]["Runtime"])


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("cfn-lint")
    command = [executable] if executable else [sys.executable, "-m", "cfnlint"]
    # One process for several files: cfn-lint spends most of its time starting up.
    args = [*command, "--format", "json", *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def lint_of_shipped_templates() -> subprocess.CompletedProcess[str]:
    return cfn_lint(*(SAM_DIR / name for name in ALL_TEMPLATES))


def test_every_template_is_covered() -> None:
    """The tests below cover every template shipped in examples/sam."""
    assert sorted(p.name for p in SAM_DIR.glob("*.yaml")) == ALL_TEMPLATES


def test_cfn_lint_exits_zero_for_the_shipped_templates(
    lint_of_shipped_templates: subprocess.CompletedProcess[str],
) -> None:
    """cfn-lint, run on all templates, exits 0."""
    result = lint_of_shipped_templates
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_template_passes_cfn_lint(name: str, lint_of_shipped_templates: subprocess.CompletedProcess[str]) -> None:
    """cfn-lint (with the SAM transform) reports nothing, not even a warning, for the template."""
    matches = json.loads(lint_of_shipped_templates.stdout or "[]")
    assert [m for m in matches if Path(m["Filename"]).name == name] == []


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint check can fail: an end-of-life runtime and a reference to an undefined queue are both reported."""
    template = (SAM_DIR / "sqs_batch_processing.yaml").read_text()
    old_runtime = tmp_path / "old_runtime.yaml"
    old_runtime.write_text(template.replace("python3.13", "python2.7"))
    dangling = tmp_path / "dangling.yaml"
    # (a misspelt SAM event property is an error in some cfn-lint releases and silently dropped in others)
    dangling.write_text(template.replace("!GetAtt OrdersDeadLetterQueue.Arn", "!GetAtt MissingQueue.Arn"))
    result = cfn_lint(old_runtime, dangling)
    assert result.returncode != 0
    flagged = {Path(m["Filename"]).name for m in json.loads(result.stdout) if m["Level"] == "Error"}
    assert flagged == {"old_runtime.yaml", "dangling.yaml"}


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_function_reports_batch_item_failures_on_a_supported_runtime(name: str) -> None:
    """Every batch event source of every function enables ReportBatchItemFailures on python3.12/3.13."""
    template = load(name)
    function = only_function(template)
    assert runtime_of(template, function) in {"python3.12", "python3.13"}
    assert function["Properties"]["Handler"] == "app.lambda_handler"
    events = function["Properties"]["Events"]
    assert events
    for event in events.values():
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_function_code_points_at_an_example_with_a_lambda_handler(name: str) -> None:
    """CodeUri names an example directory whose app.py defines lambda_handler."""
    function = only_function(load(name))
    app = (SAM_DIR / function["Properties"]["CodeUri"] / "app.py").resolve()
    assert app.is_relative_to(EXAMPLES_DIR)
    assert "def lambda_handler(event" in app.read_text()


@pytest.mark.parametrize("name", SQS_TEMPLATES)
def test_sqs_queue_moves_messages_to_a_dlq_after_two_receives(name: str) -> None:
    """The consumed queue's redrive policy sends a message to the DLQ after 2 receives."""
    template = load(name)
    function = only_function(template)
    (event,) = function["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    queue_name = event["Properties"]["Queue"]["Fn::GetAtt"][0]
    queue = template["Resources"][queue_name]
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 2
    dlq_name = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert dlq_name != queue_name
    assert template["Resources"][dlq_name]["Type"] == "AWS::SQS::Queue"
    timeout = template["Globals"]["Function"]["Timeout"]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * timeout


@pytest.mark.parametrize("name", sorted(STREAM_TEMPLATES))
def test_stream_retries_twice_then_sends_to_an_on_failure_destination(name: str) -> None:
    """Stream event sources retry twice and then send the failed records' metadata to an SQS queue."""
    event_type, source_type = STREAM_TEMPLATES[name]
    template = load(name)
    (event,) = only_function(template)["Properties"]["Events"].values()
    assert event["Type"] == event_type
    properties = event["Properties"]
    assert properties["MaximumRetryAttempts"] == 2
    on_failure = properties["DestinationConfig"]["OnFailure"]
    dlq_name = on_failure["Destination"]["Fn::GetAtt"][0]
    assert template["Resources"][dlq_name]["Type"] == "AWS::SQS::Queue"
    assert on_failure["Type"] == "SQS"  # makes SAM grant sqs:SendMessage
    source_name = properties["Stream"]["Fn::GetAtt"][0]
    assert template["Resources"][source_name]["Type"] == source_type


def test_dynamodb_table_has_a_stream_with_both_images() -> None:
    """The streamed table publishes NEW_AND_OLD_IMAGES so handlers can compare versions."""
    template = load("dynamodb_batch_processing.yaml")
    (table,) = resources_of_type(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_custom_processor_table_is_keyed_by_message_id_and_writable() -> None:
    """The results table is keyed by messageId with TTL, and the function gets its name and write access."""
    template = load("custom_partial_processor_dynamodb_table.yaml")
    (table_name, table), *_ = resources_of_type(template, "AWS::DynamoDB::Table").items()
    assert table["Properties"]["KeySchema"] == [{"AttributeName": "messageId", "KeyType": "HASH"}]
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    function = only_function(template)["Properties"]
    assert function["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": table_name}
    assert {"DynamoDBWritePolicy": {"TableName": {"Ref": table_name}}} in function["Policies"]


def _translate(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the SAM transform (as CloudFormation would) and return the resulting resources."""
    samtranslator = pytest.importorskip("samtranslator.translator.transform")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = copy.deepcopy(load(name))
    for resource in resources_of_type(template, "AWS::Serverless::Function").values():
        # The translator only accepts uploaded code; `sam deploy` does this replacement.
        resource["Properties"]["CodeUri"] = "s3://example-bucket/code.zip"

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return dict(samtranslator.transform(template, {}, _NoManagedPolicies())["Resources"])


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_sam_transform_produces_event_source_mappings_with_failure_reporting(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the SAM transform, each event source mapping keeps ReportBatchItemFailures (and stream retries)."""
    resources = _translate(name, monkeypatch)
    mappings = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1
    assert mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    if name in STREAM_TEMPLATES:
        assert mappings[0]["MaximumRetryAttempts"] == 2
        assert "Type" not in mappings[0]["DestinationConfig"]["OnFailure"]


@pytest.mark.parametrize("name", sorted(STREAM_TEMPLATES))
def test_sam_transform_grants_send_message_to_the_on_failure_queue(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated function role may send to the on-failure queue, or Lambda could not deliver to it."""
    resources = _translate(name, monkeypatch)
    (role,) = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]
    statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    send = [s for s in statements if s["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])]
    assert len(send) == 1
    assert send[0]["Resource"]["Fn::GetAtt"][1] == "Arn"


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


if __name__ == "__main__":
    _invoke_handler(*sys.argv[1:4])
