"""Partial-failure batch processors: the base and its sync and async drivers, gathered in one import path.

``_partial`` holds the Powertools-compatible base, ``_sync`` and ``_async`` the drivers that import it; this
module only re-exports them, so no module imports one that imports it back.
"""

from __future__ import annotations

from batchlens._async import AsyncBatchProcessor
from batchlens._partial import BasePartialBatchProcessor, BasePartialProcessor
from batchlens._sync import BatchProcessor

__all__ = ["AsyncBatchProcessor", "BasePartialBatchProcessor", "BasePartialProcessor", "BatchProcessor"]
