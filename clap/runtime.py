"""Process-level settings that make clap's CPU work faster; the CLI applies them.

glibc serves large allocations (above a dynamic threshold of at most 32 MiB) with fresh `mmap`
pages and trims the heap eagerly, so every big temporary of a text forward is faulted in and
zeroed again: about 20% of the frozen text encoding in training on 2 cores. PyTorch's CPU
performance guide suggests jemalloc or tcmalloc for this; raising glibc's thresholds is the
in-process equivalent. Freed memory is then kept for reuse instead of returned to the system; evaluation
gives it back between units of work (`release_freed_memory`), where it would otherwise pile up.
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
    libc = _glibc()
    done = libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(
        M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    logger.debug("glibc allocator thresholds %s", "raised" if done else "left as they are")
    return done


def release_freed_memory() -> bool:
    """Give the memory glibc keeps after frees back to the system (`malloc_trim(0)`); False on other C libraries.
    Evaluation calls it after each model's protocol, each task and each task's statistics: their freed buffers,
    kept under `keep_freed_memory`'s thresholds, were not all reused by the next unit (the zero-shot task on 250k
    images kept 100-250 MB more after each model: 1.77 GB peak, 1.37 GB with a release after each) and a
    release costs milliseconds."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
    return libc is not None


def _glibc() -> ctypes.CDLL | None:
    """glibc, where this process runs on it; None elsewhere (other systems, other C libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def compute_threads() -> int:
    """Threads for clap's own parallel CPU work: `OMP_NUM_THREADS` where it is set to a number (as torch and the BLAS
    libraries read it), else the cores this process may run on."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(value)) if value.isdigit() else available_cores()
