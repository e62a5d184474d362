"""What the ``batchlens`` command and its ``poll`` runner share: exit codes, the one-line input error, handler
loading and the CLI's own log output. Standard library only at import; both ``cli`` and ``_poll`` import this
module, never each other.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["EXIT_BAD_INPUT", "EXIT_BATCH_FAILED", "EXIT_OK", "BadInput"]

EXIT_OK = 0
EXIT_BATCH_FAILED = 1
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A problem with what the user gave us: reported on one line, exit code 2."""


def _load_handler(spec: str) -> Any:
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BadInput(f"--handler {spec!r} must look like module:function")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise BadInput(f"cannot import handler module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise BadInput(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise BadInput(f"{spec} is not callable")
    return target


def _configure_stderr_logging() -> None:
    import structlog

    from batchlens._telemetry._log_render import render_exception

    # the CLI is the application here, so configuring structlog is ours to do; tracebacks are bounded text
    # without frame locals, as in every pipeline batchlens chooses
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            render_exception,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
