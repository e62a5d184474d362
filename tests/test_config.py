"""Tests for configuration: every BATCHLENS_* variable, its accepted and rejected values, and ``Telemetry`` in code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    process_partial_response,
)
from batchlens._config import DEFAULT_REDACT_KEYS
from batchlens._telemetry.capture import RESPONSE, ResponseCapture
from batchlens.testing import kinesis_event

README = Path(__file__).resolve().parent.parent / "README.md"

BOOL_VARIABLES = {
    "BATCHLENS_TRACING": "tracing",
    "BATCHLENS_METRICS": "metrics",
    "BATCHLENS_LOGGING": "logging",
    "BATCHLENS_CAPTURE_RESPONSE": "capture_response",
    "BATCHLENS_SENTRY_ENABLED": "sentry",
}
INT_VARIABLES = {
    "BATCHLENS_CAPTURE_MAX_BYTES_PER_RECORD": "capture_max_bytes_per_record",
    "BATCHLENS_CAPTURE_MAX_BYTES_PER_BATCH": "capture_max_bytes_per_batch",
}
CHOICE_VARIABLES = {
    "BATCHLENS_SUCCESS_LOG_LEVEL": ("success_log_level", ("debug", "info", "warning", "error", "critical")),
    "BATCHLENS_FLUSH": ("flush", ("auto", "always", "never")),
}
TRUE_WORDS = ["true", "TRUE", "True", "1", "yes", "YES", "on", "On", " true "]
FALSE_WORDS = ["false", "FALSE", "False", "0", "no", "No", "off", "OFF", "\toff\n"]
BAD_BOOLS = ["maybe", "2", "tru", "enabled", "y", "n", "-1", "truee", "on/off"]
BAD_COUNTS = ["-1", "1.5", "1e3", "abc", "1KB", "0x10", "ten"]


def sqs_processor() -> BatchProcessor:
    return BatchProcessor(EventType.SQS)


ALL_PROCESSORS = {
    "BatchProcessor": lambda: BatchProcessor(EventType.SQS),
    "AsyncBatchProcessor": lambda: AsyncBatchProcessor(EventType.KinesisDataStreams),
    "SqsFifoPartialProcessor": lambda: SqsFifoPartialProcessor(),
    "SqsFifoPartialProcessorAsync": lambda: SqsFifoPartialProcessorAsync(),
}


def rejects(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, *accepted: str) -> str:
    """Set ``variable`` and assert processor construction fails naming it, its value and the accepted values."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as caught:
        sqs_processor()
    message = str(caught.value)
    assert variable in message
    assert repr(value) in message
    for word in accepted:
        assert word in message
    return message


# -- defaults ---------------------------------------------------------------------------------------------------
def test_defaults_without_any_variable():
    """With no variables set, a processor gets the documented defaults."""
    telemetry = sqs_processor().telemetry
    assert telemetry == Telemetry()
    assert (telemetry.tracing, telemetry.metrics, telemetry.logging) == (True, True, True)
    assert telemetry.success_log_level == "info"
    assert telemetry.capture_response is True
    assert telemetry.capture_max_bytes_per_record == 1024
    assert telemetry.capture_max_bytes_per_batch == 32768
    assert telemetry.redact_keys == (
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "auth",
        "apikey",
        "cookie",
        "credential",
        "privatekey",
    )
    assert telemetry.sentry is False
    assert telemetry.sentry_dsn is None
    assert telemetry.flush == "auto"
    assert telemetry.tracer_provider is None
    assert telemetry.meter_provider is None


def test_processor_defaults_for_concurrency_and_guards():
    """Without variables: one worker, unlimited concurrency, no deadline guard, no stop policy."""
    assert BatchProcessor(EventType.SQS).max_workers == 1
    assert AsyncBatchProcessor(EventType.SQS).max_concurrency is None
    assert BatchProcessor(EventType.SQS).deadline_margin_ms is None


@pytest.mark.parametrize("variable", [*BOOL_VARIABLES, *INT_VARIABLES, *CHOICE_VARIABLES, "BATCHLENS_REDACT_KEYS"])
@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_variables_mean_unset(monkeypatch, variable, blank):
    """An empty or blank variable gives the default, never an error or a silently disabled feature."""
    monkeypatch.setenv(variable, blank)
    assert sqs_processor().telemetry == Telemetry()


# -- booleans -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variable", BOOL_VARIABLES)
@pytest.mark.parametrize("word", TRUE_WORDS)
def test_boolean_variables_accept_true_words_in_any_case(monkeypatch, variable, word):
    """true/1/yes/on in any case (and surrounding whitespace) switch the feature on."""
    monkeypatch.setenv(variable, word)
    assert getattr(sqs_processor().telemetry, BOOL_VARIABLES[variable]) is True


@pytest.mark.parametrize("variable", BOOL_VARIABLES)
@pytest.mark.parametrize("word", FALSE_WORDS)
def test_boolean_variables_accept_false_words_in_any_case(monkeypatch, variable, word):
    """false/0/no/off in any case switch the feature off."""
    monkeypatch.setenv(variable, word)
    assert getattr(sqs_processor().telemetry, BOOL_VARIABLES[variable]) is False


@pytest.mark.parametrize("variable", BOOL_VARIABLES)
@pytest.mark.parametrize("word", BAD_BOOLS)
def test_boolean_variables_reject_other_words(monkeypatch, variable, word):
    """A typo fails construction, naming the variable and every accepted word."""
    rejects(monkeypatch, variable, word, "true/false", "1/0", "yes/no", "on/off")


@pytest.mark.parametrize("factory", ALL_PROCESSORS.values(), ids=list(ALL_PROCESSORS))
def test_every_processor_reads_and_validates_the_environment(monkeypatch, factory):
    """All built-in processors read the variables at construction and refuse invalid ones."""
    monkeypatch.setenv("BATCHLENS_METRICS", "off")
    assert factory().telemetry.metrics is False
    monkeypatch.setenv("BATCHLENS_METRICS", "nope")
    with pytest.raises(ValueError, match="BATCHLENS_METRICS"):
        factory()


def test_switches_turn_telemetry_off(monkeypatch):
    """With every switch off the processor builds no observers at all."""
    for variable in BOOL_VARIABLES:
        monkeypatch.setenv(variable, "0")
    processor = sqs_processor()
    assert processor.telemetry.enabled is False
    assert processor._observer is None


# -- numbers --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variable", INT_VARIABLES)
@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("2048", 2048), (" 64 ", 64), ("65536", 65536)])
def test_capture_limits_accept_whole_numbers(monkeypatch, variable, raw, expected):
    """Byte limits take whole numbers from 0 up."""
    monkeypatch.setenv(variable, raw)
    assert getattr(sqs_processor().telemetry, INT_VARIABLES[variable]) == expected


@pytest.mark.parametrize("variable", INT_VARIABLES)
@pytest.mark.parametrize("raw", BAD_COUNTS)
def test_capture_limits_reject_anything_else(monkeypatch, variable, raw):
    """Negative, fractional or non-numeric limits fail construction with the expected range."""
    rejects(monkeypatch, variable, raw, ">= 0")


def test_capture_limits_from_the_environment_bound_the_capture(monkeypatch):
    """The per-record cap read from the environment is the one the capture applies."""
    monkeypatch.setenv("BATCHLENS_CAPTURE_MAX_BYTES_PER_RECORD", "10")
    capture = ResponseCapture(sqs_processor().telemetry)
    assert capture.attributes("x" * 100, capture.new_budget())[RESPONSE] == '"' + "x" * 9


# -- choices ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variable", CHOICE_VARIABLES)
def test_choice_variables_accept_each_value_in_any_case(monkeypatch, variable):
    """Every accepted value works in upper, lower and mixed case and is stored lower-cased."""
    field, choices = CHOICE_VARIABLES[variable]
    for choice in choices:
        for spelling in (choice, choice.upper(), choice.capitalize()):
            monkeypatch.setenv(variable, spelling)
            assert getattr(sqs_processor().telemetry, field) == choice


@pytest.mark.parametrize("variable", CHOICE_VARIABLES)
@pytest.mark.parametrize("raw", ["verbose", "warn", "sometimes", "1", "info,debug"])
def test_choice_variables_reject_other_values_listing_the_accepted_ones(monkeypatch, variable, raw):
    """An unknown value fails construction, naming the variable and listing every accepted value."""
    _, choices = CHOICE_VARIABLES[variable]
    rejects(monkeypatch, variable, raw, *choices)


# -- redact keys --------------------------------------------------------------------------------------------------------
def test_redact_keys_are_a_comma_list_trimmed_and_lower_cased(monkeypatch):
    """BATCHLENS_REDACT_KEYS adds to the defaults; entries are trimmed, lower-cased, empty ones dropped."""
    monkeypatch.setenv("BATCHLENS_REDACT_KEYS", " SSN, Card_Number ,,pin ")
    telemetry = sqs_processor().telemetry
    assert telemetry.redact_keys == (*DEFAULT_REDACT_KEYS, "ssn", "card_number", "pin")
    capture = ResponseCapture(telemetry)
    value = {"ssn": "1", "Card_Number": "2", "password": "3", "sku": "4"}
    text = capture.attributes(value, capture.new_budget())[RESPONSE]
    assert text == '{"ssn": "[REDACTED]", "Card_Number": "[REDACTED]", "password": "[REDACTED]", "sku": "4"}'


def test_redact_keys_default_when_unset():
    """Without the variable the documented default keys are redacted."""
    assert sqs_processor().telemetry.redact_keys == DEFAULT_REDACT_KEYS


# -- Sentry DSN -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("batchlens_dsn", "sentry_dsn", "expected"),
    [
        ("https://a@o1.ingest.sentry.io/1", None, "https://a@o1.ingest.sentry.io/1"),
        (None, "https://b@o2.ingest.sentry.io/2", "https://b@o2.ingest.sentry.io/2"),
        ("https://a@o1.ingest.sentry.io/1", "https://b@o2.ingest.sentry.io/2", "https://a@o1.ingest.sentry.io/1"),
        ("  ", "https://b@o2.ingest.sentry.io/2", "https://b@o2.ingest.sentry.io/2"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_sentry_dsn_falls_back_to_sentry_dsn(monkeypatch, batchlens_dsn, sentry_dsn, expected):
    """BATCHLENS_SENTRY_DSN wins; SENTRY_DSN is the fallback; blank values count as unset."""
    for name, value in (("BATCHLENS_SENTRY_DSN", batchlens_dsn), ("SENTRY_DSN", sentry_dsn)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert sqs_processor().telemetry.sentry_dsn == expected


# -- processor variables -----------------------------------------------------------------------------------------------------
def test_max_workers_from_the_environment(monkeypatch):
    """BATCHLENS_MAX_WORKERS sizes the thread pool; an explicit argument wins."""
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", "4")
    assert BatchProcessor(EventType.SQS).max_workers == 4
    assert BatchProcessor(EventType.SQS, max_workers=2).max_workers == 2


def test_fifo_processors_ignore_max_workers_from_the_environment(monkeypatch):
    """FIFO order needs one record at a time, whatever BATCHLENS_MAX_WORKERS says."""
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", "8")
    assert SqsFifoPartialProcessor().max_workers == 1


@pytest.mark.parametrize("raw", ["0", "-3", "two", "1.5"])
def test_max_workers_rejects_values_below_one(monkeypatch, raw):
    """BATCHLENS_MAX_WORKERS must be a whole number of at least 1."""
    rejects(monkeypatch, "BATCHLENS_MAX_WORKERS", raw, ">= 1")


def test_max_concurrency_from_the_environment(monkeypatch):
    """BATCHLENS_MAX_CONCURRENCY limits concurrent async handlers; an explicit argument wins."""
    monkeypatch.setenv("BATCHLENS_MAX_CONCURRENCY", "5")
    assert AsyncBatchProcessor(EventType.SQS).max_concurrency == 5
    assert AsyncBatchProcessor(EventType.SQS, max_concurrency=3).max_concurrency == 3


@pytest.mark.parametrize("raw", ["0", "-1", "many", "2.0"])
def test_max_concurrency_rejects_values_below_one(monkeypatch, raw):
    """BATCHLENS_MAX_CONCURRENCY must be a whole number of at least 1, checked at construction."""
    monkeypatch.setenv("BATCHLENS_MAX_CONCURRENCY", raw)
    with pytest.raises(ValueError, match=r"BATCHLENS_MAX_CONCURRENCY=.*>= 1"):
        AsyncBatchProcessor(EventType.SQS)


def test_deadline_margin_from_the_environment(monkeypatch):
    """BATCHLENS_DEADLINE_MARGIN_MS turns the deadline guard on for every built-in processor."""
    monkeypatch.setenv("BATCHLENS_DEADLINE_MARGIN_MS", "750")
    for factory in ALL_PROCESSORS.values():
        assert factory().deadline_margin_ms == 750
    assert BatchProcessor(EventType.SQS, deadline_margin_ms=100).deadline_margin_ms == 100


@pytest.mark.parametrize("raw", ["-1", "soon", "0.5"])
def test_deadline_margin_rejects_invalid_values(monkeypatch, raw):
    """BATCHLENS_DEADLINE_MARGIN_MS must be a whole number of at least 0."""
    rejects(monkeypatch, "BATCHLENS_DEADLINE_MARGIN_MS", raw, ">= 0")


def failing_first(record: Any) -> None:
    if b"fail" in record.kinesis.data_as_bytes():
        raise ValueError("bad")


@pytest.mark.parametrize(("raw", "reported"), [("TRUE", 3), ("off", 1)])
def test_stop_on_first_failure_from_the_environment(monkeypatch, raw, reported):
    """BATCHLENS_STOP_ON_FIRST_FAILURE makes a stream processor report the failure and everything after it."""
    monkeypatch.setenv("BATCHLENS_STOP_ON_FIRST_FAILURE", raw)
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=Telemetry.disabled())
    response = process_partial_response(kinesis_event(["ok", "fail", "ok", "ok"], seed=1), failing_first, processor)
    assert len(response["batchItemFailures"]) == reported


@pytest.mark.parametrize("event_type", [EventType.KinesisDataStreams, EventType.DynamoDBStreams, EventType.Kafka])
def test_stop_on_first_failure_rejects_invalid_values_for_streams(monkeypatch, event_type):
    """An invalid BATCHLENS_STOP_ON_FIRST_FAILURE fails stream processor construction."""
    monkeypatch.setenv("BATCHLENS_STOP_ON_FIRST_FAILURE", "sometimes")
    with pytest.raises(ValueError, match=r"BATCHLENS_STOP_ON_FIRST_FAILURE='sometimes'.*true/false"):
        BatchProcessor(event_type)
    with pytest.raises(ValueError, match="BATCHLENS_STOP_ON_FIRST_FAILURE"):
        AsyncBatchProcessor(event_type)


def test_stop_on_first_failure_does_not_apply_to_sqs(monkeypatch):
    """The stop policy is for streams: an SQS processor keeps processing after a failure."""
    monkeypatch.setenv("BATCHLENS_STOP_ON_FIRST_FAILURE", "true")
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
    assert processor._stop_on_first_failure is False


# -- when and how the environment is read ------------------------------------------------------------------------------------
def test_environment_is_read_once_at_construction(monkeypatch):
    """Changing a variable after construction does not change an existing processor."""
    processor = sqs_processor()
    monkeypatch.setenv("BATCHLENS_TRACING", "false")
    monkeypatch.setenv("BATCHLENS_FLUSH", "bogus")
    assert processor.telemetry.tracing is True
    assert processor.telemetry.flush == "auto"


def test_explicit_telemetry_does_not_read_the_environment(monkeypatch):
    """A processor given ``telemetry=`` ignores the variables, even invalid ones."""
    monkeypatch.setenv("BATCHLENS_TRACING", "maybe")
    monkeypatch.setenv("BATCHLENS_CAPTURE_MAX_BYTES_PER_RECORD", "lots")
    telemetry = Telemetry(tracing=False, metrics=False, logging=False)
    assert BatchProcessor(EventType.SQS, telemetry=telemetry).telemetry is telemetry


def test_from_env_accepts_a_mapping_and_overrides():
    """``Telemetry.from_env`` reads a given mapping, then applies keyword overrides."""
    environ = {"BATCHLENS_TRACING": "off", "BATCHLENS_FLUSH": "ALWAYS", "SENTRY_DSN": "https://k@s.io/1"}
    telemetry = Telemetry.from_env(environ, metrics=False)
    assert (telemetry.tracing, telemetry.metrics, telemetry.flush) == (False, False, "always")
    assert telemetry.sentry_dsn == "https://k@s.io/1"
    with pytest.raises(ValueError, match="BATCHLENS_LOGGING"):
        Telemetry.from_env({"BATCHLENS_LOGGING": "yesplease"})


# -- Telemetry in code ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"flush": "sometimes"}, "auto, always, never"),
        ({"flush": None}, "auto, always, never"),
        ({"success_log_level": "loud"}, "debug, info, warning, error, critical"),
        ({"capture_max_bytes_per_record": -1}, ">= 0"),
        ({"capture_max_bytes_per_batch": True}, ">= 0"),
        ({"capture_max_bytes_per_batch": 1.5}, ">= 0"),
        ({"tracing": "perhaps"}, "true/false"),
        ({"sentry": None}, "True or False"),
    ],
)
def test_telemetry_rejects_invalid_values_in_code(kwargs, fragment):
    """Invalid arguments raise a ValueError naming the field and what it accepts."""
    with pytest.raises(ValueError) as caught:
        Telemetry(**kwargs)
    assert next(iter(kwargs)) in str(caught.value)
    assert fragment in str(caught.value)


def test_telemetry_parses_switch_strings_instead_of_trusting_their_truth():
    """``Telemetry(tracing="false")`` means off: a non-empty string is not taken as True."""
    telemetry = Telemetry(tracing="false", metrics="0", logging="Yes", capture_response="off", sentry="no")  # type: ignore[arg-type]
    assert (telemetry.tracing, telemetry.metrics, telemetry.logging) == (False, False, True)
    assert (telemetry.capture_response, telemetry.sentry) == (False, False)


def test_telemetry_normalises_keys_levels_and_dsn():
    """Redact keys may be a comma string; levels and modes are lower-cased; a blank DSN is None."""
    telemetry = Telemetry(redact_keys="A, b ,", success_log_level=" WARNING ", flush="Never", sentry_dsn="  ")
    assert telemetry.redact_keys == ("a", "b")
    assert (telemetry.success_log_level, telemetry.flush, telemetry.sentry_dsn) == ("warning", "never", None)


def test_disabled_and_replace():
    """``disabled()`` switches everything off; ``replace`` returns a validated copy."""
    off = Telemetry.disabled()
    assert not off.enabled
    assert off.capture_response is False
    assert off.replace(metrics=True).metrics is True
    with pytest.raises(ValueError):
        off.replace(flush="bogus")


# -- documentation ---------------------------------------------------------------------------------------------------------------
def test_readme_configuration_table_lists_every_field_and_variable():
    """The README's configuration table names every Telemetry field and every variable (a setting added while the
    README was frozen for the docs split has its row in its docs page: record_sampling in docs/telemetry.md)."""
    text = README.read_text(encoding="utf-8") + (README.parent / "docs" / "telemetry.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    fields = [f.name for f in dataclasses.fields(Telemetry) if not f.name.endswith("_provider")]
    for field in fields:
        assert any(f"`{field}`" in row for row in rows), field
    assert any("`tracer_provider`" in row and "`meter_provider`" in row for row in rows)
    variables = [*BOOL_VARIABLES, *INT_VARIABLES, *CHOICE_VARIABLES, "BATCHLENS_REDACT_KEYS", "BATCHLENS_SENTRY_DSN"]
    variables += ["SENTRY_DSN", "BATCHLENS_MAX_WORKERS", "BATCHLENS_MAX_CONCURRENCY", "BATCHLENS_DEADLINE_MARGIN_MS"]
    variables += ["BATCHLENS_STOP_ON_FIRST_FAILURE", "BATCHLENS_RECORD_SAMPLING"]
    for variable in variables:
        assert any(re.search(rf"`{variable}`", row) for row in rows), variable
