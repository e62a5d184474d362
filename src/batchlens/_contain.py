"""Containment of BaseExceptions leaving an async record: they are carried out of the event loop (``_Escaped``)
instead of escaping it from inside a task. Shared by ``BasePartialProcessor`` and the async drivers.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from types import CoroutineType
from typing import Any

__all__ = ["_Escaped", "_contained", "_escapes", "_gather_contained"]


class _Escaped:
    """A BaseException (KeyboardInterrupt, SystemExit, ...) that left a record, carried out of the event loop.

    asyncio re-raises such an exception straight out of ``run_until_complete`` from inside the task that raised
    it, leaving that task (and the batch's) with an exception nobody retrieves: the event loop then reports
    "Task exception was never retrieved" whenever the garbage collector finds it (on CPython 3.11 possibly
    in the middle of an unrelated ``ast.parse``). The async drivers therefore catch it inside the record's task,
    cancel the records still running, and return this marker; ``async_process`` raises the exception itself,
    outside the loop, once every task has finished.
    """

    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


def _escapes(exc: BaseException) -> bool:
    """Whether ``exc`` must be carried out of the event loop: neither an ``Exception`` nor a cancellation."""
    return not isinstance(exc, (Exception, sys.modules["asyncio"].CancelledError))


async def _contained(awaitable: Awaitable[Any]) -> Any:
    """Await one record; a BaseException that ``_escapes`` comes back as ``_Escaped``."""
    try:
        return await awaitable
    except BaseException as exc:
        if not _escapes(exc):
            raise
        return _Escaped(exc)


async def _gather_contained(awaitables: list[Awaitable[Any]]) -> list[Any] | _Escaped:
    """``asyncio.gather`` of the records, except that a BaseException leaving one of them cancels the others
    and comes back as ``_Escaped`` (after they have all finished) instead of escaping the event loop."""
    import asyncio

    escaped: list[_Escaped] = []
    tasks: list[asyncio.Future[Any]] = []

    async def one(awaitable: Awaitable[Any]) -> Any:
        # _contained() inlined (one coroutine frame per record instead of two), plus cancelling the others
        try:
            return await awaitable
        except BaseException as exc:
            if not _escapes(exc):
                raise
            escape = _Escaped(exc)
            if not escaped:
                escaped.append(escape)
                current = asyncio.current_task()
                for task in tasks:
                    if task is not current:
                        task.cancel()
            return escape

    create_task = asyncio.get_running_loop().create_task
    tasks.extend(create_task(one(awaitable)) for awaitable in awaitables)
    # return_exceptions: wait for every task, the cancelled ones included, before anything leaves this batch
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if escaped:
        for awaitable in awaitables:
            if isinstance(awaitable, CoroutineType):
                awaitable.close()  # never started when its task was cancelled first: no "never awaited" warning
        return escaped[0]
    for result in results:
        if isinstance(result, BaseException):
            raise result  # an exception a custom _async_process_record let through
    return results
