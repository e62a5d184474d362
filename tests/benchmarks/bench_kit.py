"""batchlens as deployed against Powertools' own kit (Logger, Tracer, Metrics), flush and export included.

Run:  python tests/benchmarks/bench_kit.py [--sizes 1,10,100] [--kinesis 10000] [--no-instructions] [--rounds 5]
      [--traces xray]

Configurations (``_kit_configs.py``): A Powertools' BatchProcessor bare; P Powertools' BatchProcessor + Logger +
Tracer + Metrics per record; L batchlens with ``configure(service_name=...)``'s Lambda defaults. Every one runs in
its own interpreter with a Lambda-like environment: ``AWS_LAMBDA_FUNCTION_NAME``, ``LAMBDA_TASK_ROOT``,
``AWS_XRAY_DAEMON_ADDRESS`` pointing at a local UDP socket (the X-Ray daemon: the datagrams queue there unread),
a sampled ``_X_AMZN_TRACE_ID`` (a new trace id per invocation, as the runtime sets it) and, with ``--traces otlp``
only, ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a local HTTP collector in its own process (answers 200 to every
POST); without it configure() takes the Lambda default with no collector, the X-Ray exporter. stdout (log lines, EMF) goes to /dev/null.

Figures:
  - instructions per invocation, counted by valgrind's callgrind over all threads (the exporter threads too):
    two interpreters run the same batch a different number of times after the same warm-up, and the difference of
    their totals over the difference of the counts is one invocation, start-up and imports cancelled out;
  - wall time per invocation, median over invocations, median over interleaved rounds of fresh interpreters;
  - SQS batches of ``--sizes`` records with records 4, 14, 24, ... failing (none in a batch of 1);
  - a ``--kinesis``-record Kinesis batch with 1% failing (records 4, 104, ...), L and A, per record.
``--traces xray`` (or OTEL_TRACES_EXPORTER in the environment) picks L's span exporter; the Lambda default of
this branch otherwise. This is not a test: it prints figures and ratios, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _kit_configs import CONFIGS, LambdaContext, record_sampling_supported  # noqa: E402

RESULT = "@@kit "  # prefix of the line a --one run reports on stderr
TRACE_PARENT = "53995c3f42cd8ad8"
# invocations per callgrind pair, by batch size: enough for a stable difference, few enough for callgrind
INVOCATIONS = {1: (10, 50), 10: (5, 25), 100: (2, 6)}
KINESIS_INVOCATIONS = (0, 1)
KINESIS_RECORD_SAMPLING = "0.01"  # passed to L's Telemetry for the Kinesis batch when it takes record_sampling
TIMED_SECONDS = 1.0  # wall-time budget of one timed interpreter


def failing(index: int, every: int) -> bool:
    return index % every == 4


def sqs_batch(size: int) -> dict[str, Any]:
    from batchlens.testing import sqs_event

    bodies = ["fail" if failing(i, 10) else f"order-{i}" for i in range(size)]
    return sqs_event(bodies, queue="orders", seed=size)


def kinesis_batch(size: int) -> dict[str, Any]:
    from batchlens.testing import kinesis_event

    data = ["fail" if failing(i, 100) else f"click-{i}" for i in range(size)]
    return kinesis_event(data, stream="clicks", seed=size)


def trace_header(invocation: int) -> str:
    return f"Root=1-6757e988-{invocation:024x};Parent={TRACE_PARENT};Sampled=1"


# -- inside a measured interpreter --------------------------------------------------------------------------------
def run_one(name: str, source: str, size: int, invocations: int, timed: bool) -> dict[str, Any]:
    """Build configuration ``name``, warm it up, then run ``invocations`` invocations of one batch."""
    handler = CONFIGS[name](source)
    context = LambdaContext()
    warm = sqs_batch(10) if source == "sqs" else kinesis_batch(10)
    for invocation in range(2):
        os.environ["_X_AMZN_TRACE_ID"] = trace_header(invocation)
        handler(warm, context)
    event = sqs_batch(size) if source == "sqs" else kinesis_batch(size)
    failures: list[int] = []
    elapsed: list[int] = []
    clock = time.perf_counter_ns
    for invocation in range(invocations):
        os.environ["_X_AMZN_TRACE_ID"] = trace_header(2 + invocation)
        start = clock()
        response = handler(event, context)
        elapsed.append(clock() - start)
        failures.append(len(response["batchItemFailures"]))
        if timed and invocation >= 3 and sum(elapsed) > TIMED_SECONDS * 1e9:
            break
    return {"failures": failures, "ns": elapsed}


# -- the local collector and daemon ----------------------------------------------------------------------------
def collector_main() -> None:
    """An OTLP/HTTP collector that accepts everything; prints its port, then counts requests until stdin closes."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    counts = {"requests": 0, "bytes": 0}

    class Accept(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            counts["requests"] += 1
            counts["bytes"] += len(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()
    print(json.dumps(counts), flush=True)


class Surroundings:
    """The local collector (a child process) and the X-Ray daemon's UDP socket, and the environment naming them."""

    def __init__(self, traces: str | None) -> None:
        self.collector = subprocess.Popen(
            [sys.executable, __file__, "--collector"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.collector.stdout is not None
        port = int(self.collector.stdout.readline())
        self.daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.daemon.bind(("127.0.0.1", 0))
        self.task_root = tempfile.mkdtemp(prefix="bench-kit-")
        self.env = lambda_environment(self.daemon.getsockname()[1], port, self.task_root)
        traces = traces or os.environ.get("OTEL_TRACES_EXPORTER")
        if traces:
            self.env["OTEL_TRACES_EXPORTER"] = traces
        if traces != "otlp":
            # as deployed with no collector: the endpoint would make configure() pick OTLP (a collector is there)
            del self.env["OTEL_EXPORTER_OTLP_ENDPOINT"]

    def datagrams(self) -> int:
        """How many datagrams reached the daemon since the last call (reads them off the socket)."""
        self.daemon.setblocking(False)
        count = 0
        while True:
            try:
                self.daemon.recv(65_536)
            except BlockingIOError:
                return count
            count += 1

    def close(self) -> dict[str, int]:
        """Stop the collector (by its process); return what it received."""
        self.daemon.close()
        shutil.rmtree(self.task_root, ignore_errors=True)
        output, _ = self.collector.communicate("", timeout=30)
        counts: dict[str, int] = json.loads(output.strip().splitlines()[-1])
        return counts


def lambda_environment(daemon_port: int, collector_port: int, task_root: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "POWERTOOLS_", "AWS_", "_X_AMZN", "BATCHLENS_"))
    }
    env.update(
        {
            "PYTHONHASHSEED": "0",  # set and dict layouts, so the instruction counts, repeat from run to run
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_REGION": "us-east-1",
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon_port}",
            "_X_AMZN_TRACE_ID": trace_header(0),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        }
    )
    return env


# -- driving ------------------------------------------------------------------------------------------------------
def _command(name: str, source: str, size: int, invocations: int, timed: bool = False) -> list[str]:
    command = [sys.executable, __file__, "--one", name, "--source", source]
    command += ["--size", str(size), "--invocations", str(invocations)]
    return [*command, "--timed"] if timed else command


def _result(stderr: str) -> dict[str, Any]:
    for line in stderr.splitlines():
        if line.startswith(RESULT):
            found: dict[str, Any] = json.loads(line[len(RESULT) :])
            return found
    raise SystemExit(f"a measured run reported nothing:\n{stderr[-2000:]}")


def run_measured(env: dict[str, str], command: list[str], stdout: Any = subprocess.DEVNULL) -> dict[str, Any]:
    proc = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{command} failed:\n{proc.stderr[-3000:]}")
    result = _result(proc.stderr)
    if stdout is subprocess.PIPE:
        result["stdout"] = proc.stdout
    return result


def job_environment(env: dict[str, str], source: str) -> dict[str, str]:
    if source == "kinesis" and record_sampling_supported():
        return {**env, "BENCH_RECORD_SAMPLING": KINESIS_RECORD_SAMPLING}
    return env


def callgrind(env: dict[str, str], name: str, source: str, size: int, invocations: int) -> int:
    env = job_environment(env, source)
    valgrind = shutil.which("valgrind")
    assert valgrind is not None
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += _command(name, source, size, invocations)
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, timeout=7200)
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or match is None:
        raise SystemExit(f"callgrind failed for {name} x {size}:\n{proc.stderr[-2000:]}")
    print(f"  (callgrind {name} {source} x {size}, {invocations} invocations: {match.group(1)})", flush=True)
    return int(match.group(1))


def instructions(env: dict[str, str], jobs: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], float]:
    """Instructions per invocation of each (configuration, source, size), by callgrind pairs."""
    runs = []
    for name, source, size in jobs:
        counts = KINESIS_INVOCATIONS if source == "kinesis" else INVOCATIONS[size]
        runs += [(name, source, size, count) for count in counts]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        totals = dict(zip(runs, pool.map(lambda run: callgrind(env, *run), runs), strict=True))
    per_invocation = {}
    for name, source, size in jobs:
        few, many = KINESIS_INVOCATIONS if source == "kinesis" else INVOCATIONS[size]
        total_many, total_few = totals[(name, source, size, many)], totals[(name, source, size, few)]
        per_invocation[(name, source, size)] = (total_many - total_few) / (many - few)
    return per_invocation


def wall_times(env: dict[str, str], jobs: Sequence[tuple[str, str, int]], rounds: int) -> dict[Any, float]:
    """Median ns per invocation of each job: medians of fresh interpreters over interleaved rounds."""
    medians: dict[tuple[str, str, int], list[float]] = {job: [] for job in jobs}
    for _ in range(rounds):
        for job in jobs:
            name, source, size = job
            invocations = 1 if source == "kinesis" else 10_000
            result = run_measured(job_environment(env, source), _command(name, source, size, invocations, timed=True))
            medians[job].append(statistics.median(result["ns"]))
    for job, values in medians.items():
        print(f"  (wall time {' '.join(map(str, job))}: medians {[round(v / 1e3) for v in values]} us)", flush=True)
    return {job: statistics.median(values) for job, values in medians.items()}


def smoke(size: int = 10) -> dict[str, dict[str, Any]]:
    """Each configuration once on an SQS batch of ``size``, stdout kept: what it wrote and sent, for a test."""
    surroundings = Surroundings(None)
    summary: dict[str, dict[str, Any]] = {}
    try:
        for name in "APL":
            result = run_measured(surroundings.env, _command(name, "sqs", size, 1), stdout=subprocess.PIPE)
            lines = [json.loads(line) for line in result["stdout"].splitlines() if line.startswith("{")]
            summary[name] = {
                "failures": result["failures"],
                "emf": [line for line in lines if "_aws" in line],
                "logs": [line for line in lines if "_aws" not in line],
                "datagrams": surroundings.datagrams(),
            }
    finally:
        received = surroundings.close()
    summary["collector"] = received
    return summary


def print_tables(
    sizes: Sequence[int],
    counted: dict[Any, float] | None,
    timed: dict[Any, float],
    kinesis: int,
) -> None:
    print("SQS, records 4, 14, 24, ... failing; per invocation, flush and export included")
    header = "| batch | A | P | L | L/P instructions | L/P time | P/A time |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        cells = []
        for name in "APL":
            value = timed[(name, "sqs", size)] / 1e3
            text = f"{value:,.0f} us"
            if counted is not None:
                text = f"{counted[(name, 'sqs', size)] / 1e6:,.2f}M / {text}"
            cells.append(text)
        lp = f"{counted[('L', 'sqs', size)] / counted[('P', 'sqs', size)]:.2f}" if counted is not None else "-"
        lp_time = timed[("L", "sqs", size)] / timed[("P", "sqs", size)]
        pa_time = timed[("P", "sqs", size)] / timed[("A", "sqs", size)]
        print(f"| {size} | {' | '.join(cells)} | {lp} | {lp_time:.2f} | {pa_time:.2f} |")
    if kinesis:
        sampling = (
            f"record sampling {KINESIS_RECORD_SAMPLING}"
            if record_sampling_supported()
            else "no record sampling: Telemetry has no such option on this branch"
        )
        print(f"Kinesis, {kinesis:,} records, 1% failing ({sampling})")
        for name in "AL":
            per = timed[(name, "kinesis", kinesis)] / kinesis / 1e3
            text = f"{per:.2f} us/record"
            if counted is not None:
                text = f"{counted[(name, 'kinesis', kinesis)] / kinesis:,.0f} instructions/record, {text}"
            print(f"  {name}: {text}")
        ratio = timed[("L", "kinesis", kinesis)] / timed[("A", "kinesis", kinesis)]
        line = f"  L/A per record: time {ratio:.2f}"
        if counted is not None:
            line += f", instructions {counted[('L', 'kinesis', kinesis)] / counted[('A', 'kinesis', kinesis)]:.2f}"
        print(line + "  [target <= 3]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--kinesis", type=int, default=10_000, help="records of the Kinesis batch (0: skip)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-instructions", action="store_true")
    parser.add_argument("--configs", default="APL", help="configurations to run (L/P and ratios need A, P, L)")
    parser.add_argument("--traces", help="OTEL_TRACES_EXPORTER for L (default: this branch's Lambda default)")
    parser.add_argument("--collector", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--source", default="sqs", choices=("sqs", "kinesis"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--invocations", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--timed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.collector:
        collector_main()
        return 0
    if args.one:
        result = run_one(args.one, args.source, args.size, args.invocations, args.timed)
        sys.stdout.flush()
        print(RESULT + json.dumps(result), file=sys.stderr, flush=True)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    jobs = [(name, "sqs", size) for size in sizes for name in "APL" if name in args.configs]
    if args.kinesis:
        jobs += [(name, "kinesis", args.kinesis) for name in "AL" if name in args.configs]
    surroundings = Surroundings(args.traces)
    try:
        print(
            f"Python {sys.version.split()[0]}, L's traces: {args.traces or os.environ.get('OTEL_TRACES_EXPORTER') or 'Lambda default'}"
        )
        timed = wall_times(surroundings.env, jobs, args.rounds)
        counted = None
        if not args.no_instructions and shutil.which("valgrind"):
            counted = instructions(surroundings.env, jobs)
        if set(args.configs) >= set("APL"):
            print_tables(sizes, counted, timed, args.kinesis)
        for job in jobs:
            figures = f"{timed[job] / 1e3:,.0f} us"
            if counted is not None:
                figures = f"{counted[job]:,.0f} instructions, {figures}"
            print(f"  {job[0]} {job[1]} x {job[2]}: {figures} per invocation")
    finally:
        received = surroundings.close()
    print(f"(the collector received {received['requests']} OTLP requests, {received['bytes']:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
