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


def _load_handler(spec: str, flag: str = "--handler") -> Any:
    """The callable ``spec`` names: ``module:function`` (imported from the cwd) or ``path/to/file.py:function``."""
    import importlib

    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise BadInput(f"{flag} {spec!r} must look like module:function or path/to/file.py:function")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        module = _import_file(Path(module_name), flag, spec)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name.partition(".")[0]:
                raise BadInput(
                    f"no module {module_name!r} in {cwd} or on sys.path "
                    f"(for a file, give its path: {flag} path/to/{module_name.replace('.', '/')}.py:{attr})"
                ) from None
            raise BadInput(f"cannot import handler module {module_name!r}: {type(exc).__name__}: {exc}") from exc
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


def _import_file(path: Path, flag: str, spec: str) -> Any:
    """Import the Python file ``path`` as a module named after it, its folder first on ``sys.path`` (as Lambda)."""
    import importlib.util

    if not path.is_file():
        raise BadInput(f"{flag} {spec!r}: no such file {str(path)!r}")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise BadInput(f"{flag} {spec!r}: {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise BadInput(f"cannot import handler file {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return module


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
