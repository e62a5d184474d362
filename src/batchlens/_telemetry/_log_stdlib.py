"""batchlens' log entries through the standard ``logging`` module, for applications that log that way.

When the application has not configured structlog itself (``configure()``'s set-up does not count) and logs through
``logging`` (its own handlers, Powertools' ``Logger``, Lambda's JSON log format), entries go to
``logging.getLogger("batchlens")`` as records whose message is the event (``record processed``) and whose keys are
structured extras, so they come out in the application's JSON shape next to its own correlation fields. Each record
names the real caller (file, line, function of batchlens' log call), which Powertools prints as ``location``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from batchlens._telemetry._log_render import exception_fields

__all__ = ["StdlibMethod", "stdlib_logging_detected", "stdlib_target"]

LOGGER_NAME = "batchlens"

# Handlers that do not mean "the application logs through logging": the Lambda runtime's own text handler (on
# the root logger of every function) and pytest's capture handlers.
_RUNTIME_HANDLERS = ("LambdaLoggerHandler",)
_IGNORED_MODULES = ("_pytest.",)
_POWERTOOLS_MODULE = "aws_lambda_powertools.logging.logger"


def _counts(handler: logging.Handler) -> bool:
    kind = type(handler)
    if kind.__module__.startswith(_IGNORED_MODULES) or isinstance(handler, logging.NullHandler):
        return False
    # the runtime's handler formats records as JSON (extras included) only under AWS_LAMBDA_LOG_FORMAT=JSON,
    # which stdlib_logging_detected() checks on its own
    return not kind.__name__.startswith(_RUNTIME_HANDLERS)


def _own_handlers(logger: logging.Logger) -> bool:
    """Whether a record of ``logger`` reaches a handler the application installed (following propagation)."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(_counts(h) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def powertools_logger() -> logging.Logger | None:
    """The stdlib logger behind an application's Powertools ``Logger``, if one exists."""
    if _POWERTOOLS_MODULE not in sys.modules:
        return None
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        # Powertools marks the logger it configured (and reuses that mark to detect it)
        if (
            isinstance(candidate, logging.Logger)
            and getattr(candidate, "powertools_handler", None) is not None
            and candidate.handlers
        ):
            return candidate
    return None


def stdlib_logging_detected(lambda_json: bool) -> bool:
    """Whether the application logs through ``logging``: its handlers, Powertools' Logger or Lambda's JSON format."""
    if lambda_json:
        return True
    return _own_handlers(logging.getLogger(LOGGER_NAME)) or powertools_logger() is not None


def lambda_json_format() -> bool:
    """Whether Lambda's advanced logging controls format ``logging`` records as JSON."""
    return os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").strip().upper() == "JSON"


def stdlib_target() -> tuple[logging.Logger, logging.Logger]:
    """(the ``batchlens`` logger, the logger whose handlers get its records).

    Records go through the ``batchlens`` logger and its propagation; when nothing there would print them but the
    application has a Powertools ``Logger``, they are handed to that logger's handlers, as Powertools'
    ``copy_config_to_registered_loggers`` would arrange.
    """
    own = logging.getLogger(LOGGER_NAME)
    # the runtime's handler does not count here: under Lambda's JSON format a Powertools user still wants
    # Powertools' shape (service, cold_start, function_request_id) rather than the runtime's
    if not _own_handlers(own):
        powertools = powertools_logger()
        if powertools is not None:
            return own, powertools
    return own, own


class StdlibMethod:
    """One level of the ``batchlens`` stdlib logger, called like a structlog method: ``method(event, **keys)``."""

    __slots__ = ("_handler_logger", "_level", "_logger")

    def __init__(self, logger: logging.Logger, handler_logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._handler_logger = handler_logger
        self._level = level

    def __call__(self, event: str, **fields: Any) -> None:
        exc = fields.pop("exc_info", None)
        if isinstance(exc, BaseException):
            # bounded text without frame locals, not the exception: a formatter would print it whole
            exception_fields(exc, fields)
        # the caller's file, line and function, as logging's own findCaller would give them (Powertools' location,
        # Lambda's pathname), for a fraction of its cost: the caller is batchlens' log observer
        caller = sys._getframe(1)
        code = caller.f_code
        record = self._logger.makeRecord(
            LOGGER_NAME,
            self._level,
            code.co_filename,
            caller.f_lineno,
            event,
            (),
            None,
            func=code.co_name,
            extra=fields,
        )
        target = self._handler_logger
        if target is self._logger:
            target.handle(record)
        elif target.filter(record):
            # Powertools' handlers only: propagating from its logger would also reach the Lambda runtime's root
            # handler, which Powertools keeps quiet for its own records by their name (SuppressFilter), not ours
            for handler in target.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)


def enabled(logger: logging.Logger, handler_logger: logging.Logger, level: int) -> bool:
    """A level is on when the logger that prints it enables it; an explicit ``batchlens`` level also applies."""
    if logger.level != logging.NOTSET and level < logger.level:
        return False
    return handler_logger.isEnabledFor(level)
