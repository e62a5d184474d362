"""``--traces`` on ``demo`` and ``run``: the terminal tree, the console and OTLP exporters, OTEL_TRACES_EXPORTER.

(``poll --traces tree`` is in tests/test_cli_poll.py.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from _cli_support import handler_module, invoke, otel_globals_restored, run_command, write_event
from _collector_support import answering_collector
from _xray_support import Daemon, spans_of
from _xray_support import daemon_fixture as daemon_fixture
from batchlens import testing
from batchlens._cli_batch import make_event
from batchlens._cli_traces import render_batch

HANDLERS = """
from opentelemetry import trace

def record_handler(record):
    with trace.get_tracer("app").start_as_current_span("charge card"):
        if "fail" in record.body:
            raise ValueError("rejected")
"""
ROW = re.compile(r"^[├└]─ process my-queue (\S+)  (OK|ERROR \S+)  [\d.]+ ms(?:  <- producer ([0-9a-f]{32}))?$")


@pytest.fixture(autouse=True)
def _otel_globals() -> Iterator[None]:
    with otel_globals_restored():
        yield


@pytest.fixture
def event_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    handler_module(tmp_path, monkeypatch, "trace_handlers", HANDLERS)
    event = testing.sqs_event(count=4, fail_rate=0.5, seed=2, trace_header=True)
    return write_event(tmp_path / "event.json", event)


def test_demo_prints_a_tree_with_producer_links_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "demo", "--records", "6", "--fail-rate", "0.34")
    assert code == 0
    lines = out.splitlines()
    top = lines.index("Traces (one tree per batch):")
    trace_line, batch_line = lines[top + 1], lines[top + 2]
    trace_id = trace_line.removeprefix("trace ")
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert batch_line.startswith("process my-queue (6 records)  OK  ")
    assert batch_line.endswith("6 producer links")
    rows = [ROW.match(line) for line in lines[top + 3 : top + 9]]
    assert all(rows), lines[top + 3 : top + 9]
    assert sum(row.group(2).startswith("ERROR ") for row in rows if row) == 2
    # the links are the producers named in the event's trace headers (seeded: the same event as the demo's)
    event = make_event("sqs", 6, 0.34, 7)
    roots = {r["attributes"]["AWSTraceHeader"].split(";")[0][7:].replace("-", "") for r in event["Records"]}
    assert {row.group(3) for row in rows if row} == roots
    # the log lines carry the same trace id as the tree
    logs = [json.loads(line) for line in lines if line.startswith("  {")]
    assert {entry["trace_id"] for entry in logs} == {trace_id}
    assert re.search(r"spans\s+7 \(1 batch, 6 record, 6 producer links\)", out)


def test_demo_traces_none_has_no_tree_but_counts_spans(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "demo", "--records", "4", "--traces", "none")
    assert code == 0
    assert "Traces (one tree per batch)" not in out
    assert "├─" not in out
    assert re.search(r"spans\s+5 \(1 batch, 4 record, 4 producer links\)", out)


def test_run_traces_tree_goes_to_stderr_with_the_handlers_own_spans(event_file: str) -> None:
    """A real process (the handler's own spans go through the OpenTelemetry globals, set once per process)."""
    argv = ("run", event_file, "--handler", "trace_handlers:record_handler", "--traces", "tree")
    done = run_command(*argv, cwd=Path(event_file).parent)
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 0, err
    assert len(json.loads(out)["batchItemFailures"]) == 2  # stdout: the response only
    lines = err.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("process my-queue (4 records)"))
    assert lines[top - 1].startswith("trace ")
    tree = lines[top + 1 : top + 9]
    records = [line for line in tree if line.startswith(("├─ process", "└─ process"))]
    children = [line for line in tree if "charge card" in line]
    assert len(records) == 4
    assert len(children) == 4  # the handler's own span, one level below its record
    assert all(line.startswith(("│  └─ charge card", "   └─ charge card")) for line in children)
    assert sum("ERROR ValueError" in line for line in records) == 2


def test_run_traces_console_writes_otel_json_to_stderr(event_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(
        capsys, "run", event_file, "--handler", "trace_handlers:record_handler", "--traces", "console"
    )
    assert code == 0
    json.loads(out)
    assert err.count('"name": "process my-queue"') == 5  # four records and the batch


def test_run_honours_otel_traces_exporter(
    event_file: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    code, out, err = invoke(capsys, "run", event_file, "--handler", "trace_handlers:record_handler")
    assert code == 0
    assert len(json.loads(out)["batchItemFailures"]) == 2  # stdout stays the response alone
    assert err.count('"name": "process my-queue"') == 5
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "tree,console")
    code, out, err = invoke(capsys, "run", event_file, "--handler", "trace_handlers:record_handler")
    assert code == 0
    json.loads(out)
    assert err.count('"name": "process my-queue"') == 5
    assert "process my-queue (4 records)" in err


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A fake OTLP/HTTP collector on 127.0.0.1 that keeps the request bodies."""
    with answering_collector() as (url, seen):
        yield url, seen.bodies


def test_run_traces_otlp_exports_to_the_collector(
    event_file: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, bodies = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    code, _, _ = invoke(capsys, "run", event_file, "--handler", "trace_handlers:record_handler", "--traces", "otlp")
    assert code == 0
    traces = [body for path, body in bodies if path == "/v1/traces"]
    assert traces
    assert sum(body.count(b"process my-queue") for body in traces) == 5


def test_run_traces_xray_sends_the_spans_to_the_daemon(
    event_file: str, capsys: pytest.CaptureFixture[str], daemon: Daemon
) -> None:
    """--traces xray is configure(traces="xray"): the batch's spans reach the X-Ray daemon address by UDP."""
    code, out, err = invoke(capsys, "run", event_file, "--handler", "trace_handlers:record_handler", "--traces", "xray")
    assert code == 0, err
    assert len(json.loads(out)["batchItemFailures"]) == 2
    spans = spans_of(daemon.requests(wait_s=2.0))
    assert sorted(span.name for span in spans if span.name == "process my-queue") == ["process my-queue"] * 5


def _spans(failed: set[int], count: int) -> list[object]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("process q", attributes={"messaging.batch.message_count": count}):
        for i in range(count):
            with tracer.start_as_current_span("process q", attributes={"messaging.message.id": f"m{i}"}) as span:
                if i in failed:
                    span.set_attribute("error.type", "ValueError")
                    span.set_status(Status(StatusCode.ERROR))
    return list(exporter.get_finished_spans())


def test_a_large_batch_tree_shows_failed_records_first_and_counts_the_rest() -> None:
    spans = _spans({3, 40, 41}, 50)
    root = spans[-1]
    lines = render_batch(root, spans, max_records=5)
    rows = lines[2:]
    assert [row.split()[3] for row in rows[:-1]] == ["m0", "m1", "m3", "m40", "m41"]  # in batch order
    assert rows[-1] == "└─ ... 45 more records (0 failed)"
    assert lines[1].startswith("process q (50 records)  OK")
