"""Warnings batchlens emits.

``BatchlensDeprecationWarning`` is a ``DeprecationWarning``, so filters and ``pytest.warns(DeprecationWarning)``
written for Powertools' deprecated batch decorators keep matching after switching to batchlens.
"""

from __future__ import annotations

__all__ = ["BatchlensDeprecationWarning"]


class BatchlensDeprecationWarning(DeprecationWarning):
    """A batchlens API (such as the ``batch_processor`` decorator) is deprecated and will be removed."""
