"""The hand-written OTLP encoder writes the bytes the SDK's protobuf encoder writes, for any span it can be given."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from batchlens._telemetry._otlp_wire import encode_spans

SRC = str(Path(__file__).resolve().parents[1] / "src")
INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
UINT64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    INT64,
    st.floats(allow_nan=False),
    st.binary(max_size=12),
)
# homogeneous arrays, None allowed inside, as the SDK keeps them; and what AnyValue carries beyond that
arrays = st.one_of(
    st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=4).map(tuple),
    st.lists(st.booleans(), max_size=4).map(tuple),
    st.lists(INT64, max_size=4).map(tuple),
    st.lists(st.floats(allow_nan=False), max_size=4).map(tuple),
    st.lists(st.binary(max_size=4), max_size=3).map(tuple),
)
values = st.one_of(
    scalars,
    arrays,
    st.none(),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
    st.lists(st.lists(st.integers(0, 9), max_size=2), max_size=2),
)
attribute_dicts = st.dictionaries(st.text(max_size=12), values, max_size=5)


@st.composite
def attributes(draw: Any) -> Any:
    """A plain dict, or BoundedAttributes that dropped some (the dropped count is encoded)."""
    raw = draw(attribute_dicts)
    if raw and draw(st.booleans()):
        # BoundedAttributes cleans values, as the SDK does for real spans: only what it accepts survives
        return BoundedAttributes(
            maxlen=draw(st.integers(0, len(raw))),
            attributes=draw(
                st.dictionaries(
                    st.text(max_size=8),
                    st.one_of(
                        scalars.filter(lambda v: not isinstance(v, bytes)),
                        arrays.filter(lambda v: not any(isinstance(i, bytes) for i in v)),
                    ),
                    max_size=5,
                )
            ),
            immutable=False,
        )
    return raw


span_ids = st.integers(min_value=1, max_value=(1 << 64) - 1)
trace_ids = st.integers(min_value=1, max_value=(1 << 128) - 1)
trace_states = st.sampled_from([TraceState(), TraceState([("vendor", "v1")]), TraceState([("a", "1"), ("b", "x-2")])])


@st.composite
def contexts(draw: Any, remote: bool | None = None) -> SpanContext:
    return SpanContext(
        draw(trace_ids),
        draw(span_ids),
        is_remote=draw(st.booleans()) if remote is None else remote,
        trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
        trace_state=draw(trace_states),
    )


@st.composite
def statuses(draw: Any) -> Status:
    code = draw(st.sampled_from(list(StatusCode)))
    description = draw(st.one_of(st.none(), st.text(max_size=20))) if code is StatusCode.ERROR else None
    return Status(code, description)


@st.composite
def bounded(draw: Any, items: list[Any]) -> Any:
    if items and draw(st.booleans()):
        return BoundedList.from_seq(draw(st.integers(0, len(items))), items)
    return items


resources = st.sampled_from(
    [
        Resource({"service.name": "orders", "faas.max_memory": 536870912, "tags": ("a", "b")}),
        Resource({"service.name": "other"}, "https://opentelemetry.io/schemas/1.44.0"),
        Resource({}),
    ]
)
scopes = st.sampled_from(
    [
        InstrumentationScope("batchlens", "0.1.0", "https://opentelemetry.io/schemas/1.44.0"),
        InstrumentationScope("app", None, None, {"scope.attr": 3}),
        InstrumentationScope(""),
        None,
    ]
)


@st.composite
def spans(draw: Any) -> ReadableSpan:
    events = [
        Event(draw(st.text(max_size=10)), draw(attributes()), draw(UINT64)) for _ in range(draw(st.integers(0, 3)))
    ]
    links = [Link(draw(contexts()), draw(attributes())) for _ in range(draw(st.integers(0, 3)))]
    return ReadableSpan(
        name=draw(st.text(max_size=30)),
        context=draw(contexts(remote=False)),
        parent=draw(st.one_of(st.none(), contexts())),
        resource=draw(resources),
        attributes=draw(attributes()),
        events=draw(bounded(events)),
        links=draw(bounded(links)),
        kind=draw(st.sampled_from(list(SpanKind))),
        instrumentation_scope=draw(scopes),
        status=draw(statuses()),
        start_time=draw(UINT64),
        end_time=draw(UINT64),
    )


@pytest.fixture(autouse=True)
def _quiet_attribute_cleaning() -> Iterator[None]:
    """BoundedAttributes warns about every empty key and full dict hypothesis makes; those warnings are noise here."""
    logger = logging.getLogger("opentelemetry.attributes")
    previous = logger.disabled
    logger.disabled = True
    yield
    logger.disabled = previous


def assert_same_encoding(batch: list[ReadableSpan]) -> None:
    expected = sdk_encode_spans(batch).SerializeToString()
    actual = encode_spans(batch)
    if actual != expected:  # decoded first, for a readable difference
        assert ExportTraceServiceRequest.FromString(actual) == ExportTraceServiceRequest.FromString(expected)
    assert actual == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(), max_size=6))
def test_encoding_is_byte_identical_to_the_sdk_encoder(batch: list[ReadableSpan]) -> None:
    """Any batch of spans (every AnyValue type, events, links, dropped counts, status, flags) encodes identically."""
    assert_same_encoding(batch)


def test_special_values_encode_like_the_sdk() -> None:
    """NaN and infinities, out-of-range integers (left out by both), empty strings and the zero times."""
    context = SpanContext(1, 2, is_remote=False)
    span = ReadableSpan(
        name="",
        context=context,
        attributes={"nan": math.nan, "inf": -math.inf, "huge": 1 << 64, "kept": "", "neg": -1, "tiny": (1 << 63) - 1},
        status=Status(StatusCode.UNSET),
        start_time=0,
        end_time=0,
    )
    assert_same_encoding([span])
    decoded = ExportTraceServiceRequest.FromString(encode_spans([span]))
    keys = [kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys == ["nan", "inf", "kept", "neg", "tiny"]


def test_spans_of_several_resources_and_scopes_group_in_first_seen_order() -> None:
    """Spans group by resource, then scope, in the order they first appear, as the SDK groups them."""
    first, second = Resource({"r": 1}), Resource({"r": 2})
    scope_a, scope_b = InstrumentationScope("a"), InstrumentationScope("b", "2", "https://s")
    batch = [
        ReadableSpan(name=f"s{i}", context=SpanContext(9, i + 1, False), resource=resource, instrumentation_scope=scope)
        for i, (resource, scope) in enumerate(
            [(second, scope_b), (first, scope_a), (second, scope_a), (second, scope_b), (first, scope_a)]
        )
    ]
    assert_same_encoding(batch)
    decoded = ExportTraceServiceRequest.FromString(encode_spans(batch))
    layout = [[(s.scope.name, [span.name for span in s.spans]) for s in r.scope_spans] for r in decoded.resource_spans]
    assert layout == [[("b", ["s0", "s3"]), ("a", ["s2"])], [("a", ["s1", "s4"])]]


def test_the_encoder_imports_no_protobuf() -> None:
    """Encoding spans loads neither protobuf, opentelemetry-proto nor an OTLP exporter package."""
    code = (
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from batchlens._telemetry._otlp_wire import encode_spans\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "e = InMemorySpanExporter(); p = TracerProvider(); p.add_span_processor(SimpleSpanProcessor(e))\n"
        "p.get_tracer('t').start_span('s', attributes={'a': (1, 2)}).end()\n"
        "assert encode_spans(e.get_finished_spans())\n"
        "import sys\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google.protobuf', 'opentelemetry.proto', "
        "'opentelemetry.exporter'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, env={"PYTHONPATH": SRC}
    )
    assert out.stdout.strip() == "[]"
