"""Parallel processing benchmark: sequential vs ``max_workers=8``, and a large async batch with and without a cap.

Run:  python tests/benchmarks/bench_parallel.py [--records 200] [--sleep-ms 10] [--rounds 3] [--telemetry] [--check]

Sync: an I/O-bound handler (``time.sleep``) on an SQS batch, run by ``BatchProcessor`` sequentially and with
``max_workers=8``; the median wall time of each and the speedup are printed (target: at least 5x).
Async: 1,000 records each awaiting ``asyncio.sleep`` for the same time, run by ``AsyncBatchProcessor`` unlimited
and with ``max_concurrency=100`` (target: well under 1 s unlimited).
Telemetry is off unless ``--telemetry`` (then in-memory SDK providers and captured logs are used, as in tests).
This is not a test: it prints figures and exits 0, or 1 with ``--check`` when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing import lambda_context, sqs_event

SPEEDUP_TARGET = 5.0
ASYNC_TARGET_S = 1.0


def median_time(run: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextlib.contextmanager
def telemetry_sink(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from batchlens.testing import capture_telemetry

    with capture_telemetry():
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--async-records", type=int, default=1000)
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--telemetry", action="store_true", help="emit spans, logs and metrics (in memory)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    pause = args.sleep_ms / 1000
    telemetry = None if args.telemetry else Telemetry.disabled()
    event = sqs_event([{"i": i, "status": "fail" if i % 20 == 7 else "ok"} for i in range(args.records)], seed=1)
    async_event = sqs_event(count=args.async_records, seed=2)

    def handler(record: Any) -> None:
        time.sleep(pause)
        if "fail" in record.body:
            raise ValueError("rejected")

    async def async_handler(record: Any) -> None:
        await asyncio.sleep(pause)

    sequential = BatchProcessor(EventType.SQS, telemetry=telemetry)
    threaded = BatchProcessor(EventType.SQS, telemetry=telemetry, max_workers=args.workers)
    unlimited = AsyncBatchProcessor(EventType.SQS, telemetry=telemetry)
    capped = AsyncBatchProcessor(EventType.SQS, telemetry=telemetry, max_concurrency=100)

    with telemetry_sink(args.telemetry):
        expected = process_partial_response(event, handler, sequential, lambda_context())
        assert process_partial_response(event, handler, threaded, lambda_context()) == expected, "responses differ"
        seq_s = median_time(lambda: process_partial_response(event, handler, sequential, lambda_context()), args.rounds)
        par_s = median_time(lambda: process_partial_response(event, handler, threaded, lambda_context()), args.rounds)
        async_s = median_time(
            lambda: async_process_partial_response(async_event, async_handler, unlimited, lambda_context()),
            args.rounds,
        )
        capped_s = median_time(
            lambda: async_process_partial_response(async_event, async_handler, capped, lambda_context()),
            args.rounds,
        )

    speedup = seq_s / par_s
    mode = "telemetry on (in-memory)" if args.telemetry else "telemetry off"
    print(f"batchlens parallel benchmark: {mode}, median of {args.rounds} rounds, handler waits {args.sleep_ms:g} ms")
    print(f"  sync  {args.records} records, sequential          {seq_s * 1000:8.1f} ms")
    print(f"  sync  {args.records} records, max_workers={args.workers:<3}       {par_s * 1000:8.1f} ms")
    verdict = "ok" if speedup >= SPEEDUP_TARGET else "MISSED"
    print(f"  speedup {speedup:.1f}x (target >= {SPEEDUP_TARGET:g}x: {verdict})")
    print(f"  async {args.async_records} records, unlimited            {async_s * 1000:8.1f} ms", end="")
    async_verdict = "ok" if async_s < ASYNC_TARGET_S else "MISSED"
    print(f"  (target < {ASYNC_TARGET_S * 1000:.0f} ms: {async_verdict})")
    floor_ms = args.async_records / 100 * args.sleep_ms
    print(
        f"  async {args.async_records} records, max_concurrency=100  {capped_s * 1000:8.1f} ms  (floor {floor_ms:.0f} ms)"
    )
    missed = speedup < SPEEDUP_TARGET or async_s >= ASYNC_TARGET_S
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
