"""numpy's BLAS on one thread in the server process.

numpy's wheels bring OpenBLAS, which runs a matrix product on every core and then keeps its helper threads
spinning (~0.1 s) in case another one follows. The products here are small (Whisper's and Smart Turn's log-Mel
filterbanks) and come a few at a time, so the helpers gain nothing and take the cores from llama.cpp and the other
engines: measured in a `localive serve` on 2 cores, a spinning OpenBLAS thread used ~90 ms of CPU during each
~140 ms Whisper pass and ~50-90 ms during each answer's generation (docs/latency.md, "Threads"). threadpoolctl
(made for exactly this) sets the limit at run time, whichever BLAS numpy was built with.
"""

from __future__ import annotations

import logging

log = logging.getLogger("localive.engines")


def limit_blas_threads(threads: int = 1) -> list[int]:
    """Limit numpy's BLAS to `threads` threads for the rest of the process (numpy is imported first: that loads
    the library the limit applies to). Returns each BLAS library's thread count now."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    counts = [int(info["num_threads"]) for info in threadpool_info() if info.get("user_api") == "blas"]
    log.debug("numpy's BLAS on %s thread(s)", counts)
    return counts
