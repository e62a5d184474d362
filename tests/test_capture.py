"""Tests for bounded response capture: what is captured, byte limits, redaction, odd results, json.dumps parity."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _capture_support import UNLIMITED, capture_one, full_json, make_capture
from batchlens._telemetry import _serialise
from batchlens._telemetry import capture as capture_module
from batchlens._telemetry.capture import (
    REDACTED,
    RESPONSE,
    RESPONSE_SIZE,
    RESPONSE_TRUNCATED,
)


@pytest.fixture
def force_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every value through the streaming writer, in tiny slices, instead of the one-call fast path."""
    monkeypatch.setattr(capture_module, "_PLAIN_NODES", -1)
    monkeypatch.setattr(_serialise, "_PLAIN_NODES", -1)
    monkeypatch.setattr(_serialise, "_SLICE", 3)


# -- what is captured ------------------------------------------------------------------------------------------
def test_small_dict_is_captured_as_json_with_its_byte_size():
    """A small dict result is captured as its JSON text, with its UTF-8 size and truncated false."""
    value = {"orderId": "o-1", "total": 12.5, "ok": True, "lines": [1, 2], "note": None, "city": "Zürich"}
    attrs = capture_one(value)
    assert attrs == {
        RESPONSE: json.dumps(value, ensure_ascii=False),
        RESPONSE_SIZE: len(full_json(value)),
        RESPONSE_TRUNCATED: False,
    }


def test_none_result_is_captured_as_json_null():
    """A handler returning None gets ``null`` (4 bytes), not an absent attribute."""
    assert capture_one(None) == {RESPONSE: "null", RESPONSE_SIZE: 4, RESPONSE_TRUNCATED: False}


def test_string_result_is_captured_as_a_json_string():
    """A string result is JSON: quoted and escaped."""
    attrs = capture_one('say "hi"\n')
    assert attrs[RESPONSE] == '"say \\"hi\\"\\n"'
    assert attrs[RESPONSE_SIZE] == len(attrs[RESPONSE])


def test_tuples_become_arrays_and_special_floats_follow_json_dumps():
    """Tuples, NaN and infinities serialise exactly as json.dumps does."""
    value = {"t": (1, 2.5), "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")}
    assert capture_one(value)[RESPONSE] == json.dumps(value)


def test_capture_response_false_captures_nothing():
    """``capture_response=False`` yields no attributes and an empty budget."""
    capture = make_capture(capture_response=False)
    budget = capture.new_budget()
    assert budget.remaining == 0
    assert capture.attributes({"a": 1}, budget) == {}
    assert capture.attributes("x" * 10_000, budget) == {}


# -- byte limits with multibyte text ---------------------------------------------------------------------------
@pytest.mark.parametrize("char", ["é", "€", "😀"])  # 2, 3 and 4 bytes in UTF-8
@pytest.mark.parametrize("lead", range(4))
def test_record_cap_counts_bytes_and_cuts_on_a_character_boundary(char, lead):
    """With a 1024-byte cap the cut never splits a multibyte character, whatever its offset."""
    value = "a" * (1019 + lead) + char * 20  # the cap falls at every byte position inside some character
    attrs = capture_one(value, capture_max_bytes_per_record=1024)
    captured = attrs[RESPONSE].encode("utf-8")
    encoded = full_json(value)
    assert len(captured) <= 1024
    assert len(captured) > 1024 - len(char.encode())  # nothing dropped but the partial character
    assert encoded.startswith(captured)
    assert attrs[RESPONSE_SIZE] == len(encoded)
    assert attrs[RESPONSE_TRUNCATED] is True


def test_cap_inside_a_four_byte_emoji_drops_the_whole_emoji():
    """A 1024-byte cap landing inside a 4-byte emoji keeps the 1021 bytes before it."""
    value = "a" * 1020 + "😀" * 5  # '"' + 1020 letters = 1021 bytes, then the emoji spans bytes 1022-1025
    attrs = capture_one(value, capture_max_bytes_per_record=1024)
    assert attrs[RESPONSE] == '"' + "a" * 1020
    assert attrs[RESPONSE_SIZE] == 1 + 1020 + 20 + 1
    assert attrs[RESPONSE_TRUNCATED] is True


def test_cap_limits_bytes_not_characters():
    """600 two-byte characters (1202 JSON bytes) are cut to 1023 bytes: 511 characters, not 1023."""
    attrs = capture_one("é" * 600, capture_max_bytes_per_record=1024)
    assert attrs[RESPONSE] == '"' + "é" * 511
    assert len(attrs[RESPONSE].encode()) == 1023
    assert attrs[RESPONSE_SIZE] == 1202


@pytest.mark.parametrize(("length", "truncated"), [(1022, False), (1023, True)])
def test_value_exactly_at_the_cap_is_not_truncated(length, truncated):
    """A value of exactly cap bytes is kept whole; one byte more is cut."""
    attrs = capture_one("x" * length, capture_max_bytes_per_record=1024)  # JSON adds two quotes
    assert attrs[RESPONSE_SIZE] == length + 2
    assert attrs[RESPONSE_TRUNCATED] is truncated
    assert len(attrs[RESPONSE]) == min(1024, length + 2)


def test_zero_record_cap_captures_no_text_but_still_measures():
    """With a per-record cap of 0 no text is captured; size and truncated are still set."""
    attrs = capture_one({"a": 1}, capture_max_bytes_per_record=0)
    assert attrs == {RESPONSE_SIZE: 8, RESPONSE_TRUNCATED: True}


def test_lone_surrogates_are_measured_and_captured_as_question_marks():
    """Text that cannot be UTF-8 encoded is captured with ? in place of the lone surrogate."""
    attrs = capture_one("a\ud800b")
    assert attrs[RESPONSE] == '"a?b"'
    assert attrs[RESPONSE_SIZE] == 5


# -- redaction ---------------------------------------------------------------------------------------------------
NESTED = {
    "user": {
        "Password": "hunter2",
        "profile": {"API_KEY": "k-123", "name": "Ada", "Authorization": {"scheme": "Bearer", "value": "abc"}},
    },
    "items": [{"token": "t-1", "sku": "A"}, [{"Cookie": "c=1"}], {"sku": "B"}],
    "secretive": "contains a listed substring",
    "note": "no listed substring",
}
SECRETS = ("hunter2", "k-123", "Bearer", "abc", "t-1", "c=1")


@pytest.mark.parametrize("path", ["fast", "streaming"])
def test_redaction_is_case_insensitive_at_any_depth_including_inside_lists(path, request):
    """Values under redact keys are replaced at every depth, in dicts nested in lists too, on both code paths."""
    if path == "streaming":
        request.getfixturevalue("force_streaming")
    attrs = capture_one(NESTED)
    captured = json.loads(attrs[RESPONSE])
    assert captured["user"]["Password"] == REDACTED
    assert captured["user"]["profile"] == {"API_KEY": REDACTED, "name": "Ada", "Authorization": REDACTED}
    assert captured["items"] == [{"token": REDACTED, "sku": "A"}, [{"Cookie": REDACTED}], {"sku": "B"}]
    assert captured["secretive"] == REDACTED  # substrings of the key match, not only whole keys
    assert captured["note"] == "no listed substring"
    assert not any(secret in attrs[RESPONSE] for secret in SECRETS)
    assert attrs[RESPONSE_SIZE] == len(attrs[RESPONSE].encode())


def test_redaction_applies_before_measuring_a_large_result():
    """A secret next to a large value is redacted, and the size counts the redacted text."""
    value = {"password": "hunter2", "blob": "x" * 200_000}
    attrs = capture_one(value, capture_max_bytes_per_record=UNLIMITED, capture_max_bytes_per_batch=UNLIMITED)
    assert json.loads(attrs[RESPONSE]) == {"password": REDACTED, "blob": "x" * 200_000}
    assert attrs[RESPONSE_SIZE] == len(full_json({"password": REDACTED, "blob": "x" * 200_000}))


def test_custom_redact_keys_replace_the_defaults():
    """``redact_keys`` lists exactly the keys to redact (here ssn, not password)."""
    attrs = capture_one({"SSN": "123", "password": "p"}, redact_keys=("ssn",))
    assert json.loads(attrs[RESPONSE]) == {"SSN": REDACTED, "password": "p"}


def test_empty_redact_keys_redact_nothing():
    """With no redact keys the result is captured unchanged."""
    attrs = capture_one({"password": "p"}, redact_keys=())
    assert json.loads(attrs[RESPONSE]) == {"password": "p"}


# -- results JSON cannot encode ------------------------------------------------------------------------------------
class Order:
    def __repr__(self) -> str:
        return "Order(id=7)"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    "value",
    [Order(), {1, 2}, Decimal("1.5"), b"raw'\x00", bytearray(b'q"\xff'), dt.date(2024, 1, 2), frozenset()],
)
def test_non_json_result_is_captured_as_its_repr(value):
    """A result JSON cannot encode is captured as its repr text."""
    attrs = capture_one(value)
    assert attrs[RESPONSE] == repr(value)
    assert attrs[RESPONSE_SIZE] == len(repr(value).encode())
    assert attrs[RESPONSE_TRUNCATED] is False


def test_non_json_parts_become_repr_strings_and_the_rest_stays_json():
    """A non-JSON value inside a dict becomes a JSON string of its repr; redaction still applies around it."""
    value = {"when": dt.datetime(2024, 1, 2, 3, 4, 5), "order": Order(), "token": "t", "n": [Decimal("2")]}
    captured = json.loads(capture_one(value)[RESPONSE])
    assert captured == {
        "when": "datetime.datetime(2024, 1, 2, 3, 4, 5)",
        "order": "Order(id=7)",
        "token": REDACTED,
        "n": ["Decimal('2')"],
    }


def test_keys_json_cannot_encode_are_written_as_their_repr():
    """Dict keys that are not str/int/float/bool/None become their repr; JSON's own key rules are kept."""
    value = {(1, 2): "tuple", 3: "int", None: "none", True: "bool", 1.5: "float"}
    captured = json.loads(capture_one(value)[RESPONSE])
    assert captured == {"(1, 2)": "tuple", "3": "int", "null": "none", "true": "bool", "1.5": "float"}


def test_circular_references_and_failing_reprs_get_placeholders():
    """A cycle or a repr that raises never breaks capture."""
    loop: list[Any] = [1]
    loop.append(loop)
    assert json.loads(capture_one(loop)[RESPONSE]) == [1, "<circular reference>"]
    assert capture_one(BrokenRepr())[RESPONSE] == "<BrokenRepr object (repr failed)>"
    assert json.loads(capture_one({"x": BrokenRepr()})[RESPONSE]) == {"x": "<BrokenRepr object (repr failed)>"}


def test_very_deep_nesting_is_cut_with_a_placeholder():
    """Nesting deeper than the writer's depth limit ends in a placeholder instead of a RecursionError."""
    value: Any = "leaf"
    for _ in range(500):
        value = [value]
    text = capture_one(value, capture_max_bytes_per_record=UNLIMITED)[RESPONSE]
    assert "nested deeper than" in text
    assert text.startswith("[" * 100)


def test_huge_ints_are_captured_without_raising():
    """Ints beyond Python's str-conversion limit are described instead of failing."""
    attrs = capture_one({"n": 10**10000})
    assert json.loads(attrs[RESPONSE])["n"].startswith("<int of ")


# -- the fast path and the streaming writer agree with json.dumps ----------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
        | st.tuples(children, children)
    ),
    max_leaves=30,
)


@given(value=json_values)
@settings(max_examples=150, deadline=None)
def test_capture_matches_json_dumps_on_both_paths(value):
    """Fast path and streaming writer (with 3-character slices) produce json.dumps(ensure_ascii=False) output."""
    expected = json.dumps(value, ensure_ascii=False)
    fast = capture_one(value, redact_keys=(), capture_max_bytes_per_record=UNLIMITED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(capture_module, "_PLAIN_NODES", -1)
        patch.setattr(_serialise, "_PLAIN_NODES", -1)
        patch.setattr(_serialise, "_SLICE", 3)
        streamed = capture_one(value, redact_keys=(), capture_max_bytes_per_record=UNLIMITED)
    for attrs in (fast, streamed):
        assert attrs[RESPONSE] == expected
        assert attrs[RESPONSE_SIZE] == len(expected.encode("utf-8", "replace"))
        assert attrs[RESPONSE_TRUNCATED] is False


@given(value=json_values, cap=st.integers(min_value=0, max_value=64))
@settings(max_examples=100, deadline=None)
def test_any_cut_is_a_valid_utf8_prefix_within_the_cap(value, cap):
    """Whatever the cap, the capture is a prefix of the full JSON and at most cap bytes."""
    expected = json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")
    attrs = capture_one(value, redact_keys=(), capture_max_bytes_per_record=cap)
    captured = attrs.get(RESPONSE, "").encode("utf-8")
    assert len(captured) <= cap
    assert expected.startswith(captured)
    assert attrs[RESPONSE_SIZE] == len(expected)
    assert attrs[RESPONSE_TRUNCATED] is (len(captured) < len(expected))


@given(data=st.binary(max_size=40), as_bytearray=st.booleans())
@settings(max_examples=200, deadline=None)
def test_bytes_repr_in_slices_equals_repr(data, as_bytearray):
    """bytes and bytearray captured slice by slice read exactly like their repr, quotes included."""
    value = bytearray(data) if as_bytearray else data
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_serialise, "_SLICE", 3)
        attrs = capture_one(value, capture_max_bytes_per_record=UNLIMITED)
    assert attrs[RESPONSE] == repr(value)
    assert attrs[RESPONSE_SIZE] == len(repr(value))
