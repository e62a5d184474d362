"""A dead collector under Lambda's own runtime client: what each warm invocation costs.

Run:  python tests/benchmarks/bench_dead_collector.py [--invocations 21] [--remaining-ms 3000] [--before N] [--check]

Needs ``awslambdaric`` (Linux; ``pip install awslambdaric``), which is not a batchlens dependency. For each
scenario a fresh ``python -m awslambdaric handler.handler`` process runs against a local Runtime API on 127.0.0.1
(this script): every invocation is a two-record SQS batch with a deadline ``--remaining-ms`` ahead, and the handler
is ``process_partial_response`` after ``configure()`` at module level (metrics: the Lambda default, EMF). The time
of an invocation is from the runtime's ``GET .../invocation/next`` answered to its ``POST .../response`` received.

Scenarios: ``traces="none"`` (the baseline), ``traces="otlp"`` pointed at a closed port (refuses), and at a socket
that accepts and never answers (silent). The target (issue "Safe, native defaults", item 3): the slowest of the warm
invocations after the first exceeds the baseline's slowest by at most 50 ms. Prints figures; exits 0, or 1 with
``--check`` when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _collector_support as collectors
from batchlens.testing import sqs_event

TARGET_EXTRA_MS = 50.0
HANDLER = textwrap.dedent(
    """
    import os

    from batchlens import BatchProcessor, EventType, process_partial_response
    from batchlens.telemetry import configure

    configure(service_name="bench", traces=os.environ["BENCH_TRACES"], logs="none")
    processor = BatchProcessor(EventType.SQS)


    def record_handler(record):
        return "ok"


    def handler(event, context):
        return process_partial_response(event, record_handler, processor, context)
    """
)


class RuntimeApi:
    """The Lambda Runtime API, enough for awslambdaric: hands out queued events and times their responses."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.results: queue.Queue[tuple[str, float]] = queue.Queue()
        self.started: dict[str, float] = {}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else the body waits for the ACK of the headers: +40 ms each time

            def do_GET(self) -> None:
                event = api.events.get()
                request_id = str(uuid.uuid4())
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                deadline = int(time.time() * 1000) + api.remaining_ms
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:bench"
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                api.started[request_id] = time.monotonic()

            def do_POST(self) -> None:
                ended = time.monotonic()
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                parts = self.path.strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "invocation":
                    request_id, outcome = parts[3], parts[4]
                    api.results.put((outcome, ended - api.started.pop(request_id, ended)))
                else:
                    api.results.put((self.path, 0.0))

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The runtime process is killed between scenarios: its connection resets."""


@contextmanager
def runtime(traces: str, env: dict[str, str], remaining_ms: int, task_root: str) -> Iterator[RuntimeApi]:
    api = RuntimeApi(remaining_ms)
    server = _QuietServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    variables = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AWS_", "BATCHLENS_"))}
    variables.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_REGION": "eu-west-1",
            "LAMBDA_TASK_ROOT": task_root,
            "PYTHONPATH": task_root,
            "BENCH_TRACES": traces,
            **env,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "handler.handler"],
        cwd=task_root,
        env=variables,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield api
    finally:
        process.kill()
        process.wait(10)
        server.shutdown()
        server.server_close()
        thread.join(5)
        if process.stderr is not None:
            api.stderr = process.stderr.read()  # type: ignore[attr-defined]


def measure(label: str, traces: str, env: dict[str, str], args: argparse.Namespace, task_root: str) -> list[float]:
    times: list[float] = []
    with runtime(traces, env, args.remaining_ms, task_root) as api:
        for seed in range(args.invocations):
            api.events.put(sqs_event(count=2, seed=seed))
            outcome, elapsed = api.results.get(timeout=60)
            if outcome != "response":
                raise SystemExit(f"{label}: invocation {seed} ended with {outcome}")
            times.append(elapsed * 1000)
    warm = sorted(times[1:])
    print(
        f"{label:>22}: first {times[0]:8.1f} ms   warm max {warm[-1]:7.1f} ms   warm median "
        f"{warm[len(warm) // 2]:6.1f} ms"
    )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=21)
    parser.add_argument("--remaining-ms", type=int, default=3000)
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--before",
        type=int,
        default=0,
        metavar="N",
        help="also run N invocations against the refusing collector with BATCHLENS_FLUSH_FAILING_WAIT_MS=5000 "
        "(every flush waits its whole budget, as before the health state)",
    )
    args = parser.parse_args()
    try:
        import awslambdaric  # noqa: F401
    except ImportError:
        print("needs awslambdaric (pip install awslambdaric)")
        return 0
    with tempfile.TemporaryDirectory() as task_root:
        Path(task_root, "handler.py").write_text(HANDLER)
        baseline = measure('traces="none"', "none", {}, args, task_root)
        port = collectors.closed_port()
        otlp = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        refused = measure(
            "refusing collector", "otlp", {**otlp, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}, args,
            task_root,
        )  # fmt: skip
        with collectors.silent_collector() as url:
            silent = measure("silent collector", "otlp", {**otlp, "OTEL_EXPORTER_OTLP_ENDPOINT": url}, args, task_root)
        if args.before:
            before = argparse.Namespace(**{**vars(args), "invocations": args.before})
            waiting = {
                "BATCHLENS_FLUSH_FAILING_WAIT_MS": "5000",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            }
            measure("refusing, no health", "otlp", {**otlp, **waiting}, before, task_root)
    base = max(baseline[1:])
    missed = False
    for label, times in (("refusing", refused), ("silent", silent)):
        extra = max(times[1:]) - base
        ok = extra <= TARGET_EXTRA_MS
        missed |= not ok
        print(f"{label}: slowest warm invocation {extra:+.1f} ms over traces=\"none\" (target <= {TARGET_EXTRA_MS:.0f})"
              f" {'ok' if ok else 'MISSED'}")  # fmt: skip
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
