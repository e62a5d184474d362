"""Proof on real parts: batchlens metrics scraped by a real Prometheus answer every dashboard query correctly,
and a 10,000-record batch exports every record span through configure().

Both scenarios run batchlens in a child process (this file, run as a script): configure() installs the
OpenTelemetry global providers, which a process accepts only once, so the pytest process stays untouched.
"""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "batchlens-overview.json"
JOB = "batchlens"
REPLY = "@@"  # prefix of protocol lines on the worker's stdout; anything else is diagnostics

# One round of traffic. Every round is identical, so any two scrapes taken between rounds see every
# counter grown in the same proportion, and ratios computed by Prometheus are exact.
SQS_QUEUE = "orders-queue"
KINESIS_STREAM = "clicks"
SQS_BATCH = 10
KINESIS_BATCH = 5
# (number of batches, failures per batch as [error type, ...])
SQS_ROUND: list[tuple[int, list[str]]] = [
    (2, []),  # success
    (3, ["ValueError", "ValueError", "KeyError", "KeyError"]),  # partial_failure
    (1, ["ValueError"] * SQS_BATCH),  # failure
]
KINESIS_ROUND_BATCHES = 2
SQS_RECORDS = sum(n * SQS_BATCH for n, _ in SQS_ROUND)
SQS_FAILURES = {
    error: sum(n * failures.count(error) for n, failures in SQS_ROUND) for error in ("ValueError", "KeyError")
}
SQS_FAILURE_RATIO = sum(SQS_FAILURES.values()) / SQS_RECORDS
SQS_BATCH_OUTCOMES = {"success": 2, "partial_failure": 3, "failure": 1}
RECORD_SLEEP_S = 0.002
# Redeliveries: in every SQS batch, the first SQS_REDELIVERED records carry ApproximateReceiveCount 3.
SQS_REDELIVERED = 3
SQS_REDELIVERED_PER_ROUND = SQS_REDELIVERED * sum(n for n, _ in SQS_ROUND)
# Record age: each batch's first record was enqueued this long before the batch ran, the others 1 s before.
# The ages fall inside one bucket of batchlens.batch.oldest_record_age: SQS (60, 120], Kinesis (10, 30].
SQS_OLDEST_AGE_S, SQS_AGE_BUCKET = 90, (60, 120)
KINESIS_OLDEST_AGE_S, KINESIS_AGE_BUCKET = 20, (10, 30)


# ----------------------------------------------------------------------------------------------------
# worker side (runs in the child process)


def _reply(**payload: Any) -> None:
    print(REPLY + json.dumps(payload), flush=True)


def _record_handler(record: Any) -> str:
    payload = record.kinesis.data_as_json() if hasattr(record, "kinesis") else json.loads(record.body)
    time.sleep(RECORD_SLEEP_S)
    error = payload.get("raise")
    if error == "ValueError":
        raise ValueError("invalid order")
    if error == "KeyError":
        raise KeyError("missing field")
    return "ok"


def _run_round(sqs_processor: Any, kinesis_processor: Any) -> None:
    from batchlens import process_partial_response
    from batchlens.exceptions import BatchProcessingError
    from batchlens.testing import kinesis_event, sqs_event

    for batches, failures in SQS_ROUND:
        for _ in range(batches):
            bodies = [{"n": i, "raise": failures[i] if i < len(failures) else None} for i in range(SQS_BATCH)]
            event = sqs_event(bodies, queue=SQS_QUEUE)
            now_ms = int(time.time() * 1000)
            for i, record in enumerate(event["Records"]):
                record["attributes"]["SentTimestamp"] = str(now_ms - (SQS_OLDEST_AGE_S if i == 0 else 1) * 1000)
                if i < SQS_REDELIVERED:
                    record["attributes"]["ApproximateReceiveCount"] = "3"
            try:
                process_partial_response(event, _record_handler, sqs_processor)
            except BatchProcessingError:
                pass  # every record failed: Lambda retries the whole batch
    for _ in range(KINESIS_ROUND_BATCHES):
        data = [{"n": i} for i in range(KINESIS_BATCH)]
        event = kinesis_event(data, stream=KINESIS_STREAM)
        now = time.time()
        for i, record in enumerate(event["Records"]):
            record["kinesis"]["approximateArrivalTimestamp"] = now - (KINESIS_OLDEST_AGE_S if i == 0 else 1)
        process_partial_response(event, _record_handler, kinesis_processor)


def _kinesis_without_success_counter() -> None:
    """The Kinesis stream's function plays a batchlens version without batchlens.records.succeeded."""
    from batchlens._telemetry import metrics

    original = metrics._Instruments.__init__

    class SqsOnly:
        def __init__(self, counter: Any) -> None:
            self.counter = counter

        def add(self, amount: int, attributes: Any = None, context: Any = None) -> None:
            if attributes.get("messaging.system") != "aws.kinesis":
                self.counter.add(amount, attributes)

    def init(self: Any, meter: Any) -> None:
        original(self, meter)
        self.succeeded = SqsOnly(self.succeeded)

    metrics._Instruments.__init__ = init  # type: ignore[method-assign]


def _metrics_worker() -> None:
    from batchlens import BatchProcessor, EventType
    from batchlens.telemetry import configure

    _kinesis_without_success_counter()

    handle = configure(
        service_name="batchlens-integration",
        traces="none",
        metrics="prometheus",
        logs="none",
        prometheus_port=0,
        prometheus_addr="127.0.0.1",
    )
    sqs_processor = BatchProcessor(event_type=EventType.SQS)
    kinesis_processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    _reply(port=handle.prometheus_port, is_global=handle.is_global)
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            _run_round(sqs_processor, kinesis_processor)
            _reply(done=time.time())
        elif command == "exit":
            break
    handle.shutdown()


def _spans_worker(records: int) -> None:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from batchlens import BatchProcessor, EventType, process_partial_response
    from batchlens.telemetry import configure
    from batchlens.testing import sqs_event

    class StalledExporter(InMemorySpanExporter):
        """Exports nothing until the batch is done: the worst case of a slow network exporter."""

        def __init__(self) -> None:
            super().__init__()
            self.gate = threading.Event()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.gate.wait(timeout=120)
            return super().export(spans)

    exporter = StalledExporter()
    handle = configure(service_name="big-batch", traces=exporter, metrics="none", logs="none")
    processor = BatchProcessor(event_type=EventType.SQS)
    event = sqs_event(count=records, queue="big-queue", seed=10_000)
    response = process_partial_response(event, lambda record: record.message_id, processor)
    exporter.gate.set()
    flushed = handle.flush(timeout_millis=60_000)
    spans = exporter.get_finished_spans()
    batch_spans = [s for s in spans if s.attributes and "messaging.batch.message_count" in s.attributes]
    record_spans = [s for s in spans if s.attributes and "messaging.message.id" in s.attributes]
    batch_span_ids = {s.context.span_id for s in batch_spans}
    _reply(
        is_global=handle.is_global,
        flushed=flushed,
        failures=len(response["batchItemFailures"]),
        total_spans=len(spans),
        batch_spans=len(batch_spans),
        batch_message_count=[s.attributes["messaging.batch.message_count"] for s in batch_spans],
        record_spans=len(record_spans),
        record_names=sorted({s.name for s in record_spans}),
        record_ids_match=sorted(str(s.attributes["messaging.message.id"]) for s in record_spans)
        == sorted(r["messageId"] for r in event["Records"]),
        parented_by_batch=sum(1 for s in record_spans if s.parent is not None and s.parent.span_id in batch_span_ids),
    )
    handle.shutdown()


# ----------------------------------------------------------------------------------------------------
# test side


class Worker:
    """This file running as a child process, spoken to through stdin and ``@@``-prefixed stdout lines."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BATCHLENS_", "AWS_LAMBDA_"))}
        # Per-record log lines would only slow the worker down; metrics and spans are what is under test.
        env["BATCHLENS_LOGGING"] = "false"
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(REPLY):
                self.replies.put(json.loads(line[len(REPLY) :]))
            else:
                self.output.append(line)

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"worker gave no answer within {timeout}s; its output:\n{''.join(self.output)[-5000:]}")

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("exit")
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def metrics_worker() -> Iterator[Worker]:
    worker = Worker("metrics")
    yield worker
    worker.stop()


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _substitute(text: str, system: str, destination: str, rate_interval: str) -> str:
    return (
        text.replace("$messaging_system", system)
        .replace("$destination", destination)
        .replace("$__rate_interval", rate_interval)
        .replace("$__range", rate_interval)  # the table's range: the same window, so both read the same traffic
    )


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def _single(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return _value(result[0])


def _by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {sample["metric"][label]: _value(sample) for sample in result}


class PanelResults:
    """Results of every target of every panel, keyed by (panel title, refId)."""

    def __init__(self, prometheus: Any, at: float, system: str, destination: str, window: str) -> None:
        self.results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.exprs: dict[tuple[str, str], str] = {}
        for panel in _dashboard()["panels"]:
            for target in panel["targets"]:
                expr = _substitute(target["expr"], system, destination, window)
                assert "$" not in expr, expr
                key = (panel["title"], target["refId"])
                self.exprs[key] = expr
                self.results[key] = prometheus.query(expr, at=at)

    def panel(self, title_part: str) -> dict[str, list[dict[str, Any]]]:
        found = {ref: r for (title, ref), r in self.results.items() if title_part.lower() in title.lower()}
        assert found, title_part
        return found


@pytest.mark.integration
def test_every_dashboard_query_against_real_prometheus(start_prometheus: Any, metrics_worker: Worker) -> None:
    """Batches through batchlens, scraped by Prometheus: every panel query returns the injected truth."""
    hello = metrics_worker.reply(timeout=60)
    assert hello["is_global"] is True
    prometheus = start_prometheus({JOB: [f"127.0.0.1:{hello['port']}"]})
    prometheus.wait_for("the batchlens target to be up", lambda: prometheus.last_scrape(JOB), timeout=60)

    # Warm-up round: creates every series. The rate window starts after its scrape, so the first sample
    # in the window is a consistent between-rounds snapshot (T2), never a half-finished round.
    metrics_worker.send("round")
    done = metrics_worker.reply(timeout=120)["done"]
    first = prometheus.wait_for_scrape_after(JOB, done)
    prometheus.wait_for_scrape_after(JOB, first)
    window_start = first + 0.001
    last = first
    for _ in range(2):
        metrics_worker.send("round")
        done = metrics_worker.reply(timeout=120)["done"]
        last = prometheus.wait_for_scrape_after(JOB, done)
    at = last + 0.001
    window = f"{math.ceil((at - window_start) * 1000)}ms"

    # Variables, as Grafana's label_values() queries them.
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    system_query = variables["messaging_system"]["query"]
    assert system_query.startswith("label_values(")
    match, label = system_query[len("label_values(") : -1].rsplit(", ", 1)
    assert {"aws_sqs", "aws.kinesis"} <= set(prometheus.label_values(label, match, at - 3600, at))
    match, label = _substitute(variables["destination"]["query"], "aws_sqs", "", window)[
        len("label_values(") : -1
    ].rsplit(", ", 1)
    assert prometheus.label_values(label, match, at - 3600, at) == [SQS_QUEUE]

    # Every query of every panel, for the SQS queue.
    sqs = PanelResults(prometheus, at, "aws_sqs", SQS_QUEUE, window)
    for key, result in sqs.results.items():
        assert result, f"no data for {key}: {sqs.exprs[key]}"
        for sample in result:
            assert math.isfinite(_value(sample)), (key, sample)
            assert _value(sample) >= 0, (key, sample)

    records = sqs.panel("records per second by outcome")
    succeeded, failed = _single(records["A"]), _single(records["B"])
    assert succeeded > 0
    # the exact counter is what the panel reads for the SQS queue
    counted = prometheus.query(
        f'sum(rate(batchlens_records_succeeded_total{{messaging_system="aws_sqs"}}[{window}]))', at=at
    )
    assert _single(counted) == pytest.approx(succeeded, rel=1e-9)
    assert failed / (succeeded + failed) == pytest.approx(SQS_FAILURE_RATIO, rel=1e-6)
    window_s = int(window[:-2]) / 1000  # increase() over the window = rate() over it x its length

    (ratio_result,) = sqs.panel("failure ratio").values()
    assert _single(ratio_result) == pytest.approx(SQS_FAILURE_RATIO, rel=1e-6)

    (by_type_result,) = sqs.panel("failures by error type").values()
    by_type = _by_label(by_type_result, "error_type")
    assert set(by_type) == set(SQS_FAILURES)
    assert by_type["KeyError"] / by_type["ValueError"] == pytest.approx(
        SQS_FAILURES["KeyError"] / SQS_FAILURES["ValueError"], rel=1e-6
    )
    assert sum(by_type.values()) == pytest.approx(failed, rel=1e-6)

    duration = sqs.panel("duration (p50")
    p50, p95, p99 = (_single(duration[ref]) for ref in ("A", "B", "C"))
    assert 0 < p50 <= p95 <= p99 <= 10  # seconds; handlers sleep 2 ms, the largest bucket bound is 10 s

    (outcomes_result,) = sqs.panel("batches by outcome").values()
    outcomes = _by_label(outcomes_result, "batchlens_batch_outcome")
    assert set(outcomes) == set(SQS_BATCH_OUTCOMES)
    total = sum(outcomes.values())
    for outcome, count in SQS_BATCH_OUTCOMES.items():
        assert outcomes[outcome] / total == pytest.approx(count / sum(SQS_BATCH_OUTCOMES.values()), rel=1e-6)

    size = sqs.panel("records per batch")
    assert _single(size["A"]) == pytest.approx(SQS_BATCH, rel=1e-6)
    assert SQS_BATCH / 2 < _single(size["B"]) <= SQS_BATCH  # p95 interpolated inside the (5, 10] bucket

    age = sqs.panel("oldest record age")
    p50_age, p95_age, max_age = (_by_label(age[ref], "messaging_destination_name") for ref in ("A", "B", "C"))
    assert set(p50_age) == set(p95_age) == set(max_age) == {SQS_QUEUE}
    low, high = SQS_AGE_BUCKET
    assert low < p50_age[SQS_QUEUE] <= p95_age[SQS_QUEUE] <= max_age[SQS_QUEUE] == high

    (redelivered_result,) = sqs.panel("redeliveries").values()
    redelivered = _by_label(redelivered_result, "messaging_destination_name")
    assert set(redelivered) == {SQS_QUEUE}
    assert redelivered[SQS_QUEUE] / (succeeded + failed) == pytest.approx(
        SQS_REDELIVERED_PER_ROUND / SQS_RECORDS, rel=1e-6
    )

    (heatmap_result,) = sqs.panel("heatmap").values()
    cells = _by_label(heatmap_result, "le")
    assert cells["+Inf"] == pytest.approx((succeeded + failed) * window_s, rel=1e-6)  # every record in the window
    bounds = sorted(cells, key=float)
    assert [cells[b] for b in bounds] == sorted(cells.values())  # cumulative buckets, as the heatmap expects

    (top_result,) = sqs.panel("top 10 error types").values()
    top = _by_label(top_result, "error_type")
    assert top == pytest.approx({error: value * window_s for error, value in by_type.items()}, rel=1e-6)

    # The Kinesis stream never fails: the ratio reads 0 (not "no data"), and only success batches exist.
    kinesis = PanelResults(prometheus, at, "aws.kinesis", KINESIS_STREAM, window)
    (kinesis_ratio,) = kinesis.panel("failure ratio").values()
    assert _single(kinesis_ratio) == 0
    (kinesis_by_type,) = kinesis.panel("failures by error type").values()
    assert kinesis_by_type == []
    (kinesis_top,) = kinesis.panel("top 10 error types").values()
    assert kinesis_top == []
    (kinesis_redelivered,) = kinesis.panel("redeliveries").values()
    assert kinesis_redelivered == []  # only SQS reports receive counts
    low, high = KINESIS_AGE_BUCKET
    kinesis_age = kinesis.panel("oldest record age")
    assert low < _single(kinesis_age["A"]) <= _single(kinesis_age["B"]) <= _single(kinesis_age["C"]) == high
    (kinesis_outcomes,) = kinesis.panel("batches by outcome").values()
    assert set(_by_label(kinesis_outcomes, "batchlens_batch_outcome")) == {"success"}
    assert _single(kinesis.panel("records per batch")["A"]) == pytest.approx(KINESIS_BATCH, rel=1e-6)

    # The stream's function has no success counter: its successes fall back to consumed minus failed.
    assert prometheus.query('batchlens_records_succeeded_total{messaging_system="aws.kinesis"}', at=at) == []
    kinesis_consumed = prometheus.query(
        f'sum(rate(messaging_client_consumed_messages_total{{messaging_system="aws.kinesis"}}[{window}]))', at=at
    )
    assert _single(kinesis.panel("records per second by outcome")["A"]) == pytest.approx(
        _single(kinesis_consumed), rel=1e-9
    )
    assert _single(kinesis_consumed) > 0

    # "All" selects both systems: every query has data and success throughput is the sum of both.
    everything = PanelResults(prometheus, at, ".*", ".*", window)
    for key, result in everything.results.items():
        assert result, f"no data for {key} with All selected"
    all_succeeded = _single(everything.panel("records per second by outcome")["A"])
    kinesis_succeeded = _single(kinesis.panel("records per second by outcome")["A"])
    assert all_succeeded == pytest.approx(succeeded + kinesis_succeeded, rel=1e-6)


@pytest.mark.integration
def test_ten_thousand_record_batch_exports_every_record_span() -> None:
    """A 10,000-record SQS batch through configure(traces=<exporter>) exports all 10,000 record spans."""
    worker = Worker("spans", "10000")
    try:
        summary = worker.reply(timeout=300)
    finally:
        worker.stop()
    assert summary["is_global"] is True
    assert summary["flushed"] is True
    assert summary["failures"] == 0
    assert summary["batch_spans"] == 1
    assert summary["batch_message_count"] == [10_000]
    assert summary["record_spans"] == 10_000
    assert summary["record_ids_match"] is True
    assert summary["record_names"] == ["process big-queue"]
    assert summary["parented_by_batch"] == 10_000


if __name__ == "__main__":
    if sys.argv[1] == "metrics":
        _metrics_worker()
    elif sys.argv[1] == "spans":
        _spans_worker(int(sys.argv[2]))
    else:
        raise SystemExit(f"unknown worker mode {sys.argv[1]!r}")
