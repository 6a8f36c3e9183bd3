"""Keep the sync process's resident memory close to what it actually uses.

Rows move through short-lived Arrow buffers of a few MB each, allocated and freed on several threads
(reader, stager, loader). glibc's allocator then keeps freed memory in per-thread arenas and grows
its mmap threshold, so the process's RSS climbs far above its live data (measured: 60 MB more on a
2 M-row sync). Fewer arenas and a fixed mmap threshold return that memory to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_tuned = False


def tune_allocator(*, arenas: int = 2, mmap_threshold: int = 128 * 1024) -> bool:
    """Apply once per process (glibc only; elsewhere a no-op). Returns whether the settings took."""
    global _tuned
    if _tuned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_ARENA_MAX, arenas)) and bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold))
    _tuned = ok
    if not ok:
        log.debug("mallopt refused the allocator settings; memory use may be higher")
    return ok
