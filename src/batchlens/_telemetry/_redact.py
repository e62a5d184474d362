"""Which dict keys of a captured result are secret: a key is redacted when its normalised form contains any of
the configured substrings.

Normalising lower-cases the key and drops ``-`` and ``_``, so ``X-Api-Key``, ``x_api_key`` and ``XAPIKEY`` are
the same key, and the substring ``apikey`` matches all of them (and ``aws_secret_access_key`` matches
``secret``). Substrings are normalised the same way; one that normalises to nothing is ignored (it would match
every key).

Matching by substring redacts more than exact names would: ``author`` contains ``auth``, ``tokenizer``
contains ``token``. That is deliberate (a missed secret costs more than a hidden harmless value); pass your own
``redact_keys`` to narrow it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KeyRedactor", "normalise_key"]

# Distinct keys whose decision is remembered. Results usually repeat a few key names; keys built from data
# (ids used as keys) are decided every time once the cache is full, so memory stays bounded.
_MAX_CACHED_KEYS = 4096


def normalise_key(key: str) -> str:
    """``key`` lower-cased, without ``-`` and ``_``."""
    return key.lower().replace("-", "").replace("_", "")


class KeyRedactor:
    """Decides, and remembers for a bounded number of keys, whether a dict key's value is redacted.

    Args:
        substrings: The configured redact keys; a key is redacted when its normalised form contains one.
    """

    __slots__ = ("_cache", "_needles")

    def __init__(self, substrings: Iterable[str]) -> None:
        needles = (normalise_key(s).strip() for s in substrings)
        self._needles: tuple[str, ...] = tuple(dict.fromkeys(n for n in needles if n))
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        """Whether any key can be redacted at all."""
        return bool(self._needles)

    def hit(self, key: str) -> bool:
        """Whether the value under ``key`` is redacted."""
        decided = self._cache.get(key)
        if decided is None:
            normalised = normalise_key(key)
            decided = any(needle in normalised for needle in self._needles)
            if len(self._cache) < _MAX_CACHED_KEYS:
                self._cache[key] = decided
        return decided
