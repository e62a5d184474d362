"""The JSON serialiser behind response capture: one C-encoder call for small plain values, a bounded streaming
writer for everything else (see ``capture``'s module docstring for the rules and the memory bound)."""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

    from batchlens._telemetry._redact import KeyRedactor

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
