"""Kafka records (Amazon MSK and self-managed), property-compatible with Powertools' ``KafkaEventRecord``."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from batchlens.data_classes._base import DictWrapper

__all__ = ["KafkaEventRecord", "KafkaEventRecordSchemaMetadata"]


class _CaseInsensitiveHeaders(dict[str, bytes]):
    """Header values by lower-cased name; lookups ignore case, as HTTP-style headers do."""

    __slots__ = ()

    def __init__(self, pairs: Iterable[tuple[str, bytes]] = ()) -> None:
        super().__init__((name.lower(), value) for name, value in pairs)

    def __getitem__(self, key: str) -> bytes:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key.lower(), value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def pop(self, key: str, *default: Any) -> Any:
        return super().pop(key.lower(), *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return super().setdefault(key.lower(), default)

    def update(self, *args: Any, **kwargs: bytes) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def copy(self) -> _CaseInsensitiveHeaders:
        return _CaseInsensitiveHeaders(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == {str(name).lower(): value for name, value in other.items()}
        return NotImplemented

    __hash__ = None


def _header_bytes(values: list[int]) -> bytes:
    # Java producers send header bytes as signed values (-128..127); fold negatives into 128..255.
    return bytes(value & 0xFF if value < 0 else value for value in values)


class KafkaEventRecordSchemaMetadata(DictWrapper):
    """Schema registry metadata of a record's key or value."""

    __slots__ = ()
    _repr_keys = ("dataFormat", "schemaId")

    @property
    def data_format(self) -> str | None:
        """The serialization format, such as ``AVRO``, ``PROTOBUF`` or ``JSON``."""
        return self._data.get("dataFormat")

    @property
    def schema_id(self) -> str | None:
        """The schema id in the registry."""
        return self._data.get("schemaId")


class KafkaEventRecord(DictWrapper):
    """One Kafka record (an element of a topic-partition list in ``event["records"]``)."""

    __slots__ = ("_decoded_headers", "_json_value")
    _repr_keys = ("topic", "partition", "offset")
    _decoded_headers: dict[str, bytes]
    _json_value: Any

    @property
    def topic(self) -> str:
        """The topic the record was read from."""
        return self._data["topic"]  # type: ignore[no-any-return]

    @property
    def partition(self) -> int:
        """The partition the record was read from."""
        return self._data["partition"]  # type: ignore[no-any-return]

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""
        return self._data["offset"]  # type: ignore[no-any-return]

    @property
    def timestamp(self) -> int:
        """The record timestamp in epoch milliseconds."""
        return self._data["timestamp"]  # type: ignore[no-any-return]

    @property
    def timestamp_type(self) -> str:
        """``CREATE_TIME`` or ``LOG_APPEND_TIME``."""
        return self._data["timestampType"]  # type: ignore[no-any-return]

    @property
    def key(self) -> str | None:
        """The record key, base64 encoded; None for records produced without a key."""
        return self._data.get("key")

    @property
    def decoded_key(self) -> bytes | None:
        """The record key decoded from base64; None for records produced without a key."""
        key = self._data.get("key")
        return None if key is None else base64.b64decode(key)

    @property
    def value(self) -> str:
        """The record value, base64 encoded."""
        return self._data["value"]  # type: ignore[no-any-return]

    @property
    def decoded_value(self) -> bytes:
        """The record value decoded from base64."""
        return base64.b64decode(self._data["value"])

    @property
    def json_value(self) -> Any:
        """The record value parsed as UTF-8 JSON; parsed on first access and then reused."""
        try:
            return self._json_value
        except AttributeError:
            pass
        parsed = self._json_deserializer(self.decoded_value.decode("utf-8"))
        self._json_value = parsed
        return parsed

    @property
    def headers(self) -> list[dict[str, list[int]]]:
        """The raw headers: a list of one-entry dicts from name to a list of byte values."""
        return self._data["headers"]  # type: ignore[no-any-return]

    @property
    def decoded_headers(self) -> dict[str, bytes]:
        """All headers as one case-insensitive dict of name to bytes; a later duplicate name wins."""
        try:
            return self._decoded_headers
        except AttributeError:
            pass
        decoded = _CaseInsensitiveHeaders(
            (name, _header_bytes(values)) for header in self._data["headers"] for name, values in header.items()
        )
        self._decoded_headers = decoded
        return decoded

    @property
    def key_schema_metadata(self) -> KafkaEventRecordSchemaMetadata | None:
        """Schema registry metadata of the key, when the event source mapping provides it."""
        raw = self._data.get("keySchemaMetadata")
        return None if raw is None else KafkaEventRecordSchemaMetadata(raw)

    @property
    def value_schema_metadata(self) -> KafkaEventRecordSchemaMetadata | None:
        """Schema registry metadata of the value, when the event source mapping provides it."""
        raw = self._data.get("valueSchemaMetadata")
        return None if raw is None else KafkaEventRecordSchemaMetadata(raw)
