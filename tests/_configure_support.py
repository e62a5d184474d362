"""Shared pieces of the configure() tests: a clean environment, and handles that are shut down after each test.

A test module makes the fixtures available with ``from _configure_support import handles_fixture as handles_fixture``
(registered as ``handles``; the redundant alias marks a re-export, so ruff does not report an unused import) and
``clean_environment as clean_environment``, which is autouse.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from batchlens.telemetry import TelemetryHandle, configure

_CLEARED_PREFIXES = ("OTEL_", "AWS_LAMBDA_", "BATCHLENS_")
_CLEARED = ("AWS_REGION", "AWS_EXECUTION_ENV")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without OTEL_*/Lambda variables and with structlog at its defaults."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(name="handles")
def handles_fixture() -> Iterator[list[TelemetryHandle]]:
    """Collects handles and shuts them all down after the test."""
    created: list[TelemetryHandle] = []
    yield created
    for handle in created:
        handle.shutdown()


def make(handles: list[TelemetryHandle], **kwargs: Any) -> TelemetryHandle:
    kwargs.setdefault("set_global", False)
    kwargs.setdefault("logs", "none")
    handle = configure(**kwargs)
    handles.append(handle)
    return handle
