"""Tests for examples/: Sentry switched on by configuration, the testing example, the dashboards script."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from _examples_support import EXAMPLES, ROOT, clean_env, event_of, read_json

# pytest fixtures, used by name: the example loader and the autouse environment cleaner
from _examples_support import load_fixture as load_fixture
from _examples_support import no_batchlens_env as no_batchlens_env
from batchlens.testing import lambda_context

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
        scope = sentry_sdk.Scope
        for one in (scope.get_global_scope(), scope.get_isolation_scope(), scope.get_current_scope()):
            one.set_client(None)

    reset()
    monkeypatch.setattr(sentry_sdk, "init", init_with_fake_transport)
    yield events, dsns
    reset()


@pytest.mark.sentry
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


@pytest.mark.sentry
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
