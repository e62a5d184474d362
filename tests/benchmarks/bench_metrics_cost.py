"""Instructions the metrics observer costs per batch (batch start + batch end), counted by callgrind.

Run:  python tests/benchmarks/bench_metrics_cost.py [--batches 200]

For batches of 1 and of 10 SQS records (all successful, one queue, as most SQS functions see them) and of 10
records with one failure, the observer's ``batch_start`` and ``batch_end`` run on prepared ``BatchInfo`` objects
against an SDK ``MeterProvider`` with an ``InMemoryMetricReader`` (so nothing is collected or exported during the
run). Each case runs in its own interpreter under callgrind twice, with 0 and with ``--batches`` batches after the
same warm-up; the difference of the two totals divided by the number of batches is the cost of one batch, with
start-up, imports and warm-up left out. Only the observer's public hooks and ``BatchInfo``/``RecordInfo`` are used,
so the script measures older checkouts too (``PYTHONPATH=<checkout>/src``). Prints figures, exits 0.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CASES = {"1 record": (1, 0), "10 records": (10, 0), "10 records, 1 failed": (10, 1), "floor, 1 record": (1, -1)}
"""name -> (records, failed records); -1 failed: the floor, the four SDK calls of a 1-record batch and nothing else."""


def run_case(size: int, failures: int, batches: int, prepare: int) -> None:
    """Prepare ``prepare`` batches, warm up, run ``batches`` of them through the observer (one callgrind run)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from batchlens import Telemetry
    from batchlens._observer import FAILURE, SUCCESS, BatchInfo, RecordInfo
    from batchlens._sources import SQS
    from batchlens._telemetry.metrics import MetricsObserver
    from batchlens.testing import sqs_event

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    if failures < 0:
        run_floor(provider, batches)
        return
    observer = MetricsObserver(Telemetry(meter_provider=provider, tracing=False, logging=False))
    records = sqs_event(count=size, queue="orders", seed=1)["Records"]

    def batch() -> BatchInfo:
        info = BatchInfo(SQS, records, None, 0)
        for index, raw in enumerate(records):
            record = RecordInfo(index, raw, 1_000)
            record.end_ns = 251_000
            if index < failures:
                record.outcome = FAILURE
                record.exception = ValueError("boom")
            else:
                record.outcome = SUCCESS
            info.record_infos.append(record)
        info.tally()
        return info

    warm = [batch() for _ in range(20)]
    prepared = [batch() for _ in range(prepare)]  # the same in both runs of a case: subtracted away
    for info in warm + prepared[:batches]:
        observer.batch_start(info)
        observer.batch_end(info)


def run_floor(provider: Any, batches: int) -> None:
    """The instrument calls a 1-record successful batch makes, with prepared attributes: what no code can avoid."""
    from opentelemetry import trace

    meter = provider.get_meter("batchlens")
    age = meter.create_histogram("batchlens.batch.oldest_record_age", unit="s")
    duration = meter.create_histogram("messaging.process.duration", unit="s")
    consumed = meter.create_counter("messaging.client.consumed.messages", unit="{message}")
    size = meter.create_histogram("batchlens.batch.size", unit="{record}")
    context = trace.set_span_in_context(trace.INVALID_SPAN)
    batch = {"messaging.system": "aws_sqs", "messaging.destination.name": "orders"}
    process = {**batch, "messaging.operation.name": "process"}
    outcome = {**batch, "batchlens.batch.outcome": "success"}
    for _ in range(20 + batches):
        age.record(1.0, batch, context=context)
        duration.record(0.00025, process, context=context)
        consumed.add(1, process)
        size.record(1, outcome, context=context)


def _count(valgrind: str, size: int, failures: int, batches: int, prepare: int) -> int:
    proc = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--one", str(size), str(failures), str(batches), str(prepare)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise SystemExit(f"callgrind printed no total: {proc.stderr[-500:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--one", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_case(*args.one)
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    jobs: list[tuple[str, int]] = [(name, n) for name in CASES for n in (0, args.batches)]

    def count(job: tuple[str, int]) -> int:
        size, failures = CASES[job[0]]
        return _count(valgrind, size, failures, job[1], args.batches)

    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = dict(zip(jobs, pool.map(count, jobs), strict=True))
    print("metrics observer, instructions per batch (batch_start + batch_end, callgrind):")
    for name in CASES:
        per_batch = (totals[(name, args.batches)] - totals[(name, 0)]) / args.batches
        print(f"  {name:<22} {per_batch:>10,.0f}")


if __name__ == "__main__":
    main()
