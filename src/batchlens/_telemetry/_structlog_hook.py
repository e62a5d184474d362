"""Configure structlog when the application first imports it, not before: structlog costs a Lambda cold start.

Importing structlog loads ``structlog.stdlib``, ``asyncio`` and ``ssl``: about 8 MB and 100 ms, a third of a
deployed function's cold start. ``configure()``'s default in Lambda asks for JSON lines; batchlens' own lines are
the same JSON without structlog (``_log_lambda``), so structlog needs configuring only once the application uses
it. :func:`configure_when_imported` configures it at once when it is imported already, and otherwise installs a
one-shot import hook that configures it right after the application's first ``import structlog`` has run.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["configure_when_imported", "pending"]

_log = logging.getLogger("batchlens.telemetry")
_lock = threading.Lock()
_hook: _ConfigureOnImport | None = None


def pending() -> bool:
    """Whether a configuration waits for the application's first ``import structlog``."""
    return _hook is not None


def configure_when_imported(configure: Callable[[], None]) -> bool:
    """Run ``configure`` now when structlog is imported, else right after its first import.

    A later call replaces a configuration still waiting. Returns True when it ran now.
    """
    global _hook
    with _lock:
        if _hook is not None:
            _remove(_hook)
            _hook = None
        if "structlog" in sys.modules:
            configure()
            return True
        _hook = _ConfigureOnImport(configure)
        sys.meta_path.insert(0, _hook)
        return False


def _remove(hook: _ConfigureOnImport) -> None:
    try:
        sys.meta_path.remove(hook)
    except ValueError:
        pass


class _ConfigureOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of ``structlog`` so that ``configure`` runs after the module did."""

    def __init__(self, configure: Callable[[], None]) -> None:
        self.configure = configure

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        global _hook
        if fullname != "structlog":
            return None
        with _lock:
            if _hook is not self:
                return None
            _hook = None
            _remove(self)  # one shot; and the look-up below must not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RunAfter(spec.loader, self.configure)
        return spec


class _RunAfter(importlib.abc.Loader):
    """The real loader, then the configuration; anything else is the real loader's."""

    def __init__(self, loader: Any, after: Callable[[], None]) -> None:
        self._loader = loader
        self._after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._after()
        except Exception:  # the application's import must never fail because of batchlens' configuration
            _log.warning("batchlens.telemetry: configuring structlog after its import failed", exc_info=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
