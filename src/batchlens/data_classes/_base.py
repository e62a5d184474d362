"""The read-only mapping wrapper that every event source data class builds on."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

__all__ = ["DictWrapper"]

_REPR_VALUE_LIMIT = 64


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _REPR_VALUE_LIMIT:
        return text[: _REPR_VALUE_LIMIT - 3] + "..."
    return text


class DictWrapper(Mapping[str, Any]):
    """Read-only view over one raw event dict, with typed properties in subclasses.

    Construction only stores references: the processor builds one wrapper per record on its hot
    path, so nothing is parsed or copied until a property asks for it.

    Args:
        data: The raw event (or part of an event) exactly as Lambda delivered it.
        json_deserializer: Turns a JSON document into Python objects; defaults to ``json.loads``.
    """

    __slots__ = ("_data", "_json_deserializer")

    # Top-level keys shown by __repr__; identifiers only, never payloads.
    _repr_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data: dict[str, Any], json_deserializer: Callable[[str], Any] | None = None) -> None:
        self._data = data
        self._json_deserializer: Callable[[str], Any] = json_deserializer or json.loads

    @property
    def raw_event(self) -> dict[str, Any]:
        """The dict this wrapper was built from (the same object, not a copy)."""
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        """Return the raw value stored under ``key``, or ``default`` when it is absent."""
        return self._data.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DictWrapper):
            return bool(self._data == other._data)
        if isinstance(other, dict):
            return bool(self._data == other)
        return NotImplemented

    # Wrappers are views over mutable dicts, so they are unhashable like the dicts themselves.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        data = self._data
        shown = [f"{key}={_short_repr(data[key])}" for key in self._repr_keys if key in data]
        if not shown:
            return f"{type(self).__name__}(<{len(data)} keys>)"
        return f"{type(self).__name__}({', '.join(shown)})"
