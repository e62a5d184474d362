"""The CLI guides a first-time user: one-line errors, handler kinds, event types, events that fit the examples.

Every test drives the real command: ``batchlens.cli.main([...])`` in-process, or ``python -m batchlens`` in a
subprocess where the process matters (a missing extra, ``--version``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _cli_support import EXAMPLES, handler_module, invoke, one_line_error, run_command, write_event
from batchlens import __version__, testing

RECORD_HANDLERS = """
import json
import time

CALLS = []


def record_handler(record):
    CALLS.append(record.message_id)
    if "fail" in record.body:
        raise ValueError("rejected")
    return "ok"


def lambda_handler(event, context):
    CALLS.append("lambda")
    return {"batchItemFailures": [], "remaining": context.get_remaining_time_in_millis(),
            "function": context.function_name, "arn": context.invoked_function_arn}


def ambiguous(e, c):
    CALLS.append("ambiguous")
    return {"batchItemFailures": []}


def slow_record(record):
    time.sleep(0.3)


def crashing_lambda(event, context):
    raise RuntimeError("boom")
"""


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A handler module in a fresh working directory, imported from there as ``guide_handlers``."""
    return handler_module(tmp_path, monkeypatch, "guide_handlers", RECORD_HANDLERS)


def calls() -> list[str]:
    return list(sys.modules["guide_handlers"].CALLS)


def sqs_file(folder: Path, **options: Any) -> str:
    return write_event(folder / "event.json", testing.sqs_event(**{"count": 3, "seed": 1, **options}))


# -- demo and --version ---------------------------------------------------------------------------------------------


def test_demo_without_the_sdk_says_which_extra_in_one_line(tmp_path: Path) -> None:
    """Without opentelemetry-sdk, demo prints one line naming the sdk extra and exits 2 (no traceback)."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['opentelemetry.sdk'] = None\n")
    done = run_command("demo", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    line = one_line_error(done.stderr, "pip install 'batchlens[sdk]'")
    assert "Traceback" not in done.stderr
    assert "demo" in line


def test_version_prints_the_package_version() -> None:
    done = run_command("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"batchlens {__version__}"


def test_demo_log_lines_have_the_cloudwatch_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo shows the JSON lines a Lambda function writes: level and timestamp, rendered exception text."""
    code, out, _ = invoke(capsys, "demo", "--records", "6", "--fail-rate", "0.5", "--traces", "none")
    assert code == 0
    shown = [json.loads(line) for line in out.splitlines() if line.startswith("  {")]
    assert len(shown) == 5
    for entry in shown:
        assert entry["level"] in ("info", "error")
        assert "log_level" not in entry
        assert entry["timestamp"].endswith("Z")
        assert "exc_info" not in entry
    failed = [entry for entry in shown if entry["level"] == "error"]
    assert failed, out
    assert all(entry["exception"].startswith("Traceback") for entry in failed)


def test_demo_with_20000_records_keeps_lines_short(capsys: pytest.CaptureFixture[str]) -> None:
    """A large batch prints at most ten failed ids, then a count; no line grows with the batch."""
    code, out, _ = invoke(capsys, "demo", "--records", "20000", "--fail-rate", "0.2")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) < 2000
    assert "... 3990 more batchItemFailures entries not shown" in out
    assert out.count('"itemIdentifier"') == 10
    assert "19980 more records (3980 failed)" in out  # the trace tree shows 20 rows: the failed ones first


def test_demo_whole_batch_failure_heading_says_what_happened(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "demo", "--records", "3", "--fail-rate", "1", "--traces", "none")
    assert code == 1
    assert "Partial-failure response" not in out
    assert "raised BatchProcessingError" in out
    assert "logged separately below" not in out


# -- handler kinds --------------------------------------------------------------------------------------------------


def test_run_takes_a_lambda_handler_by_its_signature(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "run", sqs_file(handlers), "--handler", "guide_handlers:lambda_handler")
    assert code == 0
    assert json.loads(out)["batchItemFailures"] == []
    assert calls() == ["lambda"]


def test_run_takes_a_record_handler_by_its_signature(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = sqs_file(handlers, fail_rate=0.34)
    code, out, _ = invoke(capsys, "run", event, "--handler", "guide_handlers:record_handler")
    assert code == 0
    assert len(json.loads(out)["batchItemFailures"]) == 1
    assert len(calls()) == 3


@pytest.mark.parametrize(
    ("flag", "spec", "fragment"),
    [
        ("--record-handler", "guide_handlers:lambda_handler", "give it with --lambda-handler"),
        ("--lambda-handler", "guide_handlers:record_handler", "give it with --record-handler"),
    ],
)
def test_the_wrong_kind_is_refused_before_any_record_runs(
    handlers: Path, capsys: pytest.CaptureFixture[str], flag: str, spec: str, fragment: str
) -> None:
    code, out, err = invoke(capsys, "run", sqs_file(handlers), flag, spec)
    assert code == 2
    assert out == ""
    one_line_error(err, fragment)
    assert calls() == []


def test_a_flag_decides_what_the_signature_does_not(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``def ambiguous(e, c)`` is neither ``event, context`` nor one parameter: --lambda-handler decides."""
    code, out, _ = invoke(capsys, "run", sqs_file(handlers), "--lambda-handler", "guide_handlers:ambiguous")
    assert code == 0, out
    assert calls() == ["ambiguous"]


def test_poll_accepts_a_record_handler_flag_in_its_parser() -> None:
    from batchlens._poll._args import options_from_args
    from batchlens.cli import build_parser

    args = build_parser().parse_args(["poll", "http://127.0.0.1:1/q", "--record-handler", "m:f"])
    options = options_from_args(args)
    assert (options.handler, options.handler_kind, options.report_batch_item_failures) == ("m:f", "record", None)


# -- handler given as a file path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["guide_handlers.py:record_handler", "./guide_handlers.py:record_handler"])
def test_a_handler_can_be_a_file_path(handlers: Path, capsys: pytest.CaptureFixture[str], spec: str) -> None:
    code, out, err = invoke(capsys, "run", sqs_file(handlers), "--handler", spec)
    assert code == 0, err
    assert json.loads(out) == {"batchItemFailures": []}


def test_an_example_runs_by_its_path_from_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README path: ``batchlens events sqs > e.json``, then run the example's handler by its file path."""
    events = run_command("events", "sqs", "--count", "5", cwd=tmp_path)
    assert events.returncode == 0, events.stderr
    (tmp_path / "e.json").write_text(events.stdout)
    spec = f"{EXAMPLES / 'getting_started_sqs' / 'app.py'}:lambda_handler"
    done = run_command("run", "e.json", "--handler", spec, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}
    assert "KeyError" not in done.stderr
    assert done.stderr.count('"order received"') == 5


def test_missing_file_and_missing_module_say_what_to_give(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = sqs_file(handlers)
    code, _, err = invoke(capsys, "run", event, "--handler", "handlers.py:fn")
    assert code == 2
    one_line_error(err, "no such file 'handlers.py'")
    code, _, err = invoke(capsys, "run", event, "--handler", "no_such_handlers:fn")
    assert code == 2
    one_line_error(err, "--handler path/to/no_such_handlers.py:fn")


# -- event type against eventSource -------------------------------------------------------------------------------


def test_event_type_mismatch_is_refused(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--event-type kinesis on an SQS event: exit 2 and one line, instead of a silent empty response."""
    code, out, err = invoke(
        capsys, "run", sqs_file(handlers), "--event-type", "kinesis", "--handler", "guide_handlers:record_handler"
    )
    assert code == 2
    assert out == ""
    one_line_error(err, "--event-type kinesis expects eventSource 'aws:kinesis'")
    assert "guide_handlers" not in sys.modules  # refused before the handler was even imported


def test_kafka_event_type_is_checked_at_the_top_level(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = testing.kafka_event(count=2, seed=1)
    event["eventSource"] = "aws:sqs"
    path = write_event(handlers / "kafka.json", event)
    code, _, err = invoke(capsys, "run", path, "--event-type", "kafka", "--handler", "guide_handlers:record_handler")
    assert code == 2
    one_line_error(err, "the event's eventSource is 'aws:sqs'")


def test_an_event_without_event_source_runs_with_event_type(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = testing.sqs_event(count=2, seed=1)
    for record in event["Records"]:
        del record["eventSource"]
    path = write_event(handlers / "bare.json", event)
    code, out, _ = invoke(capsys, "run", path, "--event-type", "sqs", "--handler", "guide_handlers:record_handler")
    assert code == 0
    assert json.loads(out) == {"batchItemFailures": []}


def test_an_empty_batch_says_so(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_event(handlers / "empty.json", {"Records": []})
    code, _, err = invoke(capsys, "run", path, "--handler", "guide_handlers:record_handler")
    assert code == 2
    line = one_line_error(err, "has no records")
    assert "Unexpected batch event type" not in line


def test_whole_batch_failure_wording_points_up_not_below(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sqs_file(handlers, fail_rate=1.0)
    code, _, err = invoke(capsys, "run", path, "--handler", "guide_handlers:record_handler")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("batchlens: the whole batch failed: all 3 records failed")
    assert "below" not in last


def test_a_crashing_lambda_handler_is_one_line(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "run", sqs_file(handlers), "--handler", "guide_handlers:crashing_lambda")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines()[-1] == (
        "batchlens: the Lambda handler raised RuntimeError: boom; Lambda retries the whole batch"
    )


# -- the Lambda context: remaining time, name, ARN ----------------------------------------------------------------


def test_timeout_and_function_arn_reach_the_context(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arn = "arn:aws:lambda:eu-west-1:210987654321:function:orders:live"
    code, out, _ = invoke(
        capsys,
        "run",
        sqs_file(handlers),
        "--handler",
        "guide_handlers:lambda_handler",
        "--timeout",
        "2",
        "--function-arn",
        arn,
    )
    assert code == 0
    response = json.loads(out)
    assert 1500 < response["remaining"] <= 2000
    assert response["function"] == "orders"
    assert response["arn"] == arn


def test_remaining_time_and_function_name(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--handler", "guide_handlers:lambda_handler", "--remaining-time", "750", "--function-name", "billing"]
    code, out, _ = invoke(capsys, "run", sqs_file(handlers), *argv)
    assert code == 0
    response = json.loads(out)
    assert 500 < response["remaining"] <= 750
    assert response["function"] == "billing"


def test_running_past_the_timeout_fails_like_lambda(handlers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--handler", "guide_handlers:slow_record", "--remaining-time", "200"]
    code, _, err = invoke(capsys, "run", sqs_file(handlers, count=1), *argv)
    assert code == 1
    assert "past its 0.2 s: Lambda would have ended it" in err


def test_the_deadline_guard_example_hands_records_back_with_little_time(capsys: pytest.CaptureFixture[str]) -> None:
    """--remaining-time lets the deadline guard example show its documented outcome: two finish, three go back."""
    folder = EXAMPLES / "deadline_guard"
    path = str(folder / "event.json")
    spec = f"{folder / 'app.py'}:lambda_handler"
    code, out, _ = invoke(capsys, "run", path, "--handler", spec, "--remaining-time", "1000")
    assert code == 0
    expected = json.loads((folder / "response.json").read_text())
    assert json.loads(out) == expected
    assert len(expected["batchItemFailures"]) == 3


# -- events ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "example"),
    [
        ("sqs", "getting_started_sqs"),
        ("sqs", "error_handling"),
        ("fifo", "sqs_fifo"),
        ("kinesis", "getting_started_kinesis"),
        ("dynamodb", "getting_started_dynamodb"),
        ("kafka", "kafka"),
    ],
)
def test_generated_events_fit_the_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, example: str
) -> None:
    code, out, _ = invoke(capsys, "events", kind, "--count", "6", "--seed", "3")
    assert code == 0
    path = write_event(tmp_path / "event.json", json.loads(out))
    spec = f"{EXAMPLES / example / 'app.py'}:lambda_handler"
    code, out, err = invoke(capsys, "run", path, "--handler", spec)
    assert code == 0, err
    assert json.loads(out)["batchItemFailures"] == [], err
    assert "KeyError" not in err


def test_events_use_the_current_time_unless_fixed(capsys: pytest.CaptureFixture[str]) -> None:
    before = time.time() * 1000
    _, out, _ = invoke(capsys, "events", "sqs", "--count", "2", "--seed", "5")
    sent = [int(r["attributes"]["SentTimestamp"]) for r in json.loads(out)["Records"]]
    assert all(before - 60_000 < value <= time.time() * 1000 for value in sent)
    first = invoke(capsys, "events", "sqs", "--count", "2", "--seed", "5", "--fixed-time")[1]
    time.sleep(0.01)
    second = invoke(capsys, "events", "sqs", "--count", "2", "--seed", "5", "--fixed-time")[1]
    assert first == second
    fixed = [int(r["attributes"]["SentTimestamp"]) for r in json.loads(first)["Records"]]
    assert all(1_699_999_000_000 < value <= 1_700_000_000_000 for value in fixed)
    chosen = invoke(capsys, "events", "kinesis", "--count", "1", "--fixed-time", "1800000000000")[1]
    arrival = json.loads(chosen)["Records"][0]["kinesis"]["approximateArrivalTimestamp"]
    assert 1_799_999_999 < arrival <= 1_800_000_000


def test_seed_keeps_ids_and_payloads_but_not_the_clock(capsys: pytest.CaptureFixture[str]) -> None:
    one = json.loads(invoke(capsys, "events", "sqs", "--count", "3", "--seed", "9", "--fail-rate", "0.34")[1])
    time.sleep(0.01)
    two = json.loads(invoke(capsys, "events", "sqs", "--count", "3", "--seed", "9", "--fail-rate", "0.34")[1])
    for a, b in zip(one["Records"], two["Records"], strict=True):
        assert (a["messageId"], a["body"], a["attributes"]["AWSTraceHeader"]) == (
            b["messageId"],
            b["body"],
            b["attributes"]["AWSTraceHeader"],
        )


def test_events_help_states_the_default_fail_rate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        invoke(capsys, "events", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 0.0: none)" in text
    assert "--fixed-time" in text


@pytest.mark.parametrize("kind", ["sqs", "fifo", "kafka"])
def test_events_carry_producer_trace_headers(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    event = json.loads(invoke(capsys, "events", kind, "--count", "2", "--seed", "1")[1])
    if kind == "kafka":
        records = [r for rs in event["records"].values() for r in rs]
        headers = [bytes(v).decode() for r in records for h in r["headers"] for k, v in h.items() if k == "traceparent"]
        assert len(headers) == 2
        assert all(h.startswith("00-") and h.endswith("-01") for h in headers)
        return
    for record in event["Records"]:
        xray = record["attributes"]["AWSTraceHeader"]
        traceparent = record["messageAttributes"]["traceparent"]["stringValue"]
        root = xray.split(";")[0].removeprefix("Root=1-").replace("-", "")
        assert traceparent.split("-")[1] == root
