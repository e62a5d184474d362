"""Tests for examples/: every example runs on its sample event and produces its documented response."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from batchlens import BatchProcessingError, BatchProcessor, EventType, Telemetry
from batchlens.data_classes import SQSRecord
from batchlens.exceptions import DeadlineExceededError, StreamCircuitBreakerError
from batchlens.testing import capture_telemetry, lambda_context

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

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

_BATCHLENS_ENV = re.compile(r"^(BATCHLENS_|SENTRY_)")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def event_of(directory: str) -> dict[str, Any]:
    return dict(read_json(EXAMPLES / directory / "event.json"))


def clean_env() -> dict[str, str]:
    """The current environment without batchlens/Sentry settings, so examples run with their defaults."""
    return {k: v for k, v in os.environ.items() if not _BATCHLENS_ENV.match(k)}


@pytest.fixture
def load() -> Iterator[Callable[[str, str], ModuleType]]:
    """Import an example module afresh (its own module state), registered so pydantic can resolve types."""
    loaded: list[str] = []

    def _load(directory: str, module: str = "app.py") -> ModuleType:
        name = f"batchlens_example_{directory}_{module.removesuffix('.py')}_{len(loaded)}"
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / directory / module)
        assert spec is not None
        assert spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        loaded.append(name)
        spec.loader.exec_module(mod)
        return mod

    yield _load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def _no_batchlens_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if _BATCHLENS_ENV.match(name):
            monkeypatch.delenv(name)


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
    covered.add("sam/telemetry_app/app.py")  # run with each telemetry template's environment by test_sam_templates.py
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


# ---------------------------------------------------------------------------------------------------------
# what individual examples demonstrate beyond their response


def test_fifo_default_stops_at_first_failure_while_skip_group_continues(load: Callable[..., ModuleType]) -> None:
    """Without skip_group_on_error every record after bob's failure returns; with it, only bob's group."""
    event = event_of("sqs_fifo")
    groups = [r["attributes"]["MessageGroupId"] for r in event["Records"]]
    default = load("sqs_fifo", "app.py").lambda_handler(copy.deepcopy(event), None)
    skipping = load("sqs_fifo", "app_skip_group_on_error.py").lambda_handler(copy.deepcopy(event), None)
    ids = [r["messageId"] for r in event["Records"]]
    assert [f["itemIdentifier"] for f in default["batchItemFailures"]] == ids[1:]
    assert [f["itemIdentifier"] for f in skipping["batchItemFailures"]] == [
        i for i, g in zip(ids, groups, strict=True) if g == "customer-bob"
    ]


def test_error_handling_records_the_custom_exception(load: Callable[..., ModuleType]) -> None:
    """The custom exception class is what the processor keeps for the failed record."""
    app = load("error_handling")
    app.lambda_handler(event_of("error_handling"), None)
    assert [info[0] for info in app.processor.exceptions] == [app.InvalidPayloadError]


def test_entire_batch_failure_would_raise_by_default(load: Callable[..., ModuleType]) -> None:
    """The same all-failing batch raises BatchProcessingError with the default processor settings."""
    app = load("entire_batch_failure")
    from batchlens import process_partial_response

    with pytest.raises(BatchProcessingError, match="All records failed processing"):
        process_partial_response(event_of("entire_batch_failure"), app.record_handler, BatchProcessor(EventType.SQS))
    assert len(app.lambda_handler(event_of("entire_batch_failure"), None)["batchItemFailures"]) == 2


def test_processed_messages_have_the_documented_tuple_shapes(load: Callable[..., ModuleType]) -> None:
    """Success tuples hold the result and raw record; failure tuples the error text and the data class."""
    app = load("accessing_processed_messages")
    records = event_of("accessing_processed_messages")["Records"]
    (ok_status, ok_result, ok_record), (bad_status, bad_error, bad_record) = app.process(records)
    assert (ok_status, ok_result, ok_record) == ("success", "stored A-1", records[0])
    assert bad_status == "fail"
    assert bad_error == "<class 'RuntimeError'>:the message asked to fail"
    assert isinstance(bad_record, SQSRecord)
    assert bad_record.message_id == records[1]["messageId"]


@pytest.mark.parametrize("module", ["app.py", "app_context_manager.py"])
def test_record_handler_receives_the_lambda_context(module: str, load: Callable[..., ModuleType]) -> None:
    """The record handler gets the invocation's context through its lambda_context parameter."""
    app = load("accessing_lambda_context", module)
    seen: list[Any] = []
    original = app.record_handler

    def spy(record: Any, lambda_context: Any = None) -> Any:
        result = original(record, lambda_context)
        seen.append(result)
        return result

    app.record_handler = spy
    app.lambda_handler(event_of("accessing_lambda_context"), lambda_context(remaining_ms=4_321, frozen=True))
    assert seen == [4_321, 4_321]


def test_extending_processor_counts_successes_and_failures_by_type(load: Callable[..., ModuleType]) -> None:
    """The subclass's hooks run once per record and the response is still built."""
    app = load("extending_processor")
    response = app.lambda_handler(event_of("extending_processor"), None)
    assert dict(app.processor.counts) == {"success": 2, "failure.JSONDecodeError": 1}
    assert len(response["batchItemFailures"]) == 1


class FakeTable:
    """In-memory stand-in for a boto3 DynamoDB Table: records one list of items per batch_writer block."""

    def __init__(self) -> None:
        self.writes: list[list[dict[str, Any]]] = []

    def batch_writer(self) -> FakeTable:
        self.writes.append([])
        return self

    def __enter__(self) -> FakeTable:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def put_item(self, Item: dict[str, Any]) -> None:  # boto3 spells it this way
        self.writes[-1].append(Item)


def test_custom_processor_stores_successes_in_one_batch_write(load: Callable[..., ModuleType]) -> None:
    """Successful results are written once per batch, keyed by messageId with a future expiration."""
    app = load("custom_partial_processor")
    table = FakeTable()
    app.processor = app.ResultsTableProcessor(table_name="results", table=table)
    event = event_of("custom_partial_processor")
    now = int(time.time())

    response = app.lambda_handler(event, lambda_context())

    assert response == read_json(EXAMPLES / "custom_partial_processor" / "response.json")
    (items,) = table.writes
    records = event["Records"]
    assert [item["messageId"] for item in items] == [records[0]["messageId"], records[2]["messageId"]]
    assert [item["result"]["output"] for item in items] == ["cat-256.png", "dog-256.png"]
    assert all(
        now + app.RESULT_TTL_SECONDS <= item["expiration"] <= now + app.RESULT_TTL_SECONDS + 60 for item in items
    )


def test_custom_processor_starts_each_warm_invocation_clean(load: Callable[..., ModuleType]) -> None:
    """A second batch writes only its own results and reports only its own failures."""
    app = load("custom_partial_processor")
    table = FakeTable()
    app.processor = app.ResultsTableProcessor(table=table)
    event = event_of("custom_partial_processor")
    app.lambda_handler(copy.deepcopy(event), None)
    second = {"Records": [event["Records"][0]]}

    response = app.lambda_handler(second, None)

    assert response == {"batchItemFailures": []}
    assert [len(batch) for batch in table.writes] == [2, 1]
    assert app.processor.table_name == "batch_results"


def test_disabled_response_capture_keeps_results_off_spans(load: Callable[..., ModuleType]) -> None:
    """With capture_response=False record spans carry no captured result; with the default they do."""
    app = load("disable_response_capture")
    event = event_of("disable_response_capture")

    def captured_keys(processor: Any) -> list[set[str]]:
        app.processor = processor
        with capture_telemetry() as telemetry:
            app.lambda_handler(copy.deepcopy(event), lambda_context())
        spans = telemetry.record_spans()
        assert len(spans) == 3
        return [{k for k in (s.attributes or {}) if k.startswith("batchlens.record.response")} for s in spans]

    assert captured_keys(app.processor) == [set(), set(), set()]
    default = BatchProcessor(event_type=EventType.SQS, telemetry=Telemetry(capture_response=True))
    assert all(keys for keys in captured_keys(default))


def test_parallel_processing_uses_several_threads_and_keeps_order(
    load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_workers=4 runs the 8 jobs four at a time on several threads; results come back in input order.

    The jobs' sleep is replaced by a 4-party barrier: it only opens when four jobs wait at once, so a pool
    running fewer than four at a time fails the records (BrokenBarrierError after the timeout) instead of
    passing slowly. No stopwatch involved.
    """
    app = load("parallel_processing")
    barrier = threading.Barrier(app.MAX_WORKERS, timeout=10)
    monkeypatch.setattr(app, "time", SimpleNamespace(sleep=lambda _seconds: barrier.wait()))
    records = event_of("parallel_processing")["Records"]
    assert len(records) % app.MAX_WORKERS == 0
    with app.processor(records=records, handler=app.record_handler):
        processed = app.processor.process()
    bodies = [json.loads(r["body"]) for r in records]
    failures = [entry[1] for entry in processed if entry[0] == "fail"]
    assert all("could not render" in text for text in failures), failures
    successes = [entry[1] for entry in processed if entry[0] == "success"]
    assert len({result["thread"] for result in successes}) > 1
    assert [r["order_id"] for r in successes] == [b["order_id"] for b in bodies if b["status"] != "fail"]


# The async_max_concurrency cap (peak in flight == MAX_CONCURRENCY) is checked, on a larger batch, by
# tests/test_async_concurrency.py::test_async_max_concurrency_example.


def test_deadline_guard_stops_starting_records_below_the_margin(load: Callable[..., ModuleType]) -> None:
    """With 1000 ms left, 300 ms per record and a 450 ms margin, two records run and three are handed back."""
    app = load("deadline_guard")
    now = [0.0]
    exported: list[str] = []

    def export_order(order: dict[str, Any]) -> None:
        exported.append(order["order_id"])
        now[0] += 0.3

    app.export_order = export_order
    context = lambda_context(remaining_ms=1_000, clock=lambda: now[0])

    response = app.lambda_handler(event_of("deadline_guard"), context)

    assert response == read_json(EXAMPLES / "deadline_guard" / "response.json")
    assert exported == ["order-0001", "order-0002"]
    assert [info[0] for info in app.processor.exceptions] == [DeadlineExceededError] * 3


def test_stream_stop_on_first_failure_applies_nothing_after_the_failure(load: Callable[..., ModuleType]) -> None:
    """Only the first ledger entry is applied; later entries are skipped with StreamCircuitBreakerError."""
    app = load("stream_stop_on_first_failure")
    app.lambda_handler(event_of("stream_stop_on_first_failure"), None)
    balances = app.BALANCES
    assert balances == {"acc-1": Decimal(50)}
    assert [info[0] for info in app.processor.exceptions] == [
        ValueError,
        StreamCircuitBreakerError,
        StreamCircuitBreakerError,
    ]


# ---------------------------------------------------------------------------------------------------------
# Sentry via configuration


@pytest.fixture
def sentry_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
    """Route the Sentry SDK to an in-memory transport; yields (captured events, DSNs passed to init)."""
    sentry_sdk = pytest.importorskip("sentry_sdk")
    from sentry_sdk.transport import Transport

    events: list[dict[str, Any]] = []
    dsns: list[str] = []

    class KeepingTransport(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            event = envelope.get_event()
            if event is not None:
                events.append(event)

        def flush(self, timeout: float, callback: Any = None) -> None:
            return None

    real_init = sentry_sdk.init

    def init_with_fake_transport(*args: Any, **kwargs: Any) -> Any:
        dsns.append(kwargs.get("dsn") or (args[0] if args else ""))
        return real_init(*args, **{**kwargs, "transport": KeepingTransport})

    def reset() -> None:
        for scope in (sentry_sdk.get_global_scope(), sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
            scope.set_client(None)

    reset()
    monkeypatch.setattr(sentry_sdk, "init", init_with_fake_transport)
    yield events, dsns
    reset()


def test_sentry_is_switched_on_by_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
    load: Callable[..., ModuleType],
    sentry_events: tuple[list[dict[str, Any]], list[str]],
) -> None:
    """BATCHLENS_SENTRY_ENABLED + BATCHLENS_SENTRY_DSN make batchlens init Sentry and send the failed record."""
    events, dsns = sentry_events
    dsn = "https://public@o0.ingest.example.invalid/1"
    monkeypatch.setenv("BATCHLENS_SENTRY_ENABLED", "true")
    monkeypatch.setenv("BATCHLENS_SENTRY_DSN", dsn)
    app = load("sentry")
    assert app.TELEMETRY.sentry is True

    response = app.lambda_handler(event_of("sentry"), lambda_context())

    assert response == read_json(EXAMPLES / "sentry" / "response.json")
    assert dsns == [dsn]
    (event,) = events
    assert event["exception"]["values"][-1]["type"] == "OutOfStockError"
    failed_id = response["batchItemFailures"][0]["itemIdentifier"]
    assert event["tags"]["messaging.message.id"] == failed_id


def test_sentry_stays_off_without_configuration(
    load: Callable[..., ModuleType], sentry_events: tuple[list[dict[str, Any]], list[str]]
) -> None:
    """Without the variables nothing is sent and Sentry is never initialised."""
    events, dsns = sentry_events
    app = load("sentry")
    app.lambda_handler(event_of("sentry"), lambda_context())
    assert app.TELEMETRY.sentry is False
    assert (events, dsns) == ([], [])


# ---------------------------------------------------------------------------------------------------------
# testing your code, dashboards


def test_testing_your_code_example_passes_under_pytest() -> None:
    """The example's own test module passes when run with pytest, as a user would run it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            str(EXAMPLES / "testing_your_code"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\b3 passed\b", result.stdout), result.stdout[-3000:]


def test_dashboards_script_runs_batches_without_an_exporter(
    load: Callable[..., ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    """main() with metrics="none" processes the requested number of batches and exits 0."""
    app = load("dashboards_prometheus")
    assert app.main(["--metrics", "none", "--batches", "2", "--interval", "0", "--records", "5"]) == 0
    assert len(re.findall(r"^batch \d+: ", capsys.readouterr().out, flags=re.MULTILINE)) == 2


def test_dashboards_script_serves_the_dashboard_metrics_on_prometheus() -> None:
    """--check serves /metrics, scrapes it, and finds each series the dashboard queries exactly once."""
    pytest.importorskip("opentelemetry.exporter.prometheus")
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "dashboards_prometheus" / "app.py"),
            "--check",
            "--port",
            "0",
            "--interval",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    series = [line.rsplit(" ", 1)[0] for line in result.stdout.splitlines() if "{" in line]
    names = {s.split("{", 1)[0] for s in series}
    assert {
        "messaging_client_consumed_messages_total",
        "batchlens_records_failed_total",
        "batchlens_batch_size_count",
        "messaging_process_duration_seconds_count",
    } <= names
    assert len(series) == len(set(series)), "duplicate series in one scrape (Prometheus rejects those)"
