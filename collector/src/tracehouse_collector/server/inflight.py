"""The bytes of requests this process holds at once, over every connection of both ports.

A receiver reserves what a request may need before reading its body (an HTTP body's
Content-Length, or the largest allowed message for gRPC, whose size is not known until it
has arrived), shrinks the reservation to the real size once read, and releases it when the
body is no longer held. A reservation that does not fit is refused at once, so the caller
answers the OTLP retryable code instead of buffering the body.
"""

from __future__ import annotations

from collections.abc import Callable


class Reservation:
    """Bytes held for one request; `release()` may be called more than once."""

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self._budget = budget
        self.size = size

    def resize(self, size: int) -> None:
        """Hold `size` bytes instead (only ever less: the body turned out smaller)."""
        size = min(size, self.size)
        self._budget._used -= self.size - size
        self.size = size

    def release(self) -> None:
        if self.size:
            self._budget._used -= self.size
            released, self.size = self.size, 0
            self._budget._released(released)


class ByteBudget:
    """A limit on reserved bytes. Event-loop only: no locking."""

    def __init__(self, limit: int, on_release: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self._used = 0
        self._on_release = on_release
        self.refused = 0  # requests refused so far, for /healthz

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, size: int) -> Reservation | None:
        """A reservation of `size` bytes, or None when it does not fit now."""
        if self._used + size > self.limit:
            self.refused += 1
            return None
        self._used += size
        return Reservation(self, size)

    def _released(self, size: int) -> None:
        if self._on_release is not None:
            self._on_release(size)
