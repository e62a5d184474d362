"""Tests for the SAM templates in examples/sam: they pass cfn-lint, configure partial batch responses and DLQs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _deployment_support import layer_directory
from _sam_support import SAM_DIR, load, only_function, resources_of_type

EXAMPLES_DIR = SAM_DIR.parent

STREAM_TEMPLATES = {
    "kinesis_batch_processing.yaml": ("Kinesis", "AWS::Kinesis::Stream"),
    "dynamodb_batch_processing.yaml": ("DynamoDB", "AWS::DynamoDB::Table"),
}
TELEMETRY_TEMPLATES = ["sqs_emf_telemetry.yaml", "sqs_adot_telemetry.yaml"]
SQS_TEMPLATES = ["sqs_batch_processing.yaml", "custom_partial_processor_dynamodb_table.yaml", *TELEMETRY_TEMPLATES]
ALL_TEMPLATES = sorted([*STREAM_TEMPLATES, *SQS_TEMPLATES])


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


@pytest.mark.slow  # cfn-lint takes 10-15 s to start
def test_cfn_lint_exits_zero_for_the_shipped_templates(
    lint_of_shipped_templates: subprocess.CompletedProcess[str],
) -> None:
    """cfn-lint, run on all templates, exits 0."""
    result = lint_of_shipped_templates
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_template_passes_cfn_lint(name: str, lint_of_shipped_templates: subprocess.CompletedProcess[str]) -> None:
    """cfn-lint (with the SAM transform) reports nothing, not even a warning, for the template."""
    matches = json.loads(lint_of_shipped_templates.stdout or "[]")
    assert [m for m in matches if Path(m["Filename"]).name == name] == []


@pytest.mark.slow
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
    for resource in resources_of_type(template, "AWS::Serverless::LayerVersion").values():
        resource["Properties"]["ContentUri"] = "s3://example-bucket/layer.zip"

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


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_function_gets_the_layer_the_deployment_command_builds(name: str) -> None:
    """BatchlensLayer's ContentUri is the directory docs/deployment.md's command fills, given to every function."""
    template = load(name)
    layer = template["Resources"]["BatchlensLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert "Metadata" not in layer  # no BuildMethod: `sam build` takes the built directory as it is
    assert (SAM_DIR / layer["Properties"]["ContentUri"]).resolve() == layer_directory()
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime_of(template, only_function(template))]
    assert {"Ref": "BatchlensLayer"} in template["Globals"]["Function"]["Layers"]


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_sam_transform_attaches_the_batchlens_layer(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the SAM transform the function's Layers reference the published batchlens layer version."""
    resources = _translate(name, monkeypatch)
    (function,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    versions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert [n for n in versions if n.startswith("BatchlensLayer")] != []
    assert any(layer.get("Ref") in versions for layer in function["Properties"]["Layers"] if isinstance(layer, dict))


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_function_code_does_not_ask_pip_for_the_unpublished_distribution(name: str) -> None:
    """A requirements.txt beside the function's code never names batchlens: `sam build` would fail on it."""
    requirements = SAM_DIR / only_function(load(name))["Properties"]["CodeUri"] / "requirements.txt"
    if requirements.is_file():
        lines = [line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines()]
        assert [line for line in lines if line.lower().startswith("batchlens")] == []
