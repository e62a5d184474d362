"""Tests for the ``batchlens`` command (src/batchlens/cli.py, src/batchlens/__main__.py).

Most tests call ``batchlens.cli.main([...])`` in-process; a few run ``python -m batchlens`` and the installed
``batchlens`` console script in a subprocess to prove the entry points work.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor as PtBatchProcessor
from aws_lambda_powertools.utilities.batch import EventType as PtEventType
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor as PtSqsFifoPartialProcessor
from aws_lambda_powertools.utilities.batch import process_partial_response as pt_process_partial_response
from aws_lambda_powertools.utilities.data_classes import (
    DynamoDBStreamEvent,
    KafkaEvent,
    KinesisStreamEvent,
    SQSEvent,
)

from batchlens import cli, testing

REPO = Path(__file__).resolve().parents[1]
KINDS = ("sqs", "fifo", "kinesis", "dynamodb", "kafka")
PT_EVENT_TYPES = {
    "sqs": PtEventType.SQS,
    "fifo": PtEventType.SQS,
    "kinesis": PtEventType.KinesisDataStreams,
    "dynamodb": PtEventType.DynamoDBStreams,
    "kafka": PtEventType.Kafka,
}
FACTORIES: dict[str, Any] = {
    "sqs": testing.sqs_event,
    "fifo": testing.sqs_fifo_event,
    "kinesis": testing.kinesis_event,
    "dynamodb": testing.dynamodb_event,
    "kafka": testing.kafka_event,
}
HANDLER_MODULE = "cli_test_handlers"
HANDLER_SOURCE = '''
import asyncio
import json


def payload(record):
    """The record's payload as text, whatever the event source."""
    raw = record.raw_event
    if "body" in raw:
        return record.body
    if "kinesis" in raw:
        return record.kinesis.data_as_text()
    if "dynamodb" in raw:
        return json.dumps(record.dynamodb.new_image, default=str)
    return record.decoded_value.decode()


def handle(record):
    if "fail" in payload(record):
        raise ValueError("rejected")
    return {"ok": True}


async def handle_async(record):
    await asyncio.sleep(0)
    return handle(record)


def always_fail(record):
    raise RuntimeError("downstream is down")


class Handlers:
    @staticmethod
    def nested(record):
        return handle(record)


NOT_CALLABLE = 42
'''


# -- helpers -------------------------------------------------------------------------------------------------------
def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    if "Records" in event:
        return list(event["Records"])
    return [record for partition in event["records"].values() for record in partition]


def payload_of(record: dict[str, Any]) -> str:
    """A raw record's payload as text, decoded the way the sample handler reads it."""
    if "body" in record:
        return str(record["body"])
    if "kinesis" in record:
        return base64.b64decode(record["kinesis"]["data"]).decode()
    if "dynamodb" in record:
        return json.dumps(record["dynamodb"].get("NewImage", {}))
    return base64.b64decode(record["value"]).decode()


def item_identifier(record: dict[str, Any]) -> Any:
    """The ``itemIdentifier`` Lambda expects for a raw record."""
    if "messageId" in record:
        return record["messageId"]
    if "kinesis" in record:
        return record["kinesis"]["sequenceNumber"]
    if "dynamodb" in record:
        return record["dynamodb"]["SequenceNumber"]
    return {"partition": f"{record['topic']}-{record['partition']}", "offset": record["offset"]}


def failing_ids(event: dict[str, Any]) -> list[Any]:
    return [item_identifier(r) for r in records_of(event) if "fail" in payload_of(r)]


def fifo_group_skip_ids(event: dict[str, Any]) -> list[Any]:
    """Ids a FIFO processor with ``skip_group_on_error`` reports: each group's first failure and what follows it."""
    broken: set[str] = set()
    ids = []
    for record in event["Records"]:
        group = record["attributes"]["MessageGroupId"]
        if group in broken or "fail" in payload_of(record):
            broken.add(group)
            ids.append(record["messageId"])
    return ids


def fifo_stop_ids(event: dict[str, Any]) -> list[Any]:
    """Ids a FIFO processor reports by default: the first failure and every record after it."""
    ids = [r["messageId"] for r in event["Records"]]
    first = next((i for i, r in enumerate(event["Records"]) if "fail" in payload_of(r)), len(ids))
    return ids[first:]


def last_json_line(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


def assert_one_line_error(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("batchlens: error: ")
    assert fragment in lines[0]


def pt_handler(record: Any) -> Any:
    """The reference handler for Powertools: fails records whose payload contains "fail"."""
    if "fail" in payload_of(record.raw_event):
        raise ValueError("rejected")
    return {"ok": True}


def powertools_response(kind: str, event: dict[str, Any], fifo: bool = False) -> Any:
    processor = PtSqsFifoPartialProcessor() if fifo else PtBatchProcessor(PT_EVENT_TYPES[kind])
    return pt_process_partial_response(event, pt_handler, processor, None)


def console_script() -> str | None:
    """Path of the installed ``batchlens`` script, next to this interpreter or on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "batchlens"
    if candidate.exists():
        return str(candidate)
    return shutil.which("batchlens")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary current directory holding the handler module; sys.path and sys.modules restored after."""
    (tmp_path / f"{HANDLER_MODULE}.py").write_text(HANDLER_SOURCE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    importlib.invalidate_caches()
    yield tmp_path
    for name in [HANDLER_MODULE, "broken_handlers"]:
        sys.modules.pop(name, None)


def write_event(directory: Path, event: Any, name: str = "event.json") -> str:
    path = directory / name
    path.write_text(json.dumps(event), encoding="utf-8")
    return str(path)


# -- demo ------------------------------------------------------------------------------------------------------------
def test_demo_defaults_print_summary_and_partial_failure_response(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchlens demo` without flags prints the summary and, last, the response naming exactly the "fail" records."""
    code, out, err = invoke(capsys, "demo")
    assert code == 0
    assert err == ""
    assert "Summary:" in out
    assert "Partial-failure response" in out
    match = re.search(r"records\s+20 \((\d+) succeeded, (\d+) failed\)", out)
    assert match is not None, out
    assert (int(match[1]), int(match[2])) == (16, 4)
    response = last_json_line(out)
    assert set(response) == {"batchItemFailures"}
    expected = failing_ids(testing.sqs_event(count=20, fail_rate=0.2, seed=7))
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == expected
    assert len(expected) == 4


def test_demo_summary_counts_agree(capsys: pytest.CaptureFixture[str]) -> None:
    """The summary's spans, log lines and failures-by-type add up for the batch that was processed."""
    code, out, _ = invoke(capsys, "demo", "--records", "12", "--fail-rate", "0.5", "--seed", "11")
    assert code == 0
    assert re.search(r"spans\s+13 \(1 batch, 12 record, 12 producer links\)", out), out
    assert re.search(r"log lines\s+13\b", out), out
    failures_line = re.search(r"failures\s+(.+)", out)
    assert failures_line is not None
    by_type = {name: int(n) for name, n in re.findall(r"(\w+) x(\d+)", failures_line[1])}
    assert set(by_type) <= {"OrderRejectedError", "TimeoutError"}
    assert sum(by_type.values()) == 6
    assert len(last_json_line(out)["batchItemFailures"]) == 6
    assert re.search(r"duration\s+p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms per record", out)
    assert re.search(r"captured\s+\d+ bytes of handler results on spans \(batch budget \d+\)", out)


@pytest.mark.parametrize("kind", ["sqs", "kinesis", "dynamodb", "kafka"])
def test_demo_every_event_type_fails_exactly_the_fail_records(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """For every non-FIFO event type the demo's response names exactly the records whose payload contains "fail"."""
    code, out, _ = invoke(capsys, "demo", "--event-type", kind, "--records", "10", "--fail-rate", "0.3", "--seed", "5")
    assert code == 0
    assert f"batchlens demo: {kind} batch of 10 records" in out
    event = FACTORIES[kind](count=10, fail_rate=0.3, seed=5)
    expected = failing_ids(event)
    assert len(expected) == 3
    assert [f["itemIdentifier"] for f in last_json_line(out)["batchItemFailures"]] == expected


def test_demo_fifo_skips_the_rest_of_each_failing_group(capsys: pytest.CaptureFixture[str]) -> None:
    """The FIFO demo reports each failing message group's first failure and every later record of that group."""
    code, out, _ = invoke(
        capsys, "demo", "--event-type", "fifo", "--records", "20", "--fail-rate", "0.1", "--seed", "3"
    )
    assert code == 0
    event = testing.sqs_fifo_event(count=20, fail_rate=0.1, seed=3, groups=4)  # the demo uses min(4, records) groups
    expected = fifo_group_skip_ids(event)
    assert len(expected) > len(failing_ids(event))  # some records were skipped, not only failed
    assert [f["itemIdentifier"] for f in last_json_line(out)["batchItemFailures"]] == expected
    assert "CircuitBreakerError" in out


def normalise_durations(text: str) -> str:
    text = re.sub(r'"duration_ms": ?[\d.e-]+', '"duration_ms": 0', text)
    text = re.sub(r'"timestamp": ?"[^"]+"', '"timestamp": "T"', text)
    text = re.sub(r"[\d.]+ ms", "D ms", text)
    return re.sub(r"duration\s+p50.*", "duration", text)


@pytest.mark.parametrize("kind", KINDS)
def test_demo_is_repeatable_with_a_seed(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """Two demo runs with the same seed print the same output apart from durations; another seed differs."""
    argv = ["demo", "--event-type", kind, "--records", "8", "--fail-rate", "0.25"]
    first = invoke(capsys, *argv, "--seed", "42")[1]
    second = invoke(capsys, *argv, "--seed", "42")[1]
    other = invoke(capsys, *argv, "--seed", "43")[1]
    assert normalise_durations(first) == normalise_durations(second)
    assert last_json_line(first) != last_json_line(other)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--records", "0"], "--records"),
        (["--records", "-3"], "--records"),
        (["--fail-rate", "-0.1"], "--fail-rate"),
        (["--fail-rate", "1.5"], "--fail-rate"),
        (["--fail-rate", "nan"], "--fail-rate"),
    ],
)
def test_demo_rejects_out_of_range_options(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    """Out-of-range --records / --fail-rate exit with 2 and a one-line error on stderr, nothing on stdout."""
    code, out, err = invoke(capsys, "demo", *argv)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, fragment)


def test_demo_rejects_non_numeric_options(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-numeric --records is an argparse usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--records", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_demo_whole_batch_failure_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """With --fail-rate 1 every record fails, the batch error is shown as JSON and the exit code is 1."""
    code, out, _ = invoke(capsys, "demo", "--records", "4", "--fail-rate", "1")
    assert code == 1
    assert re.search(r"records\s+4 \(0 succeeded, 4 failed\)", out), out
    final = last_json_line(out)
    assert final["error"] == "BatchProcessingError"
    assert final["message"].startswith("all 4 records failed")


def test_demo_with_one_record_and_no_failures(capsys: pytest.CaptureFixture[str]) -> None:
    """A one-record batch without failures returns an empty batchItemFailures list."""
    code, out, _ = invoke(capsys, "demo", "--records", "1", "--fail-rate", "0")
    assert code == 0
    assert last_json_line(out) == {"batchItemFailures": []}


# -- run -------------------------------------------------------------------------------------------------------------
def test_run_prints_response_on_stdout_and_json_logs_on_stderr(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    """`run` imports the handler from the cwd, prints the response on stdout and one JSON log per line on stderr."""
    event = testing.sqs_event(["ok", "fail", "ok"], seed=1)
    path = write_event(workdir, event)
    code, out, err = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle")
    assert code == 0
    assert out.count("\n") == 1
    assert json.loads(out) == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    logs = [json.loads(line) for line in err.strip().splitlines()]
    assert [entry["event"] for entry in logs] == [
        "record processed",
        "record failed",
        "record processed",
        "batch processed",
    ]
    assert logs[1]["record_id"] == event["Records"][1]["messageId"]
    assert logs[1]["error_type"] == "ValueError"
    assert logs[-1]["failure_count"] == 1


@pytest.mark.parametrize("kind", ["sqs", "kinesis", "dynamodb", "kafka"])
def test_run_detects_the_event_type_from_event_source(
    capsys: pytest.CaptureFixture[str], workdir: Path, kind: str
) -> None:
    """Without --event-type, `run` processes each kind as Powertools would (same response)."""
    event = FACTORIES[kind](count=6, fail_rate=0.5, seed=9)
    path = write_event(workdir, event)
    code, out, _ = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle")
    assert code == 0
    response = json.loads(out)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == failing_ids(event)
    assert response == powertools_response(kind, event)


@pytest.mark.parametrize("kind", KINDS)
def test_run_processes_events_written_by_the_events_command(
    capsys: pytest.CaptureFixture[str], workdir: Path, kind: str
) -> None:
    """An event file from `batchlens events` runs through `batchlens run` with the expected failures."""
    code, text, _ = invoke(capsys, "events", kind, "--count", "5", "--fail-rate", "0.2", "--seed", "4")
    assert code == 0
    path = workdir / "event.json"
    path.write_text(text, encoding="utf-8")
    code, out, _ = invoke(capsys, "run", str(path), "--handler", f"{HANDLER_MODULE}:handle")
    assert code == 0
    event = json.loads(text)
    expected = fifo_stop_ids(event) if kind == "fifo" else failing_ids(event)
    assert [f["itemIdentifier"] for f in json.loads(out)["batchItemFailures"]] == expected


def test_run_uses_fifo_semantics_for_a_fifo_queue_event(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """A detected FIFO queue event gets the FIFO processor: records after the first failure are reported too."""
    event = testing.sqs_fifo_event(["ok", "fail", "ok", "ok"], seed=2)
    path = write_event(workdir, event)
    code, out, _ = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle")
    assert code == 0
    assert [f["itemIdentifier"] for f in json.loads(out)["batchItemFailures"]] == fifo_stop_ids(event)
    assert len(fifo_stop_ids(event)) == 3
    assert json.loads(out) == powertools_response("fifo", event, fifo=True)


@pytest.mark.parametrize("processor", ["fifo", "fifo-async"])
def test_run_fifo_processors(capsys: pytest.CaptureFixture[str], workdir: Path, processor: str) -> None:
    """--processor fifo / fifo-async stop at the first failure, even on a standard-queue event."""
    handler = "handle_async" if processor == "fifo-async" else "handle"
    event = testing.sqs_event(["ok", "fail", "ok"], seed=3)
    path = write_event(workdir, event)
    code, out, _ = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:{handler}", "--processor", processor)
    assert code == 0
    ids = [r["messageId"] for r in event["Records"]]
    assert json.loads(out) == {"batchItemFailures": [{"itemIdentifier": i} for i in ids[1:]]}


def test_run_event_type_fifo_selects_the_fifo_processor(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """--event-type fifo without --processor processes a standard-queue event with FIFO rules."""
    event = testing.sqs_event(["fail", "ok"], seed=3)
    path = write_event(workdir, event)
    code, out, _ = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle", "--event-type", "fifo")
    assert code == 1  # the skipped record counts as failed, so the whole batch failed
    assert out == ""


@pytest.mark.parametrize("argv", [["--processor", "async"], []])
def test_run_async_handler(capsys: pytest.CaptureFixture[str], workdir: Path, argv: list[str]) -> None:
    """An async handler runs with --processor async, and is picked up as async without --processor."""
    event = testing.kinesis_event(["ok", "fail", "ok", "fail"], seed=8)
    path = write_event(workdir, event)
    code, out, err = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle_async", *argv)
    assert code == 0
    assert [f["itemIdentifier"] for f in json.loads(out)["batchItemFailures"]] == failing_ids(event)
    assert "coroutine" not in err


def test_run_async_handler_with_sync_processor_fails_each_record(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    """Forcing --processor sync on an async handler fails every record (the coroutine cannot be awaited)."""
    path = write_event(workdir, testing.sqs_event(["ok"], seed=1))
    code, out, err = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle_async", "--processor", "sync")
    assert code == 1
    assert out == ""
    assert "TypeError" in err


def test_run_dotted_attribute_handler(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """module:Class.method specs resolve attribute by attribute."""
    path = write_event(workdir, testing.sqs_event(["ok"], seed=1))
    code, out, _ = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:Handlers.nested")
    assert code == 0
    assert json.loads(out) == {"batchItemFailures": []}


def test_run_all_succeeded_exits_0(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """A batch without failures prints an empty batchItemFailures list and exits 0."""
    path = write_event(workdir, testing.dynamodb_event(count=3, seed=1))
    code, out, _ = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:handle")
    assert (code, json.loads(out)) == (0, {"batchItemFailures": []})


def test_run_whole_batch_failed_exits_1(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """When every record fails, `run` exits 1, says so on stderr and prints no response."""
    path = write_event(workdir, testing.sqs_event(count=3, seed=1))
    code, out, err = invoke(capsys, "run", path, "--handler", f"{HANDLER_MODULE}:always_fail")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines()[-1].startswith("batchlens: the whole batch failed")


def test_run_reads_the_event_from_stdin(
    capsys: pytest.CaptureFixture[str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event path of '-' reads the event from standard input."""
    import io

    event = testing.sqs_event(["fail", "ok"], seed=6)
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(event)))
    code, out, _ = invoke(capsys, "run", "-", "--handler", f"{HANDLER_MODULE}:handle")
    assert code == 0
    assert json.loads(out) == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


@pytest.mark.parametrize(
    ("content", "extra", "fragment"),
    [
        (None, [], "cannot read event file"),
        ("this is not json", [], "is not JSON"),
        ('{"foo": 1}', [], "cannot tell the event type"),
        ("[1, 2]", [], "cannot tell the event type"),
        ('{"Records": []}', [], "has no records"),
        ('{"Records": [{"eventSource": "aws:s3"}]}', [], "cannot tell the event type"),
        ('{"Records": []}', ["--event-type", "sqs"], "has no records"),
        ("[1, 2]", ["--event-type", "sqs"], "event"),
        ('{"Records": [{"eventSource": "aws:kinesis"}]}', ["--processor", "fifo"], "needs an SQS event"),
    ],
)
def test_run_bad_event_exits_2(
    capsys: pytest.CaptureFixture[str], workdir: Path, content: str | None, extra: list[str], fragment: str
) -> None:
    """A missing, non-JSON or unrecognisable event exits 2 with a one-line error and no stdout."""
    path = workdir / "event.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = invoke(capsys, "run", str(path), "--handler", f"{HANDLER_MODULE}:handle", *extra)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, fragment)


def test_run_directory_as_event_exits_2(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """A directory given as the event file is unreadable input (exit 2)."""
    code, out, err = invoke(capsys, "run", str(workdir), "--handler", f"{HANDLER_MODULE}:handle")
    assert (code, out) == (2, "")
    assert_one_line_error(err, "cannot read event file")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no_such_module_anywhere:handle", "no module 'no_such_module_anywhere'"),
        ("broken_handlers:handle", "cannot import handler module"),
        (f"{HANDLER_MODULE}:missing", "has no attribute"),
        (f"{HANDLER_MODULE}:Handlers.missing", "has no attribute"),
        (f"{HANDLER_MODULE}:NOT_CALLABLE", "not callable"),
        (HANDLER_MODULE, "module:function"),
        (f"{HANDLER_MODULE}:", "module:function"),
        (":handle", "module:function"),
    ],
)
def test_run_bad_handler_exits_2(capsys: pytest.CaptureFixture[str], workdir: Path, spec: str, fragment: str) -> None:
    """A handler that cannot be imported or found, or a malformed spec, exits 2 with a one-line error."""
    (workdir / "broken_handlers.py").write_text("def handle(record)\n    return 1\n", encoding="utf-8")
    path = write_event(workdir, testing.sqs_event(["ok"], seed=1))
    code, out, err = invoke(capsys, "run", path, "--handler", spec)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, fragment)


def test_run_error_messages_stay_on_one_line(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    """Even an import error with a multi-line message is reported on a single line."""
    (workdir / "broken_handlers.py").write_text('raise RuntimeError("first line\\nsecond line")\n', encoding="utf-8")
    path = write_event(workdir, testing.sqs_event(["ok"], seed=1))
    code, _, err = invoke(capsys, "run", path, "--handler", "broken_handlers:handle")
    assert code == 2
    assert_one_line_error(err, "first line second line")


# -- events ----------------------------------------------------------------------------------------------------------
DATA_CLASSES = {
    "sqs": SQSEvent,
    "fifo": SQSEvent,
    "kinesis": KinesisStreamEvent,
    "dynamodb": DynamoDBStreamEvent,
    "kafka": KafkaEvent,
}


def touch_every_field(kind: str, event: dict[str, Any]) -> None:
    """Read the fields a handler would, through Powertools' data classes (raises on a malformed event)."""
    for record in DATA_CLASSES[kind](event).records:
        if kind in ("sqs", "fifo"):
            assert record.body
            assert record.message_id
            assert record.event_source_arn
            assert int(record.attributes.approximate_receive_count) >= 1
        elif kind == "kinesis":
            assert record.kinesis.data_as_text()
            assert record.kinesis.sequence_number
        elif kind == "dynamodb":
            assert record.dynamodb is not None
            assert record.dynamodb.new_image
            assert record.dynamodb.sequence_number
        else:
            assert record.decoded_value
            assert record.topic
            assert record.offset is not None


@pytest.mark.parametrize("kind", KINDS)
def test_events_are_valid_for_powertools(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """`events KIND` writes JSON that Powertools' data classes read and process_partial_response accepts."""
    code, out, err = invoke(capsys, "events", kind, "--count", "20", "--fail-rate", "0.25", "--seed", "1")
    assert (code, err) == (0, "")
    event = json.loads(out)
    touch_every_field(kind, event)
    assert len(records_of(event)) == 20
    response = powertools_response(kind, event)
    assert len(response["batchItemFailures"]) == 5
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == failing_ids(event)


@pytest.mark.parametrize(("count", "rate"), [(1, 0.0), (10, 0.0), (10, 1.0), (50, 0.3), (7, 0.5), (100, 0.05)])
def test_events_fail_marker_count_follows_the_rate(capsys: pytest.CaptureFixture[str], count: int, rate: float) -> None:
    """The number of records carrying "fail" is count x rate, rounded."""
    code, out, _ = invoke(capsys, "events", "sqs", "--count", str(count), "--fail-rate", str(rate), "--seed", "2")
    assert code == 0
    event = json.loads(out)
    assert len(event["Records"]) == count
    assert len(failing_ids(event)) == round(count * rate)
    assert math.isclose(len(failing_ids(event)) / count, rate, abs_tol=0.5 / count)


def test_events_default_count_and_no_failures(capsys: pytest.CaptureFixture[str]) -> None:
    """Without options `events sqs` writes 10 records, none of them failing."""
    code, out, _ = invoke(capsys, "events", "sqs")
    assert code == 0
    event = json.loads(out)
    assert len(event["Records"]) == 10
    assert failing_ids(event) == []


def test_events_fifo_groups(capsys: pytest.CaptureFixture[str]) -> None:
    """`events fifo --groups G` spreads the records over G message groups of a .fifo queue."""
    code, out, _ = invoke(
        capsys, "events", "fifo", "--count", "9", "--groups", "3", "--fail-rate", "0.2", "--seed", "7"
    )
    assert code == 0
    event = json.loads(out)
    groups = [r["attributes"]["MessageGroupId"] for r in event["Records"]]
    assert len(set(groups)) == 3
    assert all(r["eventSourceARN"].endswith(".fifo") for r in event["Records"])
    assert all(r["attributes"]["SequenceNumber"] for r in event["Records"])
    processor = PtSqsFifoPartialProcessor(skip_group_on_error=True)
    response = pt_process_partial_response(event, pt_handler, processor, None)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == fifo_group_skip_ids(event)


def test_events_seed_makes_output_repeatable(capsys: pytest.CaptureFixture[str]) -> None:
    """The same --seed with --fixed-time writes the same bytes; without a seed, ids differ between runs."""
    argv = ("events", "kinesis", "--count", "3", "--seed", "5", "--fixed-time")
    seeded = [invoke(capsys, *argv)[1] for _ in range(2)]
    assert seeded[0] == seeded[1]
    unseeded = [invoke(capsys, "events", "sqs", "--count", "3")[1] for _ in range(2)]
    assert json.loads(unseeded[0])["Records"][0]["messageId"] != json.loads(unseeded[1])["Records"][0]["messageId"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--count", "0"], "--count"),
        (["--fail-rate", "2"], "--fail-rate"),
        (["--fail-rate", "-1"], "--fail-rate"),
        (["--groups", "0"], "--groups"),
    ],
)
def test_events_rejects_bad_options(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    """Invalid --count, --fail-rate or --groups exit 2 with a one-line error and no event."""
    code, out, err = invoke(capsys, "events", "fifo", *argv)
    assert (code, out) == (2, "")
    assert_one_line_error(err, fragment)


def test_events_rejects_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown event kind is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["events", "s3"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# -- dashboards ------------------------------------------------------------------------------------------------------
def test_dashboards_list_names_the_bundled_dashboards(capsys: pytest.CaptureFixture[str]) -> None:
    """`dashboards list` prints each bundled dashboard file with its title."""
    code, out, _ = invoke(capsys, "dashboards", "list")
    assert code == 0
    source = REPO / "dashboards" / "batchlens-overview.json"
    title = json.loads(source.read_text(encoding="utf-8"))["title"]
    assert f"batchlens-overview.json\t{title}" in out.splitlines()


def test_dashboards_export_copies_the_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`dashboards export DIR` creates DIR and copies every dashboard byte for byte, listing the copies."""
    target = tmp_path / "out" / "nested"
    code, out, _ = invoke(capsys, "dashboards", "export", str(target))
    assert code == 0
    exported = target / "batchlens-overview.json"
    assert exported.read_bytes() == (REPO / "dashboards" / "batchlens-overview.json").read_bytes()
    assert str(exported) in out.splitlines()
    assert {p.name for p in target.iterdir()} == {p.name for p in (REPO / "dashboards").glob("*.json")}


def test_dashboards_export_to_a_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Exporting into a path that is a regular file fails with exit 2 and a one-line error."""
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    code, out, err = invoke(capsys, "dashboards", "export", str(blocker))
    assert (code, out) == (2, "")
    assert_one_line_error(err, "cannot write")


def test_dashboards_dir_prefers_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed wheel's batchlens/_dashboards wins over a source tree's dashboards/ folder."""
    package = tmp_path / "src" / "batchlens"
    (package / "_dashboards").mkdir(parents=True)
    (tmp_path / "dashboards").mkdir()
    monkeypatch.setattr(cli, "__file__", str(package / "cli.py"))
    assert cli.dashboards_dir() == (package / "_dashboards").resolve()


def test_dashboards_dir_falls_back_to_the_source_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From an editable install (no _dashboards in the package) the source tree's dashboards/ is used."""
    package = tmp_path / "src" / "batchlens"
    package.mkdir(parents=True)
    (tmp_path / "dashboards").mkdir()
    monkeypatch.setattr(cli, "__file__", str(package / "cli.py"))
    assert cli.dashboards_dir() == (tmp_path / "dashboards").resolve()
    assert (REPO / "dashboards" / "batchlens-overview.json").exists()


def test_dashboards_missing_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation without any dashboards reports it on one line (exit 2)."""
    package = tmp_path / "src" / "batchlens"
    package.mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(package / "cli.py"))
    code, _, err = invoke(capsys, "dashboards", "list")
    assert code == 2
    assert_one_line_error(err, "no bundled dashboards")


# -- help, usage and start-up -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [[], ["demo"], ["run"], ["events"], ["dashboards"], ["dashboards", "list"], ["dashboards", "export"]],
)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """`--help` on the program and on every command prints usage and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: batchlens")
    assert " ".join(argv) in out.splitlines()[0]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchlens` without a command prints usage and exits 2."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "usage: batchlens" in capsys.readouterr().err


def test_importing_the_cli_imports_no_heavy_packages() -> None:
    """`import batchlens.cli` loads neither structlog, OpenTelemetry, sentry_sdk nor pydantic."""
    code = textwrap.dedent(
        """
        import json, sys
        import batchlens.cli
        heavy = ("structlog", "opentelemetry", "sentry_sdk", "pydantic", "aws_lambda_powertools")
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == []


def test_python_dash_m_runs_the_demo() -> None:
    """`python -m batchlens demo` works the same as the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "batchlens", "demo", "--records", "5", "--fail-rate", "0.4", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    expected = failing_ids(testing.sqs_event(count=5, fail_rate=0.4, seed=1))
    assert [f["itemIdentifier"] for f in last_json_line(result.stdout)["batchItemFailures"]] == expected


def test_python_dash_m_propagates_exit_codes(tmp_path: Path) -> None:
    """`python -m batchlens` exits with the command's code: 2 with a one-line error on bad input, 0 for --help."""
    bad = subprocess.run(
        [sys.executable, "-m", "batchlens", "run", str(tmp_path / "nope.json"), "--handler", "x:y"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (bad.returncode, bad.stdout) == (2, "")
    assert_one_line_error(bad.stderr, "cannot read event file")
    helped = subprocess.run([sys.executable, "-m", "batchlens", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    assert "demo" in helped.stdout
    assert "dashboards" in helped.stdout


def test_console_script_runs_a_handler_from_the_current_directory(tmp_path: Path) -> None:
    """The installed `batchlens` script imports the handler from its cwd and follows the exit-code contract."""
    script = console_script()
    if script is None:
        pytest.skip("the batchlens console script is not installed (pip install -e .)")
    (tmp_path / f"{HANDLER_MODULE}.py").write_text(HANDLER_SOURCE, encoding="utf-8")
    event = testing.sqs_event(["ok", "fail"], seed=12)
    write_event(tmp_path, event)
    partial = subprocess.run(
        [script, "run", "event.json", "--handler", f"{HANDLER_MODULE}:handle"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert partial.returncode == 0, partial.stderr
    assert json.loads(partial.stdout) == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert [json.loads(line)["event"] for line in partial.stderr.strip().splitlines()][-1] == "batch processed"
    failed = subprocess.run(
        [script, "run", "event.json", "--handler", f"{HANDLER_MODULE}:always_fail"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (failed.returncode, failed.stdout) == (1, "")


def test_events_piped_into_a_reader_that_closes_early_exits_cleanly() -> None:
    """`batchlens events ... | head -1` neither crashes with BrokenPipeError nor prints a traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m batchlens events sqs --count 2000 --seed 1 | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.startswith("{")
    assert "Traceback" not in proc.stderr
    assert "BrokenPipeError" not in proc.stderr
