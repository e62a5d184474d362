"""Cold start: a fresh interpreter's set-up of batchlens' telemetry against Powertools' Logger, Tracer and Metrics.

Run:  python tests/benchmarks/bench_coldstart.py [--rounds 21] [--importtime] [--steps] [--setup [--floor]]

By default it measures the cold start *as deployed* (the cost issue's target): a fresh interpreter imports a handler
module, as Lambda's runtime does, and then runs one invocation (a one-record SQS batch with a Lambda-like context):

  D  batchlens as its README deploys it: ``from batchlens import ...``; ``configure(service_name="orders")`` at
     module level with every default (in Lambda: EMF metrics, JSON logs and, with no collector, the X-Ray branch)
  K  the Powertools kit a user has today: Logger, Tracer (aws-xray-sdk) and Metrics instances at module level, the
     handler decorated with all three, and Powertools' BatchProcessor / process_partial_response

Both run in the same Lambda-like environment: ``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_REGION``, a sampled
``_X_AMZN_TRACE_ID`` and ``AWS_XRAY_DAEMON_ADDRESS`` pointing at a UDP port this script binds on 127.0.0.1 (and
drains), so both tracers send their spans or segments (``_coldstart_handlers.py`` holds the two modules). It
reports import-only and import + first invocation. With --setup it measures instead the earlier set-up comparison:

  batchlens   import batchlens; configure(traces="otlp", metrics=<the Lambda default>, logs="json");
              BatchProcessor(EventType.SQS)
  powertools  Logger(), Tracer() (with aws-xray-sdk installed, as Powertools' tracer extra has it), Metrics(),
              BatchProcessor(EventType.SQS)

Both run from bytecode, as after ``pip install`` (which compiles every module it installs): the children may write
bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped) into a private ``PYTHONPYCACHEPREFIX`` directory, filled by the
warm-up runs and removed at the end, so a source checkout on ``PYTHONPATH`` is not compiled in every round and the
source tree is left alone. With --setup --floor a third interpreter builds the same third-party parts by hand,
without batchlens (the SDK providers, the OTLP/HTTP span exporter on urllib3, structlog with orjson): the part of the
cold start that is the chosen exporters' own cost. Wall time is the whole child process (interpreter start
included, as in Lambda's init duration), and peak memory is the child's max RSS (``wait4``). Medians over the
interleaved rounds are printed with their ratios. With --importtime it also prints the ten slowest imports of the
batchlens side (``python -X importtime``); with --steps, D's cost step by step (each third-party import, then each
line of the handler module and the first invocation: time, max RSS and modules added). This is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from _coldstart_handlers import DEPLOYED, KIT, STEPS, lambda_environment, program

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

SETUP_ENVIRONMENT = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "orders",
    "POWERTOOLS_METRICS_NAMESPACE": "orders",
    # nothing is exported during set-up; an endpoint that is never reached keeps it that way
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
}

# Settings of the parent's environment that would change either side's choices; the children start without them.
_CLEARED_PREFIXES = ("OTEL_", "AWS_", "POWERTOOLS_", "BATCHLENS_", "_X_AMZN_", "LAMBDA_", "SENTRY_")

Program = tuple[str, str]
"""(name, code for ``python -c``)."""


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The children's environment: ``extra`` over a cleaned copy of ours, allowed to compile bytecode."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(_CLEARED_PREFIXES)}
    env.update(extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(code: str, env: dict[str, str]) -> tuple[float, int]:
    """Run ``code`` in a fresh interpreter; return (wall seconds, max RSS in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"set-up failed with exit code {proc.returncode}:\n{code}")
    return elapsed, usage.ru_maxrss


def slowest_imports(code: str, env: dict[str, str], count: int = 10, depth: int = 0) -> list[tuple[int, str]]:
    """The ``count`` imports at nesting ``depth`` with the largest cumulative time (microseconds) in ``code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    rows: list[tuple[int, str]] = []
    indent = 1 + 2 * depth
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:") :].split("|")
        if len(name) - len(name.lstrip(" ")) == indent:
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def steps(env: dict[str, str], rounds: int) -> None:
    """D's cold start one step at a time (``STEPS``): median increments of time, max RSS and modules per step."""
    runs = []
    for _ in range(rounds):
        done = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"D step by step (medians of {rounds} fresh interpreters; increments of wall time, current RSS, modules):")
    for index, (name, *_values) in enumerate(runs[0]):
        seconds = statistics.median(run[index][1] for run in runs)
        kib = statistics.median(run[index][2] for run in runs)
        modules = statistics.median(run[index][3] for run in runs)
        print(f"  {seconds * 1000:7.1f} ms  {kib / 1024:+6.2f} MB  {modules:+5.0f} modules  {name}")


def measure(programs: list[Program], env: dict[str, str], rounds: int) -> dict[str, tuple[float, float]]:
    """Warm up (compiling bytecode), run the interleaved rounds; ``{name: (median seconds, median KiB)}``."""
    for _name, code in programs:
        run(code, env)  # compile bytecode and warm the file system cache for every side
    times: dict[str, list[float]] = {name: [] for name, _code in programs}
    rss: dict[str, list[int]] = {name: [] for name, _code in programs}
    for index in range(rounds):
        order = list(programs)
        if index % 2:
            order.reverse()
        for name, code in order:
            elapsed, peak = run(code, env)
            times[name].append(elapsed)
            rss[name].append(peak)
    return {name: (statistics.median(times[name]), statistics.median(rss[name])) for name, _code in programs}


def report(label: str, ours: tuple[float, float], theirs: tuple[float, float], targets: str) -> None:
    """Print one comparison: both sides' medians and their ratios."""
    (our_time, our_rss), (their_time, their_rss) = ours, theirs
    print(label)
    print(f"  batchlens:  {our_time * 1000:7.1f} ms  {our_rss / 1024:6.1f} MB max RSS")
    print(f"  powertools: {their_time * 1000:7.1f} ms  {their_rss / 1024:6.1f} MB max RSS")
    print(f"  ratio: time {our_time / their_time:.2f}, max RSS {our_rss / their_rss:.2f} {targets}")


class _XRayDaemon:
    """A UDP socket on 127.0.0.1 standing in for Lambda's X-Ray daemon; a thread drains and counts datagrams."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(65_536)
            except OSError:
                continue
            self.datagrams += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def deployed(rounds: int, importtime: bool, by_step: bool, cache: str, module_dir: str) -> None:
    """D (batchlens as deployed) against K (the Powertools kit): import only, and import + first invocation."""
    for module, source in (("handler_batchlens", DEPLOYED), ("handler_powertools", KIT)):
        with open(os.path.join(module_dir, f"{module}.py"), "w", encoding="utf-8") as file:
            file.write(source)
    daemon = _XRayDaemon()
    try:
        env = child_environment({**lambda_environment(daemon.port), "PYTHONPYCACHEPREFIX": cache})
        programs = [
            (f"{side}-{mode}", program(module_dir, f"handler_{side}", mode == "invoke"))
            for mode in ("import", "invoke")
            for side in ("batchlens", "powertools")
        ]
        medians = measure(programs, env, rounds)
        print(f"python {sys.version.split()[0]} on {os.cpu_count()} cpus; {rounds} interleaved rounds (medians)")
        print(f"X-Ray daemon stand-in on 127.0.0.1:{daemon.port} received {daemon.datagrams} datagrams")
        report("D/K, import of the handler module:", medians["batchlens-import"], medians["powertools-import"], "")
        report(
            "D/K, import + first invocation (cold start as deployed):",
            medians["batchlens-invoke"],
            medians["powertools-invoke"],
            "[target <= 0.5, <= 0.55]",
        )
        if importtime:
            print("Slowest imports of D's handler module (cumulative):")
            for micros, name in slowest_imports(program(module_dir, "handler_batchlens", True), env, depth=1):
                print(f"  {micros / 1000:7.1f} ms  {name}")
        if by_step:
            steps(env, min(rounds, 9))
    finally:
        daemon.close()


def setup(rounds: int, importtime: bool, floor: bool, cache: str) -> None:
    """The set-up-only comparison (traces="otlp"), optionally with the floor built by hand."""
    env = child_environment({**SETUP_ENVIRONMENT, "PYTHONPYCACHEPREFIX": cache})
    programs = [("batchlens", BATCHLENS), ("powertools", POWERTOOLS)] + ([("floor", FLOOR)] if floor else [])
    medians = measure(programs, env, rounds)
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cpus; {rounds} interleaved rounds (medians)")
    report('set-up only, traces="otlp":', medians["batchlens"], medians["powertools"], "")
    if floor:
        (fl_time, fl_rss), (pt_time, pt_rss) = medians["floor"], medians["powertools"]
        print(f"  floor (same parts by hand): {fl_time * 1000:7.1f} ms  {fl_rss / 1024:6.1f} MB max RSS")
        print(f"  floor ratio: time {fl_time / pt_time:.2f}, peak memory {fl_rss / pt_rss:.2f}")
    if importtime:
        print("Slowest top-level imports of the batchlens set-up (cumulative):")
        for micros, name in slowest_imports(BATCHLENS, env):
            print(f"  {micros / 1000:7.1f} ms  {name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--steps", action="store_true", help="also D's cost step by step (time, RSS, modules)")
    parser.add_argument("--setup", action="store_true", help="the set-up-only comparison (traces='otlp')")
    parser.add_argument("--floor", action="store_true", help="with --setup: the same third-party parts by hand")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as scratch:
        cache = os.path.join(scratch, "pycache")
        if args.setup:
            setup(args.rounds, args.importtime, args.floor, cache)
        else:
            module_dir = os.path.join(scratch, "task")
            os.mkdir(module_dir)
            deployed(args.rounds, args.importtime, args.steps, cache, module_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
