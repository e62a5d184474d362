"""Parsing of ``BATCHLENS_*`` environment variables: strict, so a typo never silently disables a feature."""

from __future__ import annotations

from collections.abc import Mapping

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
BOOL_WORDS = "true/false, 1/0, yes/no, on/off"


def parse_bool(name: str, value: str) -> bool:
    """Parse a boolean setting, raising a ValueError that names the variable and the accepted values."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean; accepted values (any case): {BOOL_WORDS}")


def parse_int(name: str, value: str, *, minimum: int) -> int:
    """Parse an integer setting of at least ``minimum``."""
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer; expected a whole number >= {minimum}") from None
    if number < minimum:
        raise ValueError(f"{name}={value!r} is out of range; expected a whole number >= {minimum}")
    return number


def parse_fraction(name: str, value: object) -> float:
    """Parse a fraction in [0, 1] (a number, or its text), raising a ValueError that names the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name}={value!r} is not valid; expected a fraction in [0, 1], such as 0.01")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number; expected a fraction in [0, 1], such as 0.01") from None
    # NaN fails both comparisons, so it is refused here too
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name}={value!r} is out of range; expected a fraction in [0, 1], such as 0.01")
    return number


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Read a boolean variable from ``environ``; unset or empty gives ``default``."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return parse_bool(name, raw)


def env_int(environ: Mapping[str, str], name: str, default: int | None, *, minimum: int) -> int | None:
    """Read an integer variable from ``environ``; unset or empty gives ``default``."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return parse_int(name, raw, minimum=minimum)


def env_fraction(environ: Mapping[str, str], name: str, default: float) -> float:
    """Read a fraction in [0, 1] from ``environ``; unset or empty gives ``default``."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return parse_fraction(name, raw)


def env_choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read one of ``choices`` (case-insensitive) from ``environ``."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word not in choices:
        raise ValueError(f"{name}={raw!r} is not valid; accepted values: {', '.join(choices)}")
    return word
