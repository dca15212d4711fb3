"""Process-level settings that make clap's CPU work faster; the CLI applies them.

glibc serves large allocations (above a dynamic threshold of at most 32 MiB) with fresh `mmap`
pages and trims the heap eagerly, so every big temporary of a text forward is faulted in and
zeroed again: about 20% of the frozen text encoding in training on 2 cores. PyTorch's CPU
performance guide suggests jemalloc or tcmalloc for this; raising glibc's thresholds is the
in-process equivalent. Freed memory is then kept for reuse instead of returned to the system.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 512 * 2**20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False (and nothing changed) on other C libraries."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        done = False
    logger.debug("glibc allocator thresholds %s", "raised" if done else "left as they are")
    return done


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def compute_threads() -> int:
    """Threads for clap's own parallel CPU work: `OMP_NUM_THREADS` where it is set to a number (as torch and the BLAS
    libraries read it), else the cores this process may run on."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(value)) if value.isdigit() else available_cores()
