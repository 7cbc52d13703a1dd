"""The garbage collector's settings while ``sal serve`` runs (:func:`tuned_collector`).

A server holds the objects of hundreds of searches at once. With CPython's default thresholds
(700, 10, 10) the collector keeps running full collections over them and over everything the
imported modules built: about a third of the server's CPU per request at 200 searches in flight
(``benchmarks/serve.py``, see ``benchmarks/README.md``). While the app runs, the objects alive at
start-up are frozen (no collection looks at them again) and the youngest generation is collected
after :data:`YOUNG_THRESHOLD` net allocations instead of 700, so full collections become rare.
Reference cycles are still collected; the settings are put back when the app stops.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["YOUNG_THRESHOLD", "tuned_collector"]

YOUNG_THRESHOLD = 10_000
"""Net allocations between two collections of the youngest generation while serving."""


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """Freeze what is alive now and collect young objects less often, for the block.

    A process that froze objects itself is left to manage them: only the threshold changes.
    """
    before = gc.get_threshold()
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.collect()
        gc.freeze()
    gc.set_threshold(max(before[0], YOUNG_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freezing:
            gc.unfreeze()
