"""What a background writer needs to end its process cleanly: a `multiprocessing` worker ends with
`os._exit`, which skips atexit, after running multiprocessing's own finalizers. Shared by the usage
ledger's writer and the budget stores' settler."""

from __future__ import annotations

import functools
import sys
from typing import Any

__all__ = ["at_multiprocessing_exit"]


def at_multiprocessing_exit(owner: Any, method: str, priority: int = 10) -> None:
    """Call `owner.<method>()` when a multiprocessing worker ends (a higher `priority` first). In a child
    that multiprocessing forks, its finalizers are cleared after the fork, so ours is registered again from
    its after-fork hook; in a child that made `owner` itself, right away."""
    mp_util = sys.modules.get("multiprocessing.util")
    mp_process = sys.modules.get("multiprocessing.process")
    if mp_util is None or mp_process is None:
        return
    if mp_process.parent_process() is not None:  # already inside a multiprocessing child
        mp_util.Finalize(owner, getattr(owner, method), exitpriority=priority)
    mp_util.register_after_fork(owner, functools.partial(_finalize_in_child, method=method, priority=priority))


def _finalize_in_child(owner: Any, method: str, priority: int) -> None:
    import multiprocessing.util as mp_util

    mp_util.Finalize(owner, getattr(owner, method), exitpriority=priority)
