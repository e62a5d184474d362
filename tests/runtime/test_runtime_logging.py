"""Logs and errors under awslambdaric: JSON log format, Powertools' Logger, a batch failing validation entirely."""

from __future__ import annotations

import json
from pathlib import Path

from batchlens.testing import sqs_event

from ._emulator import lambda_runtime
from ._support import INVOKE_WAIT_S, failing_ids, json_lines, orders

SECRET = "card-4111111111111111"
JSON_LOGS = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_json_log_format_keeps_every_line_json_with_the_request_id(tmp_path: Path) -> None:
    # Lambda sets the application log level (default INFO) with the JSON format
    with lambda_runtime(
        "app.lambda_handler", tmp_path, **JSON_LOGS, OTEL_TRACES_EXPORTER="none"
    ) as (api, process, _):
        event = orders(3, failing=1)
        invocation = api.run(event, INVOKE_WAIT_S)
        out = process.stdout()
    assert invocation.json() == {"batchItemFailures": [{"itemIdentifier": i} for i in failing_ids(event)]}
    lines = _lines(out)
    assert len(json_lines(out)) == len(lines)  # CloudWatch's JSON format: no text line in between
    records = [line for line in json_lines(out) if "record_id" in line]
    assert [line["outcome"] for line in records] == ["success", "success", "failure"]
    assert {line["function_request_id"] for line in records} == {invocation.request_id}
    assert any("_aws" in line for line in json_lines(out))  # the EMF lines, one JSON object each


def test_powertools_logger_and_batchlens_share_the_request_id(tmp_path: Path) -> None:
    with lambda_runtime(
        "powertools_app.lambda_handler", tmp_path, **JSON_LOGS, OTEL_TRACES_EXPORTER="none"
    ) as (api, process, _):
        first = api.run(orders(2, failing=1), INVOKE_WAIT_S)
        second = api.run(orders(2, failing=0), INVOKE_WAIT_S)
        out = json_lines(process.stdout())
    assert first.kind == second.kind == "response"
    assert second.json() == {"batchItemFailures": []}
    powertools = [line for line in out if line.get("message") == "processing order"]
    batchlens = [line for line in out if "record_id" in line]
    assert [line["function_request_id"] for line in powertools] == [first.request_id] * 2 + [second.request_id] * 2
    assert [line["function_request_id"] for line in batchlens] == [first.request_id] * 2 + [second.request_id] * 2
    assert [line["cold_start"] for line in powertools] == [True, True, False, False]


def test_a_batch_failing_validation_entirely_is_an_invocation_error(tmp_path: Path) -> None:
    event = sqs_event([{"order_id": SECRET}, {"order_id": SECRET}])
    with lambda_runtime("validation_app.lambda_handler", tmp_path, OTEL_TRACES_EXPORTER="none") as (api, process, _):
        invocation = api.run(event, INVOKE_WAIT_S)
        after = api.run(sqs_event([{"order_id": 7}]), INVOKE_WAIT_S)  # the runtime carries on
        out = process.stdout() + process.stderr()
    assert invocation.kind == "error"
    error = invocation.json()
    assert error["errorType"] == "BatchProcessingError"
    assert error["requestId"] == invocation.request_id
    assert json.loads(invocation.xray_cause or "{}")["exceptions"][0]["type"] == "BatchProcessingError"
    assert after.kind == "response"
    assert after.json() == {"batchItemFailures": []}
    failed = [line for line in json_lines(out) if line.get("outcome") == "failure"]
    assert {line["record_id"] for line in failed} == {r["messageId"] for r in event["Records"]}
    # no validation input value in batchlens' logs
    assert all(SECRET not in json.dumps(line) for line in failed)


def test_validation_input_values_stay_out_of_the_error_post(tmp_path: Path) -> None:
    # awslambdaric posts str(BatchProcessingError) and logs it to stdout (CloudWatch): it must quote no record data
    event = sqs_event([{"order_id": SECRET}, {"order_id": SECRET}])
    with lambda_runtime("validation_app.lambda_handler", tmp_path, OTEL_TRACES_EXPORTER="none") as (api, process, _):
        invocation = api.run(event, INVOKE_WAIT_S)
        out = process.stdout()
    assert invocation.kind == "error"
    assert SECRET not in invocation.body.decode()
    assert SECRET not in (invocation.xray_cause or "")
    assert SECRET not in out
