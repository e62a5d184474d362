"""Which kind of handler the CLI was given: a Lambda handler ``(event, context)`` or a record handler ``(record)``.

``run`` and ``poll`` accept both, behind ``--lambda-handler``, ``--record-handler`` or plain ``--handler``. The
rule for plain ``--handler``: a callable whose first two positional parameters are named ``event`` and
``context`` (leading underscores ignored) is a Lambda handler; anything else is a record handler (``record``,
``record, lambda_context``). A flag that contradicts a clear signature (``event, context``; a single parameter;
a first parameter named ``record``) is refused in one line, before any record runs. Standard library only at import.
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from typing import Any

from batchlens._cli_common import BadInput, _load_handler

__all__ = [
    "LAMBDA",
    "RECORD",
    "HandlerChoice",
    "add_handler_flags",
    "as_lambda_handler",
    "handler_choice",
    "kind_of",
    "load",
]

LAMBDA = "lambda"
RECORD = "record"
_FLAGS = {LAMBDA: "--lambda-handler", RECORD: "--record-handler", None: "--handler"}


@dataclass(frozen=True)
class HandlerChoice:
    """The handler spec the user gave and the kind a flag named (None: plain ``--handler``, the rule decides)."""

    spec: str
    kind: str | None = None

    @property
    def flag(self) -> str:
        return _FLAGS[self.kind]


def add_handler_flags(parser: argparse.ArgumentParser) -> None:
    """``--handler`` / ``--lambda-handler`` / ``--record-handler``: exactly one is required."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--handler",
        metavar="SPEC",
        help=(
            "module:function or path/to/file.py:function; a function whose first two positional parameters are "
            "named event and context is a Lambda handler, anything else a record handler"
        ),
    )
    group.add_argument("--lambda-handler", metavar="SPEC", help="a Lambda handler(event, context)")
    group.add_argument("--record-handler", metavar="SPEC", help="a record handler(record) run by batchlens")


def handler_choice(args: argparse.Namespace) -> HandlerChoice:
    """The handler flags of parsed arguments."""
    if getattr(args, "lambda_handler", None):
        return HandlerChoice(args.lambda_handler, LAMBDA)
    if getattr(args, "record_handler", None):
        return HandlerChoice(args.record_handler, RECORD)
    return HandlerChoice(args.handler)


def _positional_names(handler: Any) -> list[str] | None:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name.lstrip("_") for p in signature.parameters.values() if p.kind in kinds]


def kind_of(handler: Any) -> str | None:
    """LAMBDA or RECORD when the signature tells, None when it does not.

    ``event, context`` first: a Lambda handler. One positional parameter, or a first one named ``record``: a
    record handler. Anything else (``e, c``; ``*args``) is left to the flag, or to the default (record).
    """
    names = _positional_names(handler)
    if names is None:
        return None
    if names[:2] == ["event", "context"]:
        return LAMBDA
    if len(names) == 1 or names[:1] == ["record"]:
        return RECORD
    return None


def load(choice: HandlerChoice) -> tuple[Any, str]:
    """Import the handler and decide its kind; a flag contradicting the signature is a one-line BadInput."""
    handler = _load_handler(choice.spec, choice.flag)
    seen = kind_of(handler)
    if choice.kind is None:
        return handler, seen or RECORD
    if seen is not None and seen != choice.kind:
        names = ", ".join(_positional_names(handler) or []) or "none"
        other = _FLAGS[seen]
        raise BadInput(
            f"{choice.spec} is a {seen} handler, not a {choice.kind} handler (positional parameters: {names}); "
            f"give it with {other} or --handler"
        )
    return handler, choice.kind


def as_lambda_handler(record_handler: Any) -> Any:
    """A Lambda handler running ``record_handler`` with the processor ``run`` would pick for each event.

    The event type comes from the event's ``eventSource``; FIFO queues get the FIFO processor and an ``async def``
    handler the async one. Processors are made once per kind and reused, as a module-level one is in Lambda.
    """
    processors: dict[tuple[Any, str], Any] = {}

    def lambda_handler(event: Any, context: Any) -> Any:
        import batchlens
        from batchlens._cli_batch import default_processor, processor_for
        from batchlens._sources import detect_event_type

        event_type = detect_event_type(event)
        if event_type is None:
            raise ValueError("cannot tell the event type from eventSource")
        kind = default_processor(None, event_type, event, record_handler)
        key = (event_type, kind)
        if key not in processors:
            processors[key] = processor_for(event_type, kind)
        if kind in ("async", "fifo-async"):
            return batchlens.async_process_partial_response(event, record_handler, processors[key], context)
        return batchlens.process_partial_response(event, record_handler, processors[key], context)

    return lambda_handler
