"""A local Lambda Runtime API for running handlers under AWS's own runtime client (``awslambdaric``).

``RuntimeApi`` serves the endpoints ``awslambdaric`` calls (``GET /2018-06-01/runtime/invocation/next``, ``POST
.../invocation/{id}/response`` and ``.../error``, ``POST .../init/error``) on 127.0.0.1 at a random port. Like
Lambda, it freezes the runtime between invocations: when the runtime asks for the next event, the whole process
group gets SIGSTOP, and SIGCONT only when an event is handed out. Whatever a handler leaves to background threads
(an unflushed span queue) therefore stays undone while no invocation runs, as in a real sandbox. Managed Instances
(``AWS_LAMBDA_MAX_CONCURRENCY``) are not frozen, so ``freeze=False`` there.

``LambdaProcess`` starts ``python -m awslambdaric module.handler`` in a new process group with a Lambda-like
environment and stops it by process group id. ``LogSocket`` is the unix socket named by
``_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET``: awslambdaric's Managed Instances workers connect to it twice (stdout,
then stderr) and ``dup2`` the connection over the stream, so each connection carries one stream of one worker.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import batchlens

HANDLERS_DIR = Path(__file__).parent / "handlers"
FUNCTION_NAME = "orders-fn"
REGION = "us-east-1"
ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION_NAME}"
_PREFIX = "/2018-06-01/runtime"


class Invocation:
    """One event handed to the runtime, and what came back.

    Attributes:
        request_id: ``Lambda-Runtime-Aws-Request-Id``.
        kind: ``"response"`` or ``"error"`` once the runtime posted; None before.
        body: The posted bytes.
        error_type: ``Lambda-Runtime-Function-Error-Type`` of an error post (awslambdaric 4.2.2 sends none; the
            type is in the body's ``errorType``).
        handed_at / done_at: ``time.monotonic()`` when the event was handed out and the result posted.
        worker_pid: Not known to the API (the runtime does not say); filled by tests from logs when needed.
    """

    def __init__(self, event: Any, timeout_s: float, trace_id: str | None, client_context: Any, arn: str) -> None:
        self.request_id = str(uuid.uuid4())
        self.event = event
        self.timeout_s = timeout_s
        self.trace_id = trace_id
        self.client_context = client_context
        self.arn = arn
        self.kind: str | None = None
        self.body = b""
        self.error_type: str | None = None
        self.xray_cause: str | None = None  # Lambda-Runtime-Function-XRay-Error-Cause of an error post
        self.handed_at = 0.0
        self.done_at = 0.0
        self.done = threading.Event()

    @property
    def wall_s(self) -> float:
        """Seconds from handing the event out to the posted result."""
        return self.done_at - self.handed_at

    def json(self) -> Any:
        return json.loads(self.body)

    def wait(self, timeout_s: float) -> Invocation:
        if not self.done.wait(timeout_s):
            raise TimeoutError(f"no result for invocation {self.request_id} within {timeout_s} s")
        return self

    def headers(self) -> dict[str, str]:
        deadline_ms = int((time.time() + self.timeout_s) * 1000)
        headers = {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.arn,
            "Content-Type": "application/json",
        }
        if self.trace_id is not None:
            headers["Lambda-Runtime-Trace-Id"] = self.trace_id
        if self.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(self.client_context)
        return headers


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the runtime was killed mid-request (expected at the end of every test): no traceback on stderr


class RuntimeApi:
    """The Runtime API emulator; use as a context manager (starts and stops its server thread)."""

    def __init__(self, *, freeze: bool = True) -> None:
        self.freeze = freeze
        self.pgid: int | None = None  # the runtime's process group, frozen between invocations
        self.init_errors: list[tuple[str | None, bytes]] = []
        self.next_calls = 0
        self._events: queue.Queue[Invocation] = queue.Queue()
        self._by_id: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._frozen = False
        self.frozen = threading.Event()  # set while the runtime's process group is stopped
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on the header/body writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{_PREFIX}/invocation/next":
                    self._reply(404, b"{}")
                    return
                invocation = api._next_invocation()
                if invocation is None:  # stopping: the runtime gets an error and the test kills it anyway
                    self._reply(500, b'{"errorMessage":"emulator stopping"}')
                    return
                body = json.dumps(invocation.event).encode()
                self.send_response(200)
                for name, value in invocation.headers().items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                invocation.handed_at = time.monotonic()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                if self.path == f"{_PREFIX}/init/error":
                    api.init_errors.append((error_type, body))
                    self._reply(202, b'{"status":"OK"}')
                    return
                parts = self.path[len(f"{_PREFIX}/invocation/") :].split("/")
                if not self.path.startswith(f"{_PREFIX}/invocation/") or len(parts) != 2:
                    self._reply(404, b"{}")
                    return
                request_id, kind = parts
                invocation = api._by_id.get(request_id)
                if invocation is None or kind not in ("response", "error"):
                    self._reply(400, b'{"errorMessage":"unknown request id"}')
                    return
                invocation.done_at = time.monotonic()
                invocation.kind, invocation.body, invocation.error_type = kind, body, error_type
                invocation.xray_cause = self.headers.get("Lambda-Runtime-Function-XRay-Error-Cause")
                self._reply(202, b'{"status":"OK"}')
                invocation.done.set()

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` for ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self.thaw()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def invoke(
        self,
        event: Any,
        *,
        timeout_s: float = 3.0,
        trace_id: str | None = None,
        client_context: Any = None,
        arn: str = ARN,
    ) -> Invocation:
        """Queue an event for the runtime (``timeout_s`` sets the deadline header, counted from hand-out)."""
        invocation = Invocation(event, timeout_s, trace_id, client_context, arn)
        with self._lock:
            self._by_id[invocation.request_id] = invocation
        self._events.put(invocation)
        return invocation

    def run(self, event: Any, wait_s: float = 30.0, **kwargs: Any) -> Invocation:
        """Invoke and wait (bounded) for the result."""
        return self.invoke(event, **kwargs).wait(wait_s)

    def _next_invocation(self) -> Invocation | None:
        with self._lock:
            self.next_calls += 1
        if self.freeze:
            self._freeze()
        while not self._stopping.is_set():
            try:
                invocation = self._events.get(timeout=0.05)
            except queue.Empty:
                continue
            if self.freeze:
                self.thaw()
            return invocation
        return None

    def _freeze(self) -> None:
        with self._lock:
            if self.pgid is not None and not self._frozen:
                try:
                    os.killpg(self.pgid, signal.SIGSTOP)
                    self._frozen = True
                    self.frozen.set()
                except ProcessLookupError:
                    pass

    def thaw(self) -> None:
        """SIGCONT the runtime's process group if it is frozen."""
        with self._lock:
            if self.pgid is not None and self._frozen:
                self._frozen = False
                self.frozen.clear()
                try:
                    os.killpg(self.pgid, signal.SIGCONT)
                except ProcessLookupError:
                    pass


class LogSocket:
    """The Managed Instances log socket: a unix stream server keeping each connection's bytes apart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.streams: list[bytearray] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            buffer = bytearray()
            self.streams.append(buffer)
            thread = threading.Thread(target=self._read, args=(conn, buffer), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket, buffer: bytearray) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer.extend(chunk)

    def text(self) -> str:
        return "".join(bytes(b).decode("utf-8", "replace") for b in self.streams)

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(2)
        for thread in self._threads:
            thread.join(2)
        self._server.close()


def lambda_env(api: RuntimeApi, handler: str, **extra: str) -> dict[str, str]:
    """The environment Lambda gives a Python function (no inherited AWS_/OTEL_/BATCHLENS_ variables)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/08/[$LATEST]0123456789abcdef",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "LAMBDA_TASK_ROOT": str(HANDLERS_DIR),
            "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
            "_HANDLER": handler,
            # the handlers, then the batchlens the tests import (a checkout's src/ wins over an installed copy)
            "PYTHONPATH": os.pathsep.join([str(HANDLERS_DIR), str(Path(batchlens.__file__).resolve().parents[1])]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TZ": ":UTC",
        }
    )
    env.update(extra)
    return env


class LambdaProcess:
    """``python -m awslambdaric <handler>`` in a process group of its own, output to files."""

    def __init__(self, api: RuntimeApi, handler: str, tmp: Path, env: Mapping[str, str]) -> None:
        self.api = api
        self.stdout_path = tmp / "runtime.stdout"
        self.stderr_path = tmp / "runtime.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "awslambdaric", handler],
                cwd=str(HANDLERS_DIR),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # pid == pgid: frozen and killed as a group
            )
        self.pgid = self.proc.pid
        api.pgid = self.pgid

    def stdout(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        self.api.pgid = None
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL of a whole group does not fail
            pass


@contextmanager
def lambda_runtime(
    handler: str, tmp: Path, *, freeze: bool = True, log_socket: bool = False, **env: str
) -> Iterator[tuple[RuntimeApi, LambdaProcess, LogSocket | None]]:
    """Start the emulator, the runtime client and (Managed Instances) the log socket; stop all of them."""
    with RuntimeApi(freeze=freeze) as api:
        sock = LogSocket(tmp / "log.sock") if log_socket else None
        extra = dict(env)
        if sock is not None:
            extra["_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET"] = str(sock.path)
        process = LambdaProcess(api, handler, tmp, lambda_env(api, handler, **extra))
        try:
            yield api, process, sock
        finally:
            process.stop()
            if sock is not None:
                sock.close()
