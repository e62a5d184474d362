"""What batchlens' log lines cost, in CPU instructions counted by valgrind's callgrind.

Run:  python tests/benchmarks/bench_logs.py            (needs valgrind; a few minutes on 2 cores)

Figures (instructions per line or per record; each case runs in its own interpreter at N and 3N iterations, and
the difference of the two totals divided by 2N leaves out start-up, imports and warm-up):
  processed   one ``record processed`` line through ``configure(logs="json")``, batchlens' keys, bound logger
  failed      one ``record failed`` line through ``configure(logs="json")`` with a fresh exception (minus the
              cost of raising it, measured on its own as ``raise``)
  A           Powertools' BatchProcessor per record, no telemetry (bench_overhead.py's configuration A)
  lambda      batchlens per record as it runs in Lambda by default: no OpenTelemetry SDK, structlog
              unconfigured, ``AWS_LAMBDA_FUNCTION_NAME`` set, so the private JSON logger writes each line
The SQS batches have ~10% failures and a trivial handler, as in bench_overhead.py; output goes to /dev/null.
This is not a test: it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SIZES = {"processed": 2000, "failed": 1000, "raise": 1000, "A": 1000, "lambda": 1000}
FIELDS = {
    "record_id": "059f36b4-87a3-44ab-83d2-661975830a7d",
    "outcome": "success",
    "event_source": "aws:sqs",
    "destination": "orders",
    "duration_ms": 0.042,
    "trace_id": "0af7651916cd43dd8448eb211c80319c",
    "span_id": "b7ad6b7169203331",
}


def handler(record: Any) -> dict[str, Any]:
    body = record.body
    if "fail" in body:
        raise ValueError("rejected")
    return {"ok": True, "n": len(body)}


def _raise(i: int) -> None:
    raise ValueError(f"rejected {i}")


def _fresh_exception(i: int) -> ValueError:
    try:
        _raise(i)
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def run_one(case: str, count: int) -> None:
    """The body of one callgrind run: warm up, then ``count`` iterations of ``case``."""
    if case in ("processed", "failed", "raise"):
        import structlog

        from batchlens.telemetry import configure

        configure(service_name="bench", traces="none", metrics="none", logs="json", set_global=False)
        log = structlog.get_logger("batchlens").bind()
        failed = {**FIELDS, "outcome": "failure", "error_type": "ValueError"}
        for i in range(50):  # warm-up: caches, linecache, orjson
            log.info("record processed", **FIELDS)
            log.error("record failed", exc_info=_fresh_exception(i), **failed)
        if case == "processed":
            for _ in range(count):
                log.info("record processed", **FIELDS)
        elif case == "failed":
            for i in range(count):
                log.error("record failed", exc_info=_fresh_exception(i), **failed)
        else:
            for i in range(count):
                _fresh_exception(i)
        return
    from batchlens.testing import sqs_event

    event = sqs_event(count=3 * SIZES[case], fail_rate=0.1, seed=42)
    warm = sqs_event(count=100, fail_rate=0.1, seed=42)
    if case == "A":
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        processor: Any = BatchProcessor(event_type=EventType.SQS)
        run: Any = process_partial_response
    else:
        import batchlens

        processor = batchlens.BatchProcessor(batchlens.EventType.SQS)
        run = batchlens.process_partial_response
    run(warm, handler, processor)
    run(warm, handler, processor)
    run({"Records": event["Records"][:count]}, handler, processor)


def count_instructions(case: str, count: int, src: str | None) -> int:
    env = dict(os.environ, AWS_LAMBDA_FUNCTION_NAME="bench-logs" if case == "lambda" else "")
    if case != "lambda":
        env.pop("AWS_LAMBDA_FUNCTION_NAME")
    if src:
        env["PYTHONPATH"] = src
    valgrind = shutil.which("valgrind")
    assert valgrind is not None
    one = ["--one", case, "--count", str(count)]
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, *one],
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=env,
            check=True,
        )
    match = re.search(rb"Collected : (\d+)", proc.stderr)
    if match is None:
        raise SystemExit(f"callgrind printed no total for {case}: {proc.stderr[-500:]!r}")
    return int(match.group(1))


def line_costs(cases: list[str], src: str | None = None) -> dict[str, float]:
    """Instructions per line (or per record) of each case; ``failed`` has the cost of raising subtracted."""
    jobs = [(case, n) for case in cases for n in (SIZES[case], 3 * SIZES[case])]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: count_instructions(*job, src), jobs), strict=True))
    per = {case: (totals[(case, 3 * SIZES[case])] - totals[(case, SIZES[case])]) / (2 * SIZES[case]) for case in cases}
    if "failed" in per and "raise" in per:
        per["failed"] -= per["raise"]
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--src", help="PYTHONPATH for the measured runs (e.g. another checkout's src)")
    parser.add_argument("--cases", default=",".join(SIZES), help="comma-separated cases to measure")
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.count)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed")
        return 0
    cases = args.cases.split(",")
    per = line_costs(cases, args.src)
    print("Instructions per line / per record (callgrind):")
    for case in cases:
        print(f"  {case:<10} {per[case] / 1000:8.1f}k")
    if "lambda" in per and "A" in per:
        print(f"  lambda / A {per['lambda'] / per['A']:8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
