"""Tests under AWS's own runtime client: Linux only (awslambdaric ships Linux wheels only), all marked slow."""

from __future__ import annotations

import importlib.util
import sys

import pytest

_SKIP = (
    "awslambdaric (Lambda's runtime client) has Linux wheels only"
    if not sys.platform.startswith("linux")
    else "awslambdaric is not installed (pip install -e '.[test]')"
    if importlib.util.find_spec("awslambdaric") is None
    else None
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/runtime/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
            if _SKIP is not None:
                item.add_marker(pytest.mark.skip(reason=_SKIP))
