"""Tests for examples/: every example runs on its sample event and produces its documented response."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from _examples_support import EXAMPLES, ROOT, clean_env, event_of, read_json

# pytest fixtures, used by name: the example loader and the autouse environment cleaner
from _examples_support import load_fixture as load_fixture
from _examples_support import no_batchlens_env as no_batchlens_env
from batchlens.testing import lambda_context

# (example directory, module, expected response file): each module's lambda_handler, given the directory's
# event.json, must return exactly the response file.
HANDLER_CASES = [
    ("getting_started_sqs", "app.py", "response.json"),
    ("getting_started_sqs", "app_context_manager.py", "response.json"),
    ("getting_started_kinesis", "app.py", "response.json"),
    ("getting_started_kinesis", "app_context_manager.py", "response.json"),
    ("getting_started_dynamodb", "app.py", "response.json"),
    ("getting_started_dynamodb", "app_context_manager.py", "response.json"),
    ("sqs_fifo", "app.py", "response.json"),
    ("sqs_fifo", "app_context_manager.py", "response.json"),
    ("sqs_fifo", "app_skip_group_on_error.py", "response_skip_group_on_error.json"),
    ("error_handling", "app.py", "response.json"),
    ("async_processing", "app.py", "response.json"),
    ("pydantic_sqs", "app.py", "response.json"),
    ("pydantic_kinesis", "app.py", "response.json"),
    ("pydantic_dynamodb", "app.py", "response.json"),
    ("entire_batch_failure", "app.py", "response.json"),
    ("accessing_processed_messages", "app.py", "response.json"),
    ("accessing_lambda_context", "app.py", "response.json"),
    ("accessing_lambda_context", "app_context_manager.py", "response.json"),
    ("extending_processor", "app.py", "response.json"),
    ("disable_response_capture", "app.py", "response.json"),
    ("sentry", "app.py", "response.json"),
    ("parallel_processing", "app.py", "response.json"),
    ("async_max_concurrency", "app.py", "response.json"),
    ("stream_stop_on_first_failure", "app.py", "response.json"),
    ("kafka", "app.py", "response.json"),
]

# Scripts whose `python <script>` run prints the response JSON as its last line. (The custom processor and
# deadline guard need injected collaborators for the in-process run; their scripts provide them.)
SCRIPT_CASES = sorted(
    {
        *HANDLER_CASES,
        ("custom_partial_processor", "app.py", "response.json"),
        ("deadline_guard", "app.py", "response.json"),
    }
)


# ---------------------------------------------------------------------------------------------------------
# the examples directory as a whole


def test_every_example_directory_is_tested_and_indexed() -> None:
    """Each example directory is covered by these tests and listed in examples/README.md."""
    directories = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    covered = {d for d, _, _ in SCRIPT_CASES} | {"testing_your_code", "dashboards_prometheus", "sam"}
    assert directories == covered
    index = (EXAMPLES / "README.md").read_text()
    for directory in directories:
        assert f"({directory}/" in index, f"{directory} is missing from examples/README.md"


def test_every_example_module_is_covered() -> None:
    """Every Python module under examples/ is exercised by one of the tests here."""
    modules = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.py") if "__pycache__" not in p.parts}
    covered = {f"{d}/{m}" for d, m, _ in SCRIPT_CASES}
    covered |= {"testing_your_code/app.py", "testing_your_code/test_app.py", "dashboards_prometheus/app.py"}
    covered.add("sam/telemetry_app/app.py")  # run with each telemetry template's environment by test_sam_telemetry.py
    assert modules == covered


@pytest.mark.parametrize(("directory", "module", "response"), HANDLER_CASES)
def test_handler_returns_the_documented_response(
    directory: str, module: str, response: str, load: Callable[[str, str], ModuleType]
) -> None:
    """lambda_handler(event.json, context) returns exactly the example's response JSON."""
    app = load(directory, module)
    result = app.lambda_handler(event_of(directory), lambda_context())
    assert result == read_json(EXAMPLES / directory / response)


# Runs scripts as `python <script>` would (run_name="__main__"), all in one fresh interpreter: starting one
# interpreter per example would make this the slowest part of the suite.
_RUNNER = """
import runpy, sys, traceback
for path in sys.argv[1:]:
    print("=== begin " + path, flush=True)
    code = 0
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        code = exc.code or 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    print("=== end " + path + " " + str(code), flush=True)
"""


@pytest.fixture(scope="module")
def script_runs() -> dict[tuple[str, str], tuple[str, list[str]]]:
    """Run every example script once; map (directory, module) to (exit code, stdout lines)."""
    paths = [str(EXAMPLES / d / m) for d, m, _ in SCRIPT_CASES]
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, *paths],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=clean_env(),
        check=False,
    )
    runs: dict[tuple[str, str], tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if line.startswith("=== begin "):
            current = []
        elif line.startswith("=== end ") and current is not None:
            path, code = line.removeprefix("=== end ").rsplit(" ", 1)
            relative = Path(path).relative_to(EXAMPLES)
            runs[(relative.parent.as_posix(), relative.name)] = (code, current)
            current = None
        elif current is not None:
            current.append(line)
    assert len(runs) == len(SCRIPT_CASES), result.stderr[-3000:]
    return runs


@pytest.mark.parametrize(("directory", "module", "response"), SCRIPT_CASES)
def test_script_prints_the_documented_response(
    directory: str,
    module: str,
    response: str,
    script_runs: dict[tuple[str, str], tuple[str, list[str]]],
) -> None:
    """Running the example as a script exits 0 and prints the response JSON as its last line."""
    code, lines = script_runs[(directory, module)]
    assert code == "0", "\n".join(lines[-30:])
    assert json.loads(lines[-1]) == read_json(EXAMPLES / directory / response)


def test_an_example_runs_as_a_standalone_script() -> None:
    """`python examples/getting_started_sqs/app.py` works in a fresh interpreter from any directory."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "getting_started_sqs" / "app.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES.parent.parent,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = read_json(EXAMPLES / "getting_started_sqs" / "response.json")
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.json")), ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_sample_files_are_formatted_json(path: Path) -> None:
    """Sample events and responses are valid, two-space-indented JSON ending in a newline."""
    text = path.read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
