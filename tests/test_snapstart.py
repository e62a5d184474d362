"""SnapStart: after a restore, flush workers, exporter connections and trace-id randomness are renewed.

A fake ``snapshot_restore_py`` (the module awslambdaric 4.x runs restore hooks from) on sys.path stands in for the
runtime: a restore is simulated by running its registered hooks the way awslambdaric does.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

import _collector_support as collectors
from batchlens._telemetry import _flush, _health, _restore
from batchlens._telemetry._flush import FlushTask, flush_within
from batchlens.telemetry import configure

FAKE_RUNTIME = """
_after_restore_registry = []

def register_after_restore(func, *args, **kwargs):
    _after_restore_registry.append((func, args, kwargs))
    return func

def get_after_restore():
    return _after_restore_registry
"""


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A SnapStart sandbox: the fake snapshot_restore_py importable, AWS_LAMBDA_INITIALIZATION_TYPE=snap-start."""
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    monkeypatch.setattr(_restore, "_installed", False)
    assert _restore.install()
    import snapshot_restore_py

    yield snapshot_restore_py
    sys.modules.pop("snapshot_restore_py", None)


def restore(runtime: Any) -> None:
    """What awslambdaric's run_after_restore does."""
    for func, args, kwargs in runtime.get_after_restore():
        func(*args, **kwargs)


def test_batchlens_registers_one_hook_with_the_runtime(runtime):
    """install() registers batchlens' after-restore hook once, however often it (or a registration) runs."""
    _restore.install()
    _restore.register_after_restore(lambda: None)
    assert [func for func, _, _ in runtime.get_after_restore()] == [_restore.run_after_restore]


def test_without_snapstart_the_runtime_module_is_not_imported(tmp_path, monkeypatch):
    """Outside a SnapStart sandbox snapshot_restore_py is never imported, even when it is importable."""
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    monkeypatch.setattr(_restore, "_installed", False)
    assert not _restore.install()
    assert "snapshot_restore_py" not in sys.modules


@pytest.mark.parametrize(
    "init",
    ["import batchlens.telemetry", "import batchlens; batchlens.BatchProcessor(batchlens.EventType.SQS)"],
    ids=["configure-module", "processor"],
)
def test_a_sandbox_initialised_for_snapstart_registers_the_hook_at_init(tmp_path, init):
    """In a fresh SnapStart sandbox, importing batchlens.telemetry or building a processor registers the hook once."""
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    code = init + textwrap.dedent(
        """
        import snapshot_restore_py
        from batchlens._telemetry import _restore
        print([f is _restore.run_after_restore for f, _, _ in snapshot_restore_py.get_after_restore()])
        """
    )
    env = {"PYTHONPATH": str(tmp_path), "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[True]"


def test_trace_ids_differ_in_every_restored_copy(runtime):
    """The SDK's id generator draws from ``random``: reseeded after a restore, copies of a snapshot make new ids."""
    ids = RandomIdGenerator()
    random.seed(1234)  # the generator's state when the snapshot was taken
    in_the_snapshot = ids.generate_trace_id()
    random.seed(1234)  # every restored copy resumes that same state
    restore(runtime)
    assert ids.generate_trace_id() != in_the_snapshot


def test_flush_workers_of_the_snapshot_are_retired(runtime):
    """Workers started before the snapshot end after a restore; the next flush gets a worker of its own."""
    target, release = object(), threading.Event()
    assert flush_within([FlushTask("tracer_provider", target, lambda timeout: release.wait(10))], 50) == [
        "tracer_provider"
    ]
    (before,) = [w for w in _flush._workers.values() if w.lane is target]
    restore(runtime)
    assert all(w.lane is not target for w in _flush._workers.values())
    assert not _health.is_bad(target)  # the snapshot's failing state is forgotten
    release.set()
    before.thread.join(5)
    assert not before.thread.is_alive()
    done: list[int] = []
    assert flush_within([FlushTask("tracer_provider", target, done.append)], 1000) == []
    assert len(done) == 1
    (after,) = [w for w in _flush._workers.values() if w.lane is target]
    assert after.thread is not before.thread


def test_a_stuck_worker_of_the_snapshot_does_not_hold_new_flushes(runtime):
    """A flush stuck when the snapshot was taken does not make the restored copy's flushes wait behind it."""
    target, release = object(), threading.Event()
    try:
        flush_within([FlushTask("tracer_provider", target, lambda timeout: release.wait(10))], 50)
        restore(runtime)
        started = time.monotonic()
        assert flush_within([FlushTask("tracer_provider", target, lambda timeout: None)], 1000) == []
        assert time.monotonic() - started < 0.5
    finally:
        release.set()


def test_exporter_connections_made_before_the_snapshot_are_reopened(runtime, monkeypatch):
    """The OTLP/HTTP exporter's pooled connection is closed after a restore; the next export opens a new one."""
    with collectors.answering_collector() as (url, collector):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        handle = configure(traces="otlp", metrics="none", logs="none", set_global=False)
        tracer = handle.tracer_provider.get_tracer("t")
        try:
            for _ in range(2):
                tracer.start_span("s").end()
                assert handle.flush(timeout_millis=2000)
            assert collector.connections == 1  # kept alive between exports
            restore(runtime)
            tracer.start_span("s").end()
            assert handle.flush(timeout_millis=2000)
            assert collector.connections == 2
            assert collector.paths == ["/v1/traces"] * 3
        finally:
            handle.shutdown(timeout_millis=500)


def test_a_failing_restore_callback_does_not_stop_the_others(runtime, caplog):
    """A callback that raises is logged; the callbacks after it still run (a raising hook would end the sandbox)."""
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("socket gone")

    callbacks = [broken, lambda: ran.append("after")]
    for callback in callbacks:
        _restore.register_after_restore(callback)
    try:
        restore(runtime)
    finally:
        for callback in callbacks:
            _restore._callbacks.remove(callback)
    assert ran == ["after"]
    assert any("SnapStart restore failed" in r.getMessage() for r in caplog.records)


def test_xray_exporter_opens_a_new_socket_after_a_restore() -> None:
    """A SnapStart restore closes the X-Ray exporter's socket made at init; the next export opens its own."""
    import socket

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from batchlens._telemetry import _restore
    from batchlens._telemetry._xray_udp import XRayUdpSpanExporter

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    try:
        exporter = XRayUdpSpanExporter(f"127.0.0.1:{receiver.getsockname()[1]}")
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.get_tracer("t").start_span("before").end()
        receiver.recv(65_535)
        before = exporter._socket
        assert before is not None

        _restore.run_after_restore()

        assert exporter._socket is None
        assert before.fileno() == -1  # closed
        provider.get_tracer("t").start_span("after").end()
        assert receiver.recv(65_535).startswith(b'{"format":"json","version":1}\nT1S')
        assert exporter._socket is not None
        assert exporter._socket is not before
    finally:
        receiver.close()
