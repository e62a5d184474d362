"""Tests for redaction of captured results: normalised keys matched against a list of substrings."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from batchlens import Telemetry
from batchlens._config import DEFAULT_REDACT_KEYS
from batchlens._telemetry import _redact, capture
from batchlens._telemetry._redact import KeyRedactor, normalise_key
from batchlens._telemetry.capture import REDACTED, RESPONSE, ResponseCapture

# the keys issue 12 lists, spelled as they appear in the wild
SECRET_KEYS = [
    "x-api-key",
    "aws_secret_access_key",
    "AWS_SESSION_TOKEN",
    "client_secret",
    "access_token",
    "refreshToken",
    "password_hash",
    "Set-Cookie",
    "private_key",
    "passwd",
    "credentials",
    "auth",
]
PLAIN_KEYS = ["sku", "order_id", "quantity", "message", "status", "createdAt", "email"]


def captured(value: Any, **settings: Any) -> Any:
    telemetry = Telemetry(capture_max_bytes_per_record=1 << 20, capture_max_bytes_per_batch=1 << 20, **settings)
    response_capture = ResponseCapture(telemetry)
    return json.loads(response_capture.attributes(value, response_capture.new_budget())[RESPONSE])


@pytest.fixture(params=["fast", "streaming"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the single-call fast path and on the streaming writer."""
    if request.param == "streaming":
        monkeypatch.setattr(capture, "_PLAIN_NODES", -1)
        monkeypatch.setattr(capture, "_PLAIN_CHARS", -1)
    return str(request.param)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_every_listed_secret_key_is_redacted_by_default(key, path):
    """Each key of the issue's list is redacted at the top level and nested in a list of dicts."""
    value = {key: "s3cr3t", "sku": "A", "lines": [{key: {"deep": "s3cr3t"}, "qty": 1}]}

    result = captured(value)

    assert result == {key: REDACTED, "sku": "A", "lines": [{key: REDACTED, "qty": 1}]}


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_keys_are_captured(key, path):
    """Keys that contain no listed substring keep their values."""
    assert captured({key: "visible"}) == {key: "visible"}


@pytest.mark.parametrize(
    "spelling", ["X-API-KEY", "x_api_key", "XApiKey", "x-api_KEY", "X__API--KEY", "my-x-api-key-header"]
)
def test_matching_ignores_case_dashes_and_underscores(spelling, path):
    """Any case, any mix of ``-`` and ``_``, anywhere in the key."""
    assert captured({spelling: "k", "sku": "A"}) == {spelling: REDACTED, "sku": "A"}


def test_known_false_positives_are_redacted():
    """Substring matching redacts harmless keys too (documented): author, tokenizer, oauth_provider."""
    value = {"author": "Ada", "tokenizer": "bpe", "oauth_provider": "github", "title": "Notes"}
    assert captured(value) == {"author": REDACTED, "tokenizer": REDACTED, "oauth_provider": REDACTED, "title": "Notes"}


def test_values_are_not_inspected():
    """Documented limit: a secret under an innocent key, inside a string or in a list of strings is captured."""
    value = {"note": "password=hunter2", "headers": ["Authorization: Bearer abc"], "data": "token abc"}
    assert captured(value) == value


def test_non_string_keys_are_never_redacted():
    """Only str keys are matched; an int key is written as JSON writes it."""
    assert captured({1: "one", "token": "t"}) == {"1": "one", "token": REDACTED}


def test_redact_keys_argument_replaces_the_list():
    """``redact_keys=`` in code lists exactly the substrings (here: keep ``author`` visible, hide ``ssn``)."""
    keys = (*(k for k in DEFAULT_REDACT_KEYS if k != "auth"), "ssn")
    value = {"author": "Ada", "customer_SSN": "123", "password": "p"}
    assert captured(value, redact_keys=keys) == {"author": "Ada", "customer_SSN": REDACTED, "password": REDACTED}


def test_environment_variable_extends_the_defaults(monkeypatch):
    """BATCHLENS_REDACT_KEYS adds substrings (normalised the same way) and keeps the defaults."""
    monkeypatch.setenv("BATCHLENS_REDACT_KEYS", "card-number, IBAN")
    telemetry = Telemetry.from_env(capture_max_bytes_per_record=4096)
    response_capture = ResponseCapture(telemetry)
    value = {"CardNumber": "4111", "payee_iban": "DE00", "client_secret": "s", "sku": "A"}

    text = response_capture.attributes(value, response_capture.new_budget())[RESPONSE]

    assert json.loads(text) == {"CardNumber": REDACTED, "payee_iban": REDACTED, "client_secret": REDACTED, "sku": "A"}


@pytest.mark.parametrize("blank", ["_", "-", "-_-", " "])
def test_substrings_that_normalise_to_nothing_are_ignored(blank):
    """An entry such as ``_`` would match every key once normalised; it is ignored."""
    redactor = KeyRedactor([blank, "pin"])
    assert not redactor.hit("sku")
    assert redactor.hit("PIN_code")
    assert not KeyRedactor([blank])


def test_normalise_key():
    """Lower-cased, without dashes and underscores."""
    assert normalise_key("X-Amz_Security-TOKEN") == "xamzsecuritytoken"


def test_key_decisions_are_cached_with_a_bound(monkeypatch):
    """Distinct keys beyond the cache bound are still decided correctly and not remembered."""
    monkeypatch.setattr(_redact, "_MAX_CACHED_KEYS", 100)
    redactor = KeyRedactor(DEFAULT_REDACT_KEYS)

    hits = [redactor.hit(f"id-{n}") for n in range(1000)] + [redactor.hit(f"token-{n}") for n in range(1000)]

    assert hits == [False] * 1000 + [True] * 1000
    assert len(redactor._cache) == 100


def test_redaction_keeps_the_capture_fast_path_fast():
    """A flat 10-key result with two secret keys captures in well under 50 µs on average."""
    response_capture = ResponseCapture(Telemetry())
    value = {f"field_{n}": n for n in range(8)} | {"access_token": "t", "Set-Cookie": "c"}
    budget = response_capture.new_budget()
    response_capture.attributes(value, budget)
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        response_capture.attributes(value, response_capture.new_budget())
    per_call = (time.perf_counter() - started) / rounds
    assert per_call < 50e-6
