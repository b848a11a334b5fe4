"""The garbage collector tuned for a long-lived process: the API server, the renewal worker.

Young-generation collections every 700 allocations ran many times per request (or per swept
renewal, which builds a few hundred objects), and as objects aged, full collections walked
everything the imports and the app had built: 70-300 ms pauses in the read routes' p99
(bench/api.py), and 4-7 % of a sweep's CPU (bench/renewals.py). Tests build many apps in
one process and keep the interpreter's defaults.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 20)


def settle_garbage_collector() -> None:
    """Once the process is set up: what exists now lives as long as the process, so it is
    moved out of the collector's sight (`gc.freeze`), and young collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
