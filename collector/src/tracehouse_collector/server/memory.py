"""Memory: what the machine or container allows, and giving memory back after a spike.

glibc keeps freed memory in its arenas; after a burst of large requests the process would
stay at its peak size. Large blocks are therefore mapped on their own (freed straight back to
the system), and `Trimmer` calls malloc_trim once the bytes in flight fall back after a large
request. Both are no-ops where glibc is not the allocator.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from pathlib import Path

log = logging.getLogger("tracehouse.memory")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks from this size up get a mapping of their own. A fixed value also stops glibc from
# raising the threshold after the first large free (its dynamic default goes up to 32 MiB).
MMAP_THRESHOLD = 256 * 1024
# After a request of at least this many bytes, trim once the burst is over.
TRIM_AFTER_BYTES = 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only; musl and others lack it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def configure_allocator() -> bool:
    """Map large blocks separately and trim the heap top eagerly; True where glibc took it."""
    if _LIBC is None:
        return False
    ok = _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok &= _LIBC.mallopt(_M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD) == 1
    return bool(ok)


def trim() -> None:
    """Give free heap memory back to the system (glibc malloc_trim)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class Trimmer:
    """Trims at most once per `interval_s`, after large requests, from the event loop."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._pending: asyncio.TimerHandle | None = None

    def released(self, size: int) -> None:
        if size < TRIM_AFTER_BYTES or self._pending is not None or _LIBC is None:
            return
        loop = asyncio.get_running_loop()
        self._pending = loop.call_later(self.interval_s, self._run)

    def _run(self) -> None:
        self._pending = None
        trim()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def _cgroup_limit() -> int | None:
    """The container's memory limit in bytes (cgroup v2, then v1), or None."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(raw)
    return None


def _physical() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes() -> int:
    """What this process may use: the container limit, else the machine's memory."""
    limits = [v for v in (_cgroup_limit(), _physical()) if v]
    return min(limits) if limits else 8 * 1024**3


def rss_bytes() -> int:
    """This process's resident memory (Linux), for logs and tests; 0 where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")
