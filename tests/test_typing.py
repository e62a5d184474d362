"""The public API type-checks for users: mypy --strict accepts typical handler code (tests/typing/public_api.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_public_api_type_checks_under_mypy_strict() -> None:
    """A user module using processors, data classes, Telemetry and batchlens.testing passes mypy --strict."""
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(HERE / "typing" / "public_api.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_type_error_in_the_same_setup(tmp_path: Path) -> None:
    """The check can fail: a handler reading a missing data-class property is rejected."""
    pytest.importorskip("mypy")
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from batchlens.data_classes import SQSRecord\n"
        "def handler(record: SQSRecord) -> str:\n"
        "    return record.no_such_property\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode != 0
    assert "no_such_property" in result.stdout
