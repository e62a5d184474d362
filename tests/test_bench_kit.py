"""The Powertools-kit benchmark (tests/benchmarks/bench_kit.py) runs, and each configuration does the work it claims.

A smoke run of one small SQS batch per configuration, without callgrind: the figures mean something only if P logs,
traces and counts every record, and L emits its log lines, EMF metrics and spans.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).parent / "benchmarks" / "bench_kit.py"
SIZE = 10  # record 4 fails
INVOCATIONS = 3  # two warm-ups and the measured one


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    pytest.importorskip("aws_xray_sdk")
    spec = importlib.util.spec_from_file_location("bench_kit", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules["bench_kit"] = module
    try:
        spec.loader.exec_module(module)
        result: dict[str, Any] = module.smoke(SIZE)
    finally:
        sys.modules.pop("bench_kit", None)
    return result


@pytest.mark.slow
def test_every_configuration_reports_the_failing_record(summary: dict[str, Any]) -> None:
    """A, P and L answer the same partial failure: one failed record of ten."""
    assert {name: summary[name]["failures"] for name in "APL"} == {"A": [1], "P": [1], "L": [1]}


@pytest.mark.slow
def test_powertools_kit_logs_traces_and_counts_every_record(summary: dict[str, Any]) -> None:
    """P: an info line per record and an exception line per failure, a subsegment per record by UDP, EMF counts."""
    kit = summary["P"]
    messages = [line["message"] for line in kit["logs"]]
    assert messages.count("processing record") == SIZE * INVOCATIONS
    assert messages.count("record failed") == INVOCATIONS
    assert all(line["function_name"] == "bench" for line in kit["logs"])  # inject_lambda_context
    # one datagram per record subsegment and one per handler subsegment
    assert kit["datagrams"] == (SIZE + 1) * INVOCATIONS
    counted = sum(
        len(doc["RecordsProcessed"]) if isinstance(doc["RecordsProcessed"], list) else 1
        for doc in kit["emf"]
        if "RecordsProcessed" in doc
    )
    assert counted == SIZE * INVOCATIONS
    assert summary["A"]["logs"] == summary["A"]["emf"] == []
    assert summary["A"]["datagrams"] == 0


@pytest.mark.slow
def test_batchlens_emits_log_lines_metrics_and_spans(summary: dict[str, Any]) -> None:
    """L: one log line per record, EMF with the record counts, spans exported at every flush."""
    lens = summary["L"]
    per_record = [line for line in lens["logs"] if "record_id" in line]
    assert len(per_record) == SIZE * INVOCATIONS
    names = {name for doc in lens["emf"] for name in doc if not name.startswith("_") and "." in name}
    assert {"messaging.client.consumed.messages", "batchlens.records.failed", "batchlens.records.succeeded"} <= names
    succeeded = sum(doc.get("batchlens.records.succeeded", 0) for doc in lens["emf"])
    assert succeeded == (SIZE - 1) * INVOCATIONS
    # spans leave by OTLP to the collector, or by UDP to the daemon once the X-Ray exporter is the default
    assert summary["collector"]["requests"] + lens["datagrams"] >= INVOCATIONS
