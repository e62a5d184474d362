"""What record sampling saves, in CPU instructions per record counted by valgrind's callgrind.

Run:  python tests/benchmarks/bench_sampling.py [--records 10000] [--rates 0.01,1]     (needs valgrind)

One 10,000-record Kinesis batch, 1% of records failing (the handler decodes the data and raises on "fail"), as a
function runs in Lambda with batchlens' defaults: ``AWS_LAMBDA_FUNCTION_NAME`` set, ``configure()`` building the
SDK pipeline (spans through a ``BatchSpanProcessor`` to an exporter that drops them, EMF metrics, JSON log lines;
stdout to /dev/null), the processor's ``Telemetry.from_env()`` (every switch at its default, response capture on)
with ``BATCHLENS_RECORD_SAMPLING`` set to the rate, and a Lambda context, so the batch ends with its flush.

Configurations:
  A        Powertools' BatchProcessor(KinesisDataStreams), no telemetry (the anchor)
  S<rate>  batchlens as above at that record sampling rate
  N<rate>  batchlens with no set-up at all at that rate: no OpenTelemetry SDK (spans and metrics are no-ops),
           structlog unconfigured, so the log lines go to the private JSON logger (bench_overhead.py's "N")
  M<rate>  S<rate> with BATCHLENS_METRICS=false: what is left once the SDK's per-record Histogram.record is gone

Each configuration runs in its own interpreter twice: once with everything but the batch (imports, set-up,
warm-up, building the event) and once with the batch too; the difference of the two totals over the record count
is the cost of a record of that batch (its share of the batch span, the flush and the metrics included).
This is not a test: it prints figures and ratios, and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FAIL_RATE = 0.01
SEED = 42


def handler(record: Any) -> dict[str, Any]:
    data = record.kinesis.data_as_bytes()
    if b"fail" in data:
        raise ValueError("rejected")
    return {"ok": True, "n": len(data)}


def _powertools() -> Any:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    return lambda event, context: process_partial_response(event, handler, processor, context)


def _batchlens(rate: str, sdk: bool, metrics: bool) -> Any:
    # set before anything reads them, as the Lambda runtime does
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "bench"
    os.environ["BATCHLENS_RECORD_SAMPLING"] = rate
    os.environ["BATCHLENS_METRICS"] = str(metrics).lower()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import batchlens

    if sdk:
        from _bench_configs import NullExporter

        from batchlens.telemetry import configure

        configure(service_name="bench", traces=NullExporter())
    processor = batchlens.BatchProcessor(batchlens.EventType.KinesisDataStreams)
    return lambda event, context: batchlens.process_partial_response(event, handler, processor, context)


def run_one(name: str, records: int, with_batch: bool) -> None:
    """The body of one callgrind run: set up, warm up, build the event, then (``with_batch``) process it."""
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - EMF and log lines; the process ends after the run
    from batchlens.testing import kinesis_event, lambda_context

    run = _powertools() if name == "A" else _batchlens(name[1:], sdk=name[0] != "N", metrics=name[0] != "M")
    context = lambda_context(remaining_ms=600_000)
    warm = kinesis_event(count=200, fail_rate=FAIL_RATE, seed=SEED + 1)
    run(warm, context)
    run(warm, context)
    event = kinesis_event(count=records, fail_rate=FAIL_RATE, seed=SEED)
    if with_batch:
        run(event, context)


def _callgrind(name: str, records: int, with_batch: bool) -> int:
    valgrind = shutil.which("valgrind")
    assert valgrind is not None
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    command += ["--one", name, "--records", str(records)] + (["--with-batch"] if with_batch else [])
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(command, capture_output=True, text=True, check=True, env=env, timeout=3600)
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise SystemExit(f"callgrind printed no total for {name}: {proc.stderr[-500:]}")
    return int(match.group(1))


def per_record(names: Sequence[str], records: int) -> dict[str, float]:
    """Instructions per record of each configuration on one batch of ``records`` records."""
    jobs = [(name, records, with_batch) for name in names for with_batch in (False, True)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: _callgrind(*job), jobs), strict=True))
    return {name: (totals[(name, records, True)] - totals[(name, records, False)]) / records for name in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rates", default="0.01,1", help="comma-separated record sampling rates")
    parser.add_argument("--no-sdk", action="store_true", help="also measure the N configurations")
    parser.add_argument("--metrics-off", action="store_true", help="also measure the M configurations")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--with-batch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.records, args.with_batch)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 0
    rates = [rate.strip() for rate in args.rates.split(",")]
    names = ["A", *(f"S{rate}" for rate in rates)]
    names += [f"N{rate}" for rate in rates] if args.no_sdk else []
    names += [f"M{rate}" for rate in rates] if args.metrics_off else []
    counted = per_record(names, args.records)
    print(
        f"python {sys.version.split()[0]}; one {args.records}-record Kinesis batch, {FAIL_RATE:.0%} failing, "
        "configure() pipeline in Lambda mode (instructions per record, callgrind):"
    )
    for name in names:
        setup = {"S": "configure()", "N": "no SDK", "M": "configure(), metrics off"}.get(name[0])
        label = "Powertools BatchProcessor" if name == "A" else f"batchlens, {setup}, record_sampling={name[1:]}"
        print(f"  {name:7s} {counted[name]:12,.0f}   {label}")
    for name in names[1:]:
        print(f"  {name} / A = {counted[name] / counted['A']:.2f}" + ("  [<= 3]" if name == "S0.01" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
