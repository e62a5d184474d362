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

import json
import threading
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Final

from batchlens._telemetry._redact import KeyRedactor

if TYPE_CHECKING:
    from collections.abc import Iterator

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
REDACTED = "[REDACTED]"

# Long strings and bytes are serialised in slices of this many characters: large enough that the per-slice
# Python overhead is negligible (~25,000 slices for 100 MB), small enough that the peak memory of capturing a
# huge result is about that of a 4 KB one.
_SLICE = 4096
# Limits of the single-call fast path; beyond them the streaming writer keeps memory bounded.
_PLAIN_NODES = 256
_PLAIN_CHARS = 8192
_MAX_DEPTH = 100

_ENCODER = json.JSONEncoder(ensure_ascii=False)
# Ints beyond this many bits go to the streaming writer (the encoder refuses ints past
# sys.get_int_max_str_digits(), and long digit strings are not "small").
_BIG_INT: Final = 1 << 1024
_MAX_KEY_PLANS = 256  # distinct key tuples whose redaction decision is cached, per ResponseCapture


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__qualname__)


def _make_one_shot() -> Any:
    """The C encoder ``JSONEncoder.encode`` builds on every call, built once (None where there is no C encoder).

    ``json.dumps``/``JSONEncoder.encode`` re-create it per call, which is most of their cost on small values.
    Its arguments mirror ``JSONEncoder(ensure_ascii=False)``'s; no circular-reference markers are needed because it
    only ever sees values the fast paths have walked (finite, acyclic). Any surprise falls back to ``_ENCODER``.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder = make(None, _refuse, encode_basestring, None, ": ", ", ", False, False, True)
        probe = {"a": [1, 2.5, None, True, "é\n"], "b": float("nan")}
        if "".join(encoder(probe, 0)) != _ENCODER.encode(probe):
            return None
    except Exception:  # a different private signature: use the public encoder
        return None
    return encoder


_ONE_SHOT = _make_one_shot()


def _encode(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` for a finite, acyclic, plain value."""
    one_shot = _ONE_SHOT
    if one_shot is None:
        return _ENCODER.encode(value)
    chunks = one_shot(value, 0)
    return chunks[0] if len(chunks) == 1 else "".join(chunks)


_REDACTED_JSON = encode_basestring(REDACTED)
_CIRCULAR_JSON = encode_basestring("<circular reference>")
_TOO_DEEP_JSON = encode_basestring(f"<nested deeper than {_MAX_DEPTH} levels>")


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


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _cut_utf8(text: str, limit: int) -> tuple[str, int]:
    """The longest prefix of ``text`` of at most ``limit`` UTF-8 bytes, and its byte length."""
    if text.isascii():
        head = text[:limit]
        return head, len(head)
    # a character is at least one byte, so the first ``limit`` characters cover the first ``limit`` bytes
    data = text[:limit].encode("utf-8", "replace")
    if len(data) > limit:
        end = limit
        while end > 0 and (data[end] & 0xC0) == 0x80:  # continuation byte: inside a character
            end -= 1
        data = data[:end]
    return data.decode("utf-8"), len(data)


def _flat_scalars(values: Any, chars: int) -> bool:
    """Whether ``values`` are all JSON scalars (exact types) holding at most ``_PLAIN_CHARS`` characters of text."""
    for child in values:
        kind = type(child)
        if kind is str:
            chars += len(child)
        elif kind is int:
            if not -_BIG_INT < child < _BIG_INT:
                return False
        elif kind is not float and kind is not bool and child is not None:
            return False
    return chars <= _PLAIN_CHARS


def _serialise(value: Any, limit: int, redact: KeyRedactor) -> tuple[str, int, int]:
    """Serialise ``value``: (text cut to ``limit`` bytes, its byte length, full serialised size in bytes)."""
    verdict = _scan(value, redact)
    if verdict != _NOT_PLAIN:
        try:
            text = _encode(value if verdict == _PLAIN else _redacted(value, redact))
        except (TypeError, ValueError, RecursionError):
            pass
        else:
            if text.isascii():
                size = len(text)
                head = text if size <= limit else text[:limit]
                return head, len(head), size
            data = text.encode("utf-8", "replace")
            if len(data) <= limit:
                return data.decode("utf-8"), len(data), len(data)
            head, kept = _cut_utf8(text, limit)
            return head, kept, len(data)
    writer = _Writer(limit)
    try:
        if isinstance(value, (str, int, float, dict, list, tuple)) or value is None:
            _emit(value, writer, redact, 0, set())
        else:
            for piece in _repr_pieces(value):
                writer.write(piece)
    except Exception:
        # the value changed under us (a dict resized by another thread...) or refused to be read
        writer = _Writer(limit)
        writer.write(f"<{type(value).__qualname__} object: not capturable>")
    head, kept = _cut_utf8(writer.text(), limit)
    return head, kept, writer.size


class _NotPlain(Exception):
    """Raised by the scan as soon as a value needs the streaming writer."""


_PLAIN_LEAVES = frozenset({float, bool, type(None)})
_NOT_PLAIN, _PLAIN, _PLAIN_REDACT = 0, 1, 2


def _scan(value: Any, redact: KeyRedactor) -> int:
    """Whether one call of the C encoder is safe: small, only exact JSON types; and whether keys need redacting.

    Returns ``_NOT_PLAIN``, ``_PLAIN`` or ``_PLAIN_REDACT``.
    """
    # [nodes left, characters left, verdict]
    state = [_PLAIN_NODES, _PLAIN_CHARS, _PLAIN]
    try:
        _scan_node(value, redact, state)
    except _NotPlain:
        return _NOT_PLAIN
    return state[2]


def _scan_node(item: Any, redact: KeyRedactor, state: list[int]) -> None:
    kind = type(item)
    if kind is dict:
        state[0] -= len(item)
        if state[0] < 0:
            raise _NotPlain
        for key, child in item.items():
            if type(key) is not str:
                raise _NotPlain
            state[1] -= len(key)
            if redact.hit(key):
                state[2] = _PLAIN_REDACT
                continue
            _scan_child(child, redact, state)
    elif kind is list or kind is tuple:
        state[0] -= len(item)
        if state[0] < 0:
            raise _NotPlain
        for child in item:
            _scan_child(child, redact, state)
    else:
        _scan_child(item, redact, state)
    if state[1] < 0:
        raise _NotPlain


def _scan_child(child: Any, redact: KeyRedactor, state: list[int]) -> None:
    kind = type(child)
    if kind is str:
        state[1] -= len(child)
    elif kind is int:
        # the encoder refuses ints beyond sys.get_int_max_str_digits(); leave those to the writer
        if child.bit_length() > 1024:
            raise _NotPlain
    elif kind is dict or kind is list or kind is tuple:
        _scan_node(child, redact, state)
    elif kind not in _PLAIN_LEAVES:
        raise _NotPlain


def _redacted(value: Any, redact: KeyRedactor) -> Any:
    """A copy of a plain value with redacted keys' values replaced (only called on small values)."""
    kind = type(value)
    if kind is dict:
        return {key: REDACTED if redact.hit(key) else _redacted(child, redact) for key, child in value.items()}
    if kind is list or kind is tuple:
        return [_redacted(child, redact) for child in value]
    return value


class _Writer:
    """Collects JSON text up to a byte limit and counts the UTF-8 size of everything written."""

    __slots__ = ("_kept", "_limit", "_parts", "size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._kept = 0
        self.size = 0

    @property
    def full(self) -> bool:
        return self._kept >= self._limit

    def write(self, piece: str) -> None:
        n = _utf8_len(piece)
        self.size += n
        room = self._limit - self._kept
        if room > 0:
            # ``room`` characters hold at least ``room`` bytes; never keep more of a huge piece than that
            self._parts.append(piece if len(piece) <= room else piece[:room])
            self._kept += n

    def write_size(self, n: int) -> None:
        """Count ``n`` bytes without text (only once the writer is full)."""
        self.size += n

    def text(self) -> str:
        return "".join(self._parts)


def _emit(value: Any, writer: _Writer, redact: KeyRedactor, depth: int, active: set[int]) -> None:
    """Write ``value`` as JSON (``json.dumps(..., ensure_ascii=False)`` layout), redacting as it goes."""
    # same order of checks as the json module, so subclasses serialise the way json.dumps would
    if isinstance(value, str):
        _emit_str(value, writer)
    elif value is None:
        writer.write("null")
    elif value is True:
        writer.write("true")
    elif value is False:
        writer.write("false")
    elif isinstance(value, int):
        writer.write(_int_json(value))
    elif isinstance(value, float):
        writer.write(_float_json(value))
    elif isinstance(value, (list, tuple, dict)):
        marker = id(value)
        if marker in active:
            writer.write(_CIRCULAR_JSON)
            return
        if depth >= _MAX_DEPTH:
            writer.write(_TOO_DEEP_JSON)
            return
        active.add(marker)
        if isinstance(value, dict):
            _emit_dict(value, writer, redact, depth, active)
        else:
            writer.write("[")
            first = True
            for item in value:
                if not first:
                    writer.write(", ")
                first = False
                _emit(item, writer, redact, depth + 1, active)
            writer.write("]")
        active.discard(marker)
    else:
        # a non-JSON value inside a structure: a JSON string holding its repr
        writer.write('"')
        for piece in _repr_pieces(value):
            _emit_str_body(piece, writer)
        writer.write('"')


def _emit_dict(value: dict[Any, Any], writer: _Writer, redact: KeyRedactor, depth: int, active: set[int]) -> None:
    writer.write("{")
    first = True
    for key, item in value.items():
        if not first:
            writer.write(", ")
        first = False
        if isinstance(key, str):
            _emit_str(key, writer)
            writer.write(": ")
            if redact.hit(key):
                writer.write(_REDACTED_JSON)
                continue
        else:
            _emit_str(_key_text(key), writer)
            writer.write(": ")
        _emit(item, writer, redact, depth + 1, active)
    writer.write("}")


def _key_text(key: Any) -> str:
    if isinstance(key, float):
        return _float_json(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return _int_json(key)
    return _safe_repr(key)


def _emit_str(text: str, writer: _Writer) -> None:
    if len(text) <= _SLICE:
        writer.write(encode_basestring(text))
        return
    writer.write('"')
    _emit_str_body(text, writer)
    writer.write('"')


def _emit_str_body(text: str, writer: _Writer) -> None:
    """Write ``text`` JSON-escaped without its quotes, one slice at a time."""
    for start in range(0, len(text), _SLICE):
        escaped = encode_basestring(text[start : start + _SLICE])
        if writer.full:
            writer.write_size(_utf8_len(escaped) - 2)
        else:
            writer.write(escaped[1:-1])


def _int_json(value: int) -> str:
    try:
        return int.__repr__(value)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return encode_basestring(f"<int of {value.bit_length()} bits>")


def _float_json(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object (repr failed)>"


def _repr_pieces(value: Any) -> Iterator[str]:
    """``repr(value)`` in pieces: bytes and bytearray in slices, anything else in one piece."""
    kind = type(value)
    if kind is not bytes and kind is not bytearray:
        yield _safe_repr(value)
        return
    head, tail = ("b", "") if kind is bytes else ("bytearray(b", ")")
    # Python quotes a bytes repr with " only when the bytes hold ' and no "; a slice may decide otherwise
    quote = '"' if (b"'" in value and b'"' not in value) else "'"
    yield head + quote
    for start in range(0, len(value), _SLICE):
        text = repr(bytes(value[start : start + _SLICE]))
        body = text[2:-1]
        if text[1] == '"' and (quote == "'" or kind is bytearray):
            # the slice chose " (it holds ' but no ") and left ' bare; the whole value is quoted with ', or is
            # a bytearray, whose repr escapes ' whatever the quote
            body = body.replace("'", "\\'")
        yield body
    yield quote + tail
