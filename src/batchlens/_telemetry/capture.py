"""Bounded capture of handler results on record spans.

A record's result is captured as ``batchlens.record.response`` (JSON when it is JSON-serialisable, else its
``repr``), with ``batchlens.record.response.size`` (the full serialised size in UTF-8 bytes) and
``batchlens.record.response.truncated``. Two byte limits keep span documents small (X-Ray rejects segments over
64 KB): a cap per record, and a budget per batch that the batch's records draw from (records may run on
threads or as concurrent tasks, so the budget is locked). Once the budget is spent, later records capture
nothing: their spans get the size and ``truncated=True`` but no response text.

How memory stays bounded whatever the result's size:

* Small, plain results (dicts, lists, strings, numbers, ``None``; a few hundred nodes, a few KB of text) go through
  the C JSON encoder in one call. Scalars and flat dicts/lists of scalars (the common case) skip even the scan:
  one pass over the values, a redaction decision cached per tuple of keys, one call of a prebuilt C encoder.
* Everything else is serialised by a streaming writer that produces the JSON text piece by piece, long strings
  and bytes in 64 Ki-character slices. It keeps pieces only until the record's byte cap is reached; after that
  it only adds up their UTF-8 sizes. Peak memory is therefore about one slice plus the cap, and computing the
  full size of a 100 MB string costs one pass over it (roughly 0.5 s per 100 MB), never a 100 MB copy.
  The one unbounded case is ``repr`` of an arbitrary object (not str/bytes/containers): Python builds that
  text in one piece.

Serialisation rules (matching ``json.dumps(value, ensure_ascii=False)`` for JSON values):

* ``None`` is captured as ``null``; tuples as arrays; NaN and infinities as ``NaN``/``Infinity``.
* A result that is not a JSON type at all (an object, ``bytes``, a set, ``Decimal``...) is captured as its
  ``repr`` text. A non-JSON value nested inside a dict or list becomes a JSON string holding its ``repr``, so the
  rest of the structure stays JSON and redaction still applies around it. Dict keys JSON cannot encode are
  written as their ``repr``. Circular references and nesting deeper than 100 levels become placeholder strings.
* Values under str keys that contain one of the ``redact_keys`` substrings (both lower-cased, ``-`` and ``_``
  ignored; see ``_redact``), at any depth of dicts, including dicts inside lists, are replaced by
  ``"[REDACTED]"`` before anything is measured or kept. Values are never inspected: a secret under an innocent
  key, or inside a string, is captured. Objects captured through ``repr`` are not inspected at all.
* Text that is not valid UTF-8 (lone surrogates) is measured and captured with ``?`` in their place.
"""

from __future__ import annotations

import threading
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

from batchlens._telemetry._redact import KeyRedactor
from batchlens._telemetry._serialise import (
    _BIG_INT,
    _PLAIN_CHARS,
    _PLAIN_NODES,
    REDACTED,
    _cut_utf8,
    _encode,
    _flat_scalars,
    _float_json,
    _serialise,
)

if TYPE_CHECKING:
    from batchlens._config import Telemetry

__all__ = [
    "REDACTED",
    "RESPONSE",
    "RESPONSE_SIZE",
    "RESPONSE_TRUNCATED",
    "CaptureBudget",
    "ResponseCapture",
]

RESPONSE = "batchlens.record.response"
RESPONSE_SIZE = "batchlens.record.response.size"
RESPONSE_TRUNCATED = "batchlens.record.response.truncated"
_MAX_KEY_PLANS = 256  # distinct key tuples whose redaction decision is cached, per ResponseCapture


class CaptureBudget:
    """The bytes one batch may still capture, shared by its records (safe across threads and tasks).

    Args:
        total: Bytes available to the whole batch.
    """

    __slots__ = ("_lock", "_remaining")

    def __init__(self, total: int) -> None:
        self._lock = threading.Lock()
        self._remaining = max(0, total)

    @property
    def remaining(self) -> int:
        """Bytes not yet taken."""
        return self._remaining

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` bytes; return how many were granted (0 once the budget is spent)."""
        with self._lock:
            granted = min(wanted, self._remaining)
            self._remaining -= granted
            return granted

    def give_back(self, unused: int) -> None:
        """Return bytes that were granted but not used (a cut landed on a character boundary earlier)."""
        if unused > 0:
            with self._lock:
                self._remaining += unused


class ResponseCapture:
    """Turns handler results into bounded, redacted span attributes.

    Args:
        telemetry: Supplies ``capture_response``, the per-record and per-batch byte limits and ``redact_keys``.
    """

    __slots__ = ("_batch_bytes", "_enabled", "_key_plans", "_record_bytes", "_redact")

    def __init__(self, telemetry: Telemetry) -> None:
        self._enabled = bool(telemetry.capture_response)
        self._record_bytes = telemetry.capture_max_bytes_per_record
        self._batch_bytes = telemetry.capture_max_bytes_per_batch
        self._redact = KeyRedactor(telemetry.redact_keys)
        # tuple of a flat dict's keys -> (their characters, the keys to redact or None), or None when a key is
        # not a str; handlers return the same shape for every record, so this is decided once per shape
        self._key_plans: dict[tuple[Any, ...], tuple[int, frozenset[str] | None] | None] = {}

    @property
    def enabled(self) -> bool:
        """Whether results are captured at all."""
        return self._enabled

    def new_budget(self) -> CaptureBudget:
        """A fresh budget for one batch."""
        return CaptureBudget(self._batch_bytes if self._enabled else 0)

    def attributes(self, value: Any, budget: CaptureBudget) -> dict[str, Any]:
        """The span attributes capturing ``value``, drawing on ``budget``.

        Returns an empty dict when capture is off. Otherwise the dict holds ``batchlens.record.response.size``
        and ``batchlens.record.response.truncated``, plus ``batchlens.record.response`` unless nothing could be
        captured (the per-record cap is 0 or the batch budget is spent).
        """
        if not self._enabled:
            return {}
        limit = self._record_bytes
        remaining = budget._remaining
        if remaining < limit:
            limit = remaining
        if type(value) is dict:
            # the common result, inlined: a flat dict of scalars whose key tuple has a cached plan
            full = None
            if len(value) <= _PLAIN_NODES:
                keys = tuple(value)
                try:
                    plan = self._key_plans[keys]
                except KeyError:
                    plan = self._plan(keys)
                if plan is not None and _flat_scalars(value.values(), plan[0]):
                    if plan[1] is not None:
                        value = {key: REDACTED if key in plan[1] else child for key, child in value.items()}
                    full = _encode(value)
        else:
            full = self._quick(value)
        if full is not None:
            if full.isascii():
                size = len(full)
                text = full if size <= limit else full[:limit]
                kept = len(text)
            else:
                size = len(full.encode("utf-8", "replace"))
                text, kept = _cut_utf8(full, limit)
        else:
            text, kept, size = _serialise(value, limit, self._redact)
        if kept:
            granted = budget.take(kept)
            if granted < kept:
                # another record drew on the budget between our look at it and now
                text, used = _cut_utf8(text, granted)
                budget.give_back(granted - used)
                kept = used
        if kept or size == 0:
            return {RESPONSE: text, RESPONSE_SIZE: size, RESPONSE_TRUNCATED: kept < size}
        return {RESPONSE_SIZE: size, RESPONSE_TRUNCATED: kept < size}

    def _quick(self, value: Any) -> str | None:
        """The full JSON text of a scalar or a small flat list of scalars; None for anything else (dicts included)."""
        kind = type(value)
        if kind is str:
            return encode_basestring(value) if len(value) <= _PLAIN_CHARS else None
        if value is None:
            return "null"
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return int.__repr__(value) if -_BIG_INT < value < _BIG_INT else None
        if kind is float:
            return _float_json(value)
        if kind is list or kind is tuple:
            if len(value) > _PLAIN_NODES or not _flat_scalars(value, 0):
                return None
            return _encode(value)
        return None

    def _plan(self, keys: tuple[Any, ...]) -> tuple[int, frozenset[str] | None] | None:
        plan: tuple[int, frozenset[str] | None] | None = None
        if all(type(key) is str for key in keys):
            redact = self._redact
            hits = frozenset(key for key in keys if redact.hit(key)) if redact else None
            plan = (sum(map(len, keys)), hits or None)
        plans = self._key_plans
        if len(plans) < _MAX_KEY_PLANS:
            plans[keys] = plan
        return plan


# ----------------------------------------------------------------------------------------------------
# serialisation
