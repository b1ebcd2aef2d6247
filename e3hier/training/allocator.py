"""Keep freed memory in the process instead of returning it to the system (glibc ``mallopt``).

A training step allocates and frees the same large tensors every step (per-edge messages of
several MB at l_max 4, more for an ensemble). glibc serves blocks above its mmap threshold with
fresh ``mmap`` pages and unmaps them on ``free``, so every step faults the same memory in again:
~30 % of a training job's CPU time was system time. Raising the mmap threshold to glibc's maximum
and never trimming the heap top lets freed blocks be reused as they are. The price is that a
process keeps its peak heap until it exits, which a training job does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: ``mallopt`` parameters (``<malloc.h>``).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: glibc's largest mmap threshold on 64-bit systems (4 MiB · sizeof(long)); larger values are refused.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024

_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's allocator as described above, once per process; False where there is no glibc."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator is left as it is
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # c_int: the largest trim threshold and top pad mallopt takes (2 GiB - 1, 64 MiB)
    _done = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        and mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
        and mallopt(M_TOP_PAD, 64 * 1024 * 1024)
    )
    return _done
