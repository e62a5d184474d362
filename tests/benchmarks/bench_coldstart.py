"""Cold start: a fresh interpreter's set-up of batchlens' telemetry against Powertools' Logger, Tracer and Metrics.

Run:  python tests/benchmarks/bench_coldstart.py [--rounds 15] [--importtime] [--floor]

Each round starts two fresh interpreters, in alternating order, that do what a Lambda function's init phase does
at module level, in a Lambda-like environment (``AWS_LAMBDA_FUNCTION_NAME`` set):

  batchlens   import batchlens; configure(traces="otlp", metrics=<the Lambda default>, logs="json");
              BatchProcessor(EventType.SQS)
  powertools  Logger(), Tracer() (with aws-xray-sdk installed, as Powertools' tracer extra has it), Metrics(),
              BatchProcessor(EventType.SQS)

Both run from bytecode, as after ``pip install`` (which compiles every module it installs): the children may write
bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped) into a private ``PYTHONPYCACHEPREFIX`` directory, filled by the
warm-up runs and removed at the end, so a source checkout on ``PYTHONPATH`` is not compiled in every round and the
source tree is left alone. With --floor a third interpreter builds the same third-party parts by hand, without batchlens (the SDK providers,
the OTLP/HTTP span exporter on urllib3, structlog with orjson): the part of the cold start that is the chosen
exporters' own cost, the floor under batchlens' figures. Wall time is the whole child process (interpreter start included, as in Lambda's init duration), and peak memory
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

FLOOR = """
import orjson
import structlog
from opentelemetry import metrics, trace
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
resource = Resource.create({"service.name": "orders"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(_transport=Urllib3HTTPTransport())))
trace.set_tracer_provider(tracer_provider)
metrics.set_meter_provider(MeterProvider(resource=resource))
structlog.configure(
    processors=[structlog.processors.JSONRenderer(serializer=orjson.dumps)],
    logger_factory=structlog.BytesLoggerFactory(),
)
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
    parser.add_argument("--floor", action="store_true", help="also time the same third-party parts without batchlens")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-pycache-") as cache:
        ENVIRONMENT["PYTHONPYCACHEPREFIX"] = cache
        measure(args.rounds, args.importtime, args.floor)
    return 0


def measure(rounds: int, importtime: bool, floor: bool) -> None:
    """Warm up (compiling bytecode), run the interleaved rounds and print the medians."""
    programs = [("batchlens", BATCHLENS), ("powertools", POWERTOOLS)] + ([("floor", FLOOR)] if floor else [])
    for _name, code in programs:
        run(code)  # compile bytecode and warm the file system cache for every side
    times: dict[str, list[float]] = {name: [] for name, _code in programs}
    rss: dict[str, list[int]] = {name: [] for name, _code in programs}
    for index in range(rounds):
        order = list(programs)
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
    if floor:
        fl_time, fl_rss = statistics.median(times["floor"]), statistics.median(rss["floor"])
        print(f"  floor (same parts by hand): {fl_time * 1000:7.1f} ms  {fl_rss / 1024:6.1f} MB max RSS")
        print(f"  floor ratio: time {fl_time / pt_time:.2f}, peak memory {fl_rss / pt_rss:.2f}")
    if importtime:
        print("Slowest top-level imports of the batchlens set-up (cumulative):")
        for micros, name in slowest_imports(BATCHLENS):
            print(f"  {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    sys.exit(main())
