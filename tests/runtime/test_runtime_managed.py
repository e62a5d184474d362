"""Lambda Managed Instances under awslambdaric: 4 forked workers, the log socket, no freeze, SIGTERM at the end."""

from __future__ import annotations

import json
from pathlib import Path

from ._collectors import HangingCollector, XrayDaemon
from ._managed import INVOCATIONS, RECORDS, SPANS_PER_INVOCATION, WORKERS, consumed, run_managed
from ._support import batch_spans, failing_ids, json_lines, probes


def test_four_workers_answer_every_request_with_its_own_results(tmp_path: Path) -> None:
    run = run_managed(tmp_path, {})
    # responses: each names the failing record of its own event
    for invocation, event in zip(run.invocations, run.events, strict=True):
        assert invocation.kind == "response", invocation.body
        assert invocation.json() == {"batchItemFailures": [{"itemIdentifier": i} for i in failing_ids(event)]}
    # every worker took requests; each request ran in exactly one worker
    seen = probes(run.logs)
    assert sorted(p["request_id"] for p in seen) == sorted(i.request_id for i in run.invocations)
    assert len({p["pid"] for p in seen}) == WORKERS
    # spans: one batch span per request id, each record span in the trace of the batch holding its message
    assert len(run.spans) == INVOCATIONS * SPANS_PER_INVOCATION
    batches = {s["attributes"]["faas.invocation_id"]: s for s in batch_spans(run.spans)}
    assert sorted(batches) == sorted(i.request_id for i in run.invocations)
    trace_of_message = {
        record["messageId"]: batches[invocation.request_id]["trace_id"]
        for invocation, event in zip(run.invocations, run.events, strict=True)
        for record in event["Records"]
    }
    records = [s for s in run.spans if "messaging.message.id" in s["attributes"] and s not in batches.values()]
    assert len(records) == INVOCATIONS * (SPANS_PER_INVOCATION - 1)
    for span in records:
        assert span["trace_id"] == trace_of_message[span["attributes"]["messaging.message.id"]]
    # logs: every record line carries the request id of the event that held the record
    request_of_message = {
        record["messageId"]: invocation.request_id
        for invocation, event in zip(run.invocations, run.events, strict=True)
        for record in event["Records"]
    }
    lines = [line for line in json_lines(run.logs) if "record_id" in line]
    assert len(lines) == len(request_of_message)
    for line in lines:
        assert line["function_request_id"] == request_of_message[line["record_id"]]


def test_spans_queued_at_sigterm_are_flushed_before_the_worker_ends(tmp_path: Path) -> None:
    # background export (no blocking flush) and SIGTERM right after the last response: the default 5 s export
    # schedule has not run, so only the SIGTERM flush can deliver these spans
    run = run_managed(tmp_path, {"BATCHLENS_FLUSH": "never"}, sigterm=True)
    expected = INVOCATIONS * SPANS_PER_INVOCATION
    assert run.spans_before_sigterm < expected
    assert run.spans_after_sigterm == expected


def test_without_the_sigterm_flush_queued_spans_are_lost(tmp_path: Path) -> None:
    # the figure the SIGTERM flush is measured against (and proof the test above can fail)
    run = run_managed(tmp_path, {"BATCHLENS_FLUSH": "never", "BATCHLENS_SIGTERM_FLUSH": "false"}, sigterm=True)
    assert run.spans_after_sigterm < INVOCATIONS * SPANS_PER_INVOCATION


def test_managed_instances_default_exports_in_the_background_and_loses_nothing_at_sigterm(tmp_path: Path) -> None:
    run = run_managed(tmp_path, {}, sigterm=True)
    assert all(json.loads(i.body)["batchItemFailures"] for i in run.invocations)
    assert run.spans_after_sigterm == INVOCATIONS * SPANS_PER_INVOCATION
    # EMF: no document per request (the 60 s interval has not come), the SIGTERM flush writes one per worker
    assert run.extra["consumed_at_sigterm"] == 0
    assert consumed(run.logs) == INVOCATIONS * RECORDS


def test_workers_still_end_on_sigterm_after_flushing(tmp_path: Path) -> None:
    # checked before the harness's SIGKILL: the SIGTERM handler hands the signal on to the default action
    run = run_managed(tmp_path, {}, invocations=8, sigterm=True, grace_s=1.5)
    assert len(run.extra["workers"]) == WORKERS
    assert run.extra["alive_after_grace"] == set()


def test_a_hanging_collector_adds_no_latency_to_managed_instances_requests(tmp_path: Path) -> None:
    # the blocking flush would hold every request for its deadline (2.70 s measured); the default does not wait
    with HangingCollector() as collector:
        run = run_managed(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}, expect_spans=False)
    assert all(i.kind == "response" for i in run.invocations)
    assert max(run.walls_ms) < 1000


def test_xray_spans_leave_without_a_flush_in_managed_instances(tmp_path: Path) -> None:
    # traces="xray" exports at flush time in a standard sandbox; Managed Instances are not flushed per request, so
    # the spans must leave on the batch processor's schedule (200 ms here) with no SIGTERM
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    expected = 8 * SPANS_PER_INVOCATION
    with XrayDaemon() as daemon:

        def received() -> int:
            return sum(len(spans) for _, spans in daemon.decoded())

        run_managed(
            tmp_path,
            {"OTEL_TRACES_EXPORTER": "xray", "AWS_XRAY_DAEMON_ADDRESS": daemon.address, "OTEL_BSP_SCHEDULE_DELAY": "200"},
            invocations=8,
            expect_spans=False,
            trace_id=header,
            until=lambda: received() >= expected,
        )
        decoded = daemon.decoded()
    assert sum(len(spans) for _, spans in decoded) == expected
    assert {kind for kind, _ in decoded} == {"T1S"}
