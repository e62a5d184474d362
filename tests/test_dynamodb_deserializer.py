"""Tests for batchlens.data_classes.dynamodb.TypeDeserializer, including differential tests against Powertools."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer as PowertoolsDeserializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlens.data_classes import TypeDeserializer


@pytest.fixture
def deserializer() -> TypeDeserializer:
    return TypeDeserializer()


# ---------------------------------------------------------------------------------------------- scalars


def test_null_becomes_none(deserializer: TypeDeserializer) -> None:
    """NULL deserializes to None."""
    assert deserializer.deserialize({"NULL": True}) is None


@pytest.mark.parametrize("flag", [True, False])
def test_bool_is_returned_as_is(deserializer: TypeDeserializer, flag: bool) -> None:
    """BOOL deserializes to the same bool."""
    assert deserializer.deserialize({"BOOL": flag}) is flag


def test_string_is_returned_as_is(deserializer: TypeDeserializer) -> None:
    """S deserializes to the same str."""
    assert deserializer.deserialize({"S": "héllo"}) == "héllo"


def test_binary_is_returned_unchanged(deserializer: TypeDeserializer) -> None:
    """B values (base64 text in stream events) come back unchanged, not decoded."""
    assert deserializer.deserialize({"B": "aGVsbG8="}) == "aGVsbG8="
    assert deserializer.deserialize({"B": b"raw"}) == b"raw"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("101", "101"),
        ("-3.14", "-3.14"),
        ("1.00", "1.00"),  # trailing zeros of short numbers are kept
        ("-0", "-0"),
        ("1E+126", "1E+126"),
        ("1E-130", "1E-130"),  # subnormal but exact
        ("  5 ", "5"),
        ("1" + "0" * 40, "1E+40"),  # trailing zeros beyond 38 digits move into the exponent
        ("1" * 38, "1" * 38),
        ("0.000000000000000000000000000000000000000000001", "1E-45"),
    ],
)
def test_number_becomes_exact_decimal(deserializer: TypeDeserializer, text: str, expected: str) -> None:
    """N deserializes to a Decimal with the same value and, for short numbers, the same digits."""
    value = deserializer.deserialize({"N": text})
    assert isinstance(value, Decimal)
    assert str(value) == expected


@pytest.mark.parametrize("text", ["", "."])
def test_degenerate_number_strings_are_zero(deserializer: TypeDeserializer, text: str) -> None:
    """An empty string or a lone decimal point reads as zero, as in Powertools."""
    assert deserializer.deserialize({"N": text}) == Decimal(0)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1" * 39, decimal.Inexact),  # 39 significant digits cannot be stored
        ("1E+127", decimal.Overflow),
        ("1E-166", decimal.Underflow),
        ("abc", decimal.InvalidOperation),
    ],
)
def test_numbers_dynamodb_cannot_store_raise(deserializer: TypeDeserializer, text: str, error: type[Exception]) -> None:
    """Numbers outside DynamoDB's 38-digit range raise instead of being silently rounded."""
    with pytest.raises(error):
        deserializer.deserialize({"N": text})


def test_type_names_are_case_insensitive(deserializer: TypeDeserializer) -> None:
    """Type names match regardless of case, like Powertools."""
    assert deserializer.deserialize({"n": "7"}) == Decimal(7)
    assert deserializer.deserialize({"Ss": ["a"]}) == {"a"}


# ------------------------------------------------------------------------------------------------- sets


def test_number_set_becomes_set_of_decimals(deserializer: TypeDeserializer) -> None:
    """NS deserializes to a set of Decimals."""
    result = deserializer.deserialize({"NS": ["1", "2.5", "1"]})
    assert result == {Decimal(1), Decimal("2.5")}
    assert all(isinstance(item, Decimal) for item in result)


def test_string_set_becomes_set_of_str(deserializer: TypeDeserializer) -> None:
    """SS deserializes to a set of str."""
    assert deserializer.deserialize({"SS": ["a", "b", "a"]}) == {"a", "b"}


def test_binary_set_becomes_set(deserializer: TypeDeserializer) -> None:
    """BS deserializes to a set of the unchanged values."""
    assert deserializer.deserialize({"BS": ["YQ==", "Yg=="]}) == {"YQ==", "Yg=="}


def test_number_set_with_invalid_number_raises(deserializer: TypeDeserializer) -> None:
    """A number set containing a number DynamoDB cannot store raises."""
    with pytest.raises(decimal.Inexact):
        deserializer.deserialize({"NS": ["1", "2" * 39]})


# ------------------------------------------------------------------------------------- lists and maps


def test_list_and_map_nest_recursively(deserializer: TypeDeserializer) -> None:
    """L and M deserialize every nested value, at any depth."""
    value = {
        "M": {
            "name": {"S": "widget"},
            "price": {"N": "9.99"},
            "tags": {"SS": ["x"]},
            "parts": {
                "L": [
                    {"M": {"id": {"N": "1"}, "ok": {"BOOL": True}}},
                    {"L": [{"NULL": True}, {"B": "AA=="}]},
                ]
            },
            "empty_list": {"L": []},
            "empty_map": {"M": {}},
        }
    }
    assert deserializer.deserialize(value) == {
        "name": "widget",
        "price": Decimal("9.99"),
        "tags": {"x"},
        "parts": [{"id": Decimal(1), "ok": True}, [None, "AA=="]],
        "empty_list": [],
        "empty_map": {},
    }


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_type_raises_type_error_naming_it(deserializer: TypeDeserializer) -> None:
    """An unknown type name raises TypeError that names the type."""
    with pytest.raises(TypeError, match="XYZ"):
        deserializer.deserialize({"XYZ": "1"})


def test_unknown_type_nested_in_map_raises(deserializer: TypeDeserializer) -> None:
    """An unknown type deep inside a map still raises TypeError."""
    with pytest.raises(TypeError, match="Q"):
        deserializer.deserialize({"M": {"a": {"L": [{"Q": 1}]}}})


@pytest.mark.parametrize("value", [{}, "S", None, 3])
def test_malformed_attribute_value_raises_type_error(deserializer: TypeDeserializer, value: Any) -> None:
    """An empty dict or a non-dict raises TypeError (Powertools: IndexError/AttributeError)."""
    with pytest.raises(TypeError, match="Expected a DynamoDB attribute value"):
        deserializer.deserialize(value)


def test_malformed_value_error_does_not_echo_the_value(deserializer: TypeDeserializer) -> None:
    """The malformed-value error names the type, never the (possibly sensitive) value."""
    with pytest.raises(TypeError) as info:
        deserializer.deserialize("secret-token")  # type: ignore[arg-type]
    assert "secret-token" not in str(info.value)


# ---------------------------------------------------------------------------------- differential tests


def canonical(value: Any) -> Any:
    """Comparable form that keeps Decimal digits (1.0 vs 1.00) and NaN, and ignores set order."""
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, (set, frozenset)):
        return ("set", sorted(repr(canonical(item)) for item in value))
    if isinstance(value, list):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    return (type(value).__name__, value)


def outcome(function: Any, *args: Any) -> Any:
    try:
        return ("ok", canonical(function(*args)))
    except Exception as error:  # differential: any exception type must match
        return ("error", type(error))


def powertools_outcome(value: Any) -> Any:
    """Powertools' outcome, with the one deliberate difference applied.

    A malformed attribute value (empty dict, or not a dict) makes Powertools fail with IndexError or
    AttributeError from deep inside; batchlens raises TypeError with a clear message instead.
    """
    result = outcome(PowertoolsDeserializer().deserialize, value)
    if result[0] == "error" and result[1] in (IndexError, AttributeError):
        return ("error", TypeError)
    return result


number_texts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.builds(
        lambda digits, zeros, exponent: f"{digits}{'0' * zeros}E{exponent}",
        st.integers(min_value=-(10**45), max_value=10**45),
        st.integers(min_value=0, max_value=12),
        st.integers(min_value=-200, max_value=200),
    ),
    st.builds(
        lambda whole, fraction: f"{whole}.{fraction}",
        st.integers(min_value=0, max_value=10**40),
        st.text(alphabet="0123456789", max_size=45),
    ),
    st.sampled_from(["", ".", "-0", "0.000", " 1 ", "1e5", "+7", "sNaN", "abc"]),
)

scalar_values = st.one_of(
    st.just({"NULL": True}),
    st.booleans().map(lambda flag: {"BOOL": flag}),
    number_texts.map(lambda text: {"N": text}),
    st.text().map(lambda text: {"S": text}),
    st.binary().map(lambda raw: {"B": raw}),
    st.lists(number_texts, max_size=4).map(lambda texts: {"NS": texts}),
    st.lists(st.text(max_size=5), max_size=4).map(lambda texts: {"SS": texts}),
    st.lists(st.binary(max_size=5), max_size=4).map(lambda blobs: {"BS": blobs}),
)

attribute_values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: {"L": items}),
        st.dictionaries(st.text(max_size=6), children, max_size=4).map(lambda entries: {"M": entries}),
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attribute_values)
def test_matches_powertools_on_generated_values(value: dict[str, Any]) -> None:
    """Every generated attribute value deserializes exactly as Powertools does (or raises the same type)."""
    assert outcome(TypeDeserializer().deserialize, value) == powertools_outcome(value)


@settings(max_examples=200, deadline=None)
@given(number_texts)
def test_numbers_match_powertools(text: str) -> None:
    """Every generated number string gives the same Decimal (digits and exponent) or error as Powertools."""
    assert outcome(TypeDeserializer().deserialize, {"N": text}) == powertools_outcome({"N": text})


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=6), st.text(max_size=5) | st.lists(st.text(max_size=2), max_size=3))
def test_arbitrary_type_names_match_powertools(type_name: str, payload: Any) -> None:
    """Arbitrary type names are accepted or rejected as Powertools does, with the same error or a clearer TypeError.

    Powertools sometimes fails a malformed value of a known type (``{"M": ""}``) with an AttributeError;
    batchlens names the problem with a TypeError instead.
    """
    value = {type_name: payload}
    ours, theirs = outcome(TypeDeserializer().deserialize, value), powertools_outcome(value)
    if theirs[0] == "error":
        assert ours in (theirs, ("error", TypeError))
    else:
        assert ours == theirs
