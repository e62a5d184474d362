"""Helpers for the tests/test_cli_*.py files: run the real command in-process or as ``python -m batchlens``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from batchlens import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``batchlens ARGV`` in-process; return (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_command(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """Run ``python -m batchlens ARGV`` in a subprocess (bounded); return the CompletedProcess."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_ENDPOINT"))}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "batchlens", *argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(err: str, fragment: str) -> str:
    """The single ``batchlens: error:`` line of ``err``, which must contain ``fragment``."""
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("batchlens: error: "), err
    assert fragment in lines[0], err
    return lines[0]


def write_event(path: Path, event: Any) -> str:
    path.write_text(json.dumps(event))
    return str(path)


def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Path:
    """Write module ``name`` into ``tmp_path``, the fresh working directory, with no OTEL/endpoint variables."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    for variable in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


@contextmanager
def otel_globals_restored() -> Iterator[None]:
    """Put the OpenTelemetry global providers back as they were after the block.

    ``--traces`` installs the CLI's providers as the process's globals (set once per process, so a user's handler
    and its own spans use them). In a real command that process ends with the command; in-process tests give the
    unset globals back, so later tests that expect no SDK still see none.
    """
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics

    saved = (
        trace._TRACER_PROVIDER,
        trace._TRACER_PROVIDER_SET_ONCE._done,
        metrics._METER_PROVIDER,
        metrics._METER_PROVIDER_SET_ONCE._done,
    )
    try:
        yield
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = saved[0], saved[1]
        metrics._METER_PROVIDER, metrics._METER_PROVIDER_SET_ONCE._done = saved[2], saved[3]
