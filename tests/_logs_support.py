"""Shared pieces of the tests of batchlens' stdlib log route: saved and restored logging state, a Powertools
``Logger`` writing to a buffer, a Lambda handler decorated by it, and a handler that keeps records.

A test module makes the fixtures available with ``from _logs_support import root_logging as root_logging`` (the
redundant alias marks a re-export, so ruff does not report an unused import).
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from batchlens import process_partial_response


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, restored (handlers and level) after the test; the batchlens logger too."""
    root = logging.getLogger()
    own = logging.getLogger("batchlens")
    saved = (list(root.handlers), root.level, list(own.handlers), own.level)
    yield root
    for handler_ in root.handlers:
        if handler_ not in saved[0]:
            handler_.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    own.handlers[:] = saved[2]
    own.setLevel(saved[3])


@pytest.fixture
def powertools_stream() -> Iterator[tuple[Logger, io.StringIO]]:
    """A Powertools Logger (a fresh service name: Powertools reuses a configured one) writing JSON to a buffer.

    Its stdlib logger loses its handler afterwards, so later tests do not detect it.
    """
    stream = io.StringIO()
    service = f"orders-service-{uuid.uuid4().hex[:8]}"
    logger = Logger(service=service, stream=stream)
    yield logger, stream
    logging.getLogger(service).handlers.clear()


class ListHandler(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def powertools_lambda_handler(logger: Logger, processor: Any, handler: Any) -> Any:
    """A Lambda handler decorated with the Logger's ``inject_lambda_context``: logs one line, then the batch."""

    @logger.inject_lambda_context
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.info("handler started")
        return process_partial_response(event, handler, processor, context)

    return lambda_handler
