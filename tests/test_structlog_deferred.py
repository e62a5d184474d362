"""configure()'s Lambda default leaves structlog unimported until the application imports it, then configures it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_REGION": "eu-west-1",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
}


def run(*parts: str, **extra_env: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_", "BATCHLENS_"))}
    env.update(LAMBDA_ENV, **extra_env)
    done = subprocess.run(
        [sys.executable, "-c", "".join(textwrap.dedent(part) for part in parts)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


BATCH = """
    from batchlens import BatchProcessor, EventType, process_partial_response
    from batchlens.testing import lambda_context, sqs_event

    def record_handler(record):
        if record.body == "fail":
            raise ValueError("no")

    processor = BatchProcessor(event_type=EventType.SQS)
    print(process_partial_response(sqs_event(["ok", "fail"]), record_handler, processor, lambda_context()))
"""


def test_lambda_default_imports_no_structlog_and_still_writes_json_lines() -> None:
    """No structlog import on the default path; batchlens' lines are the same JSON (event, level, logger)."""
    lines = run(
        """
        import sys
        from batchlens.telemetry import configure
        handle = configure(service_name="orders")
        assert handle.log_format == "json", handle
        """,
        BATCH,
        """
        print("structlog imported:", "structlog" in sys.modules)
        """
    )
    assert lines[-1] == "structlog imported: False"
    entries = [json.loads(line) for line in lines if line.startswith('{"')]
    events = [(e["event"], e["level"], e["logger"]) for e in entries]
    assert ("record processed", "info", "batchlens") in events
    assert ("record failed", "error", "batchlens") in events
    assert ("batch processed", "info", "batchlens") in events


def test_the_applications_first_import_configures_structlog_as_json() -> None:
    """An application importing structlog after configure() gets configure()'s JSON pipeline, logger key included."""
    lines = run(
        """
        from batchlens.telemetry import configure
        configure(service_name="orders")
        import structlog
        assert structlog.is_configured()
        structlog.get_logger("orders.app").info("order stored", order_id=7)
        """,
        BATCH,
    )
    entries = [json.loads(line) for line in lines if line.startswith('{"')]
    app = [e for e in entries if e.get("event") == "order stored"]
    assert app
    assert app[0]["logger"] == "orders.app"
    assert app[0]["level"] == "info"
    assert app[0]["order_id"] == 7
    assert "timestamp" in app[0]
    assert any(e.get("event") == "record failed" and e.get("logger") == "batchlens" for e in entries)


def test_explicit_logs_json_configures_at_once() -> None:
    """configure(logs="json") is a request: structlog is configured by the call itself."""
    lines = run(
        """
        import sys
        from batchlens.telemetry import configure
        configure(service_name="orders", logs="json")
        print("structlog imported:", "structlog" in sys.modules)
        import structlog
        print("configured:", structlog.is_configured())
        """
    )
    assert lines == ["structlog imported: True", "configured: True"]


def test_a_failing_configuration_never_breaks_the_applications_import(capsys: pytest.CaptureFixture[str]) -> None:
    """The hook runs the configuration after structlog's own import; an error there is logged, the import works."""
    lines = run(
        """
        from batchlens._telemetry._structlog_hook import configure_when_imported, pending

        def broken():
            raise RuntimeError("boom")

        assert configure_when_imported(broken) is False
        assert pending()
        import structlog
        print("imported:", structlog.get_logger is not None, "pending:", pending())
        """
    )
    assert lines == ["imported: True pending: False"]
