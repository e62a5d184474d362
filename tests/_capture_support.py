"""Helpers shared by the response-capture tests: build a ``ResponseCapture`` and capture one value."""

from __future__ import annotations

import json
from typing import Any

from batchlens import Telemetry
from batchlens._telemetry.capture import ResponseCapture

UNLIMITED = 10**12


def make_capture(**settings: Any) -> ResponseCapture:
    return ResponseCapture(Telemetry(**settings))


def capture_one(value: Any, **settings: Any) -> dict[str, Any]:
    capture = make_capture(**settings)
    return capture.attributes(value, capture.new_budget())


def full_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
