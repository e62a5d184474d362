"""Shared pieces of the examples/ tests: paths, sample-file readers, and fixtures that load examples cleanly.

The fixtures are registered under their pytest names (``load``, ``_no_batchlens_env``); a test module makes them
available with ``from _examples_support import load_fixture as load_fixture`` (the redundant alias marks a
re-export, so ruff does not report an unused import) and likewise ``no_batchlens_env``, which is autouse.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

_BATCHLENS_ENV = re.compile(r"^(BATCHLENS_|SENTRY_)")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def event_of(directory: str) -> dict[str, Any]:
    return dict(read_json(EXAMPLES / directory / "event.json"))


def clean_env() -> dict[str, str]:
    """The current environment without batchlens/Sentry settings, so examples run with their defaults."""
    return {k: v for k, v in os.environ.items() if not _BATCHLENS_ENV.match(k)}


@pytest.fixture(name="load")
def load_fixture() -> Iterator[Callable[[str, str], ModuleType]]:
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


@pytest.fixture(autouse=True, name="_no_batchlens_env")
def no_batchlens_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove BATCHLENS_* and SENTRY_* variables, so examples run with their defaults."""
    for name in list(os.environ):
        if _BATCHLENS_ENV.match(name):
            monkeypatch.delenv(name)
