"""Cold start: a fresh interpreter's set-up of batchlens' telemetry against Powertools' Logger, Tracer and Metrics.

Run:  python tests/benchmarks/bench_coldstart.py [--rounds 15] [--importtime]

Each round starts two fresh interpreters, in alternating order, that do what a Lambda function's init phase does
at module level, in a Lambda-like environment (``AWS_LAMBDA_FUNCTION_NAME`` set):

  batchlens   import batchlens; configure(traces="otlp", metrics=<the Lambda default>, logs="json");
              BatchProcessor(EventType.SQS)
  powertools  Logger(), Tracer() (with aws-xray-sdk installed, as Powertools' tracer extra has it), Metrics(),
              BatchProcessor(EventType.SQS)

Both run from bytecode, as after ``pip install`` (which compiles every module it installs): the children may write
bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped) into a private ``PYTHONPYCACHEPREFIX`` directory, filled by the
warm-up runs and removed at the end, so a source checkout on ``PYTHONPATH`` is not compiled in every round and the
source tree is left alone. Wall time is the whole child process (interpreter start included, as in Lambda's init duration), and peak memory
is the child's max RSS (``wait4``). Medians over the rounds are printed with their ratios. With --importtime it also
prints the ten slowest imports of the batchlens set-up (``python -X importtime``). This is not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

BATCHLENS = """
import batchlens
from batchlens.telemetry import configure
configure(service_name="orders", traces="otlp", logs="json")
batchlens.BatchProcessor(event_type=batchlens.EventType.SQS)
"""

POWERTOOLS = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
Logger()
Tracer()
Metrics()
BatchProcessor(event_type=EventType.SQS)
"""

ENVIRONMENT = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "orders",
    "POWERTOOLS_METRICS_NAMESPACE": "orders",
    # nothing is exported during set-up; an endpoint that is never reached keeps it that way
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
}


def child_environment() -> dict[str, str]:
    """The children's environment: Lambda-like, allowed to compile bytecode into the private cache."""
    env = {**os.environ, **ENVIRONMENT}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(code: str) -> tuple[float, int]:
    """Run ``code`` in a fresh interpreter; return (wall seconds, max RSS in KiB)."""
    env = child_environment()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"set-up failed with exit code {proc.returncode}:\n{code}")
    return elapsed, usage.ru_maxrss


def slowest_imports(code: str, count: int = 10) -> list[tuple[int, str]]:
    """The ``count`` imports with the largest cumulative time (microseconds) in ``code``."""
    env = child_environment()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    rows: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith(" " * 3):  # top-level imports of the set-up only
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-pycache-") as cache:
        ENVIRONMENT["PYTHONPYCACHEPREFIX"] = cache
        measure(args.rounds, args.importtime)
    return 0


def measure(rounds: int, importtime: bool) -> None:
    """Warm up (compiling bytecode), run the interleaved rounds and print the medians."""
    run(BATCHLENS)
    run(POWERTOOLS)  # warm the file system cache for both
    times: dict[str, list[float]] = {"batchlens": [], "powertools": []}
    rss: dict[str, list[int]] = {"batchlens": [], "powertools": []}
    for index in range(rounds):
        order = [("batchlens", BATCHLENS), ("powertools", POWERTOOLS)]
        if index % 2:
            order.reverse()
        for name, code in order:
            elapsed, peak = run(code)
            times[name].append(elapsed)
            rss[name].append(peak)
    bl_time, pt_time = statistics.median(times["batchlens"]), statistics.median(times["powertools"])
    bl_rss, pt_rss = statistics.median(rss["batchlens"]), statistics.median(rss["powertools"])
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cpus; {rounds} interleaved rounds (medians)")
    print(f"  batchlens set-up:  {bl_time * 1000:7.1f} ms  {bl_rss / 1024:6.1f} MB max RSS")
    print(f"  powertools set-up: {pt_time * 1000:7.1f} ms  {pt_rss / 1024:6.1f} MB max RSS")
    print(f"  ratio: time {bl_time / pt_time:.2f} [<= 0.5], peak memory {bl_rss / pt_rss:.2f} [<= 0.6]")
    if importtime:
        print("Slowest top-level imports of the batchlens set-up (cumulative):")
        for micros, name in slowest_imports(BATCHLENS):
            print(f"  {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    sys.exit(main())
