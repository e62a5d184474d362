"""configure()'s resource: the SDK's own detectors, run in the calling thread, give what Resource.create() gives."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from opentelemetry.sdk import resources
from opentelemetry.sdk.resources import OTELResourceDetector, Resource, ResourceDetector

from batchlens._telemetry._sdk import _build_resource, _resource_from_env

INSTANCE_ID = "service.instance.id"  # a random UUID per detection: compared by presence only


@pytest.fixture(autouse=True)
def no_resource_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"):
        monkeypatch.delenv(name, raising=False)


def comparable(resource: Resource) -> tuple[dict[str, Any], bool, str]:
    attributes = dict(resource.attributes)
    has_instance = attributes.pop(INSTANCE_ID, None) is not None
    return attributes, has_instance, resource.schema_url


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"OTEL_SERVICE_NAME": "orders"},
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,deployment.environment=prod,team=a%20b"},
        {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=fixed", "OTEL_SERVICE_NAME": "orders"},
        {"OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel"},
    ],
)
def test_the_resource_equals_resource_create(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    ours, theirs = _resource_from_env(os.environ), Resource.create()
    assert comparable(ours) == comparable(theirs)
    if "service.instance.id=fixed" in variables.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        assert ours.attributes[INSTANCE_ID] == theirs.attributes[INSTANCE_ID] == "fixed"


def test_no_thread_is_started_for_the_built_in_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resource.create() starts a pool thread per detector; the calling thread runs them instead."""
    started: list[str] = []
    original = threading.Thread.start

    def recording_start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    _resource_from_env(os.environ)
    assert started == []
    Resource.create()
    assert started != []  # the control: the SDK's way does start threads


class _Failing(ResourceDetector):
    def __init__(self, raise_on_error: bool) -> None:
        super().__init__(raise_on_error=raise_on_error)

    def detect(self) -> Resource:
        raise RuntimeError("no metadata endpoint")


def test_a_failing_detector_is_skipped_or_raises_as_the_sdk_does(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders")
    monkeypatch.setattr(resources, "_build_resource_detectors", lambda: [_Failing(False), OTELResourceDetector()])
    assert comparable(_resource_from_env(os.environ)) == comparable(Resource.create())
    assert "no metadata endpoint" in caplog.text
    monkeypatch.setattr(resources, "_build_resource_detectors", lambda: [_Failing(True), OTELResourceDetector()])
    with pytest.raises(RuntimeError, match="no metadata endpoint"):
        _resource_from_env(os.environ)


def test_the_lambda_resource_keeps_its_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detected Lambda attributes, then OTEL_RESOURCE_ATTRIBUTES over them, then the explicit service name."""
    env = {"AWS_LAMBDA_FUNCTION_NAME": "orders-fn", "AWS_REGION": "eu-west-1"}
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "cloud.region=override")
    attributes = _build_resource(None, env).attributes
    assert (attributes["faas.name"], attributes["cloud.region"], attributes["service.name"]) == (
        "orders-fn",
        "override",
        "orders-fn",
    )
    assert _build_resource("explicit", env).attributes["service.name"] == "explicit"
