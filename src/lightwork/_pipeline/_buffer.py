"""The bounded buffer between two stages of a pipeline."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["END", "Buffer"]

END: Any = object()  # what a buffer's get() returns once it is finished or stopped


class Buffer:
    """A bounded FIFO between two threads: ``put`` waits while full, ``get`` while empty.

    One thread puts and one gets, and the buffer cannot be full and empty at once, so at most
    one of them waits and ``notify()`` always wakes the right one. ``stop()`` wakes both.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Any] = deque()  # e.g. deque([b'msg 41', b'msg 42'])
        self._cond = threading.Condition(threading.Lock())
        self._finished = False  # the producer has put its last item
        self._stopped = False  # the run stopped: put drops its item, get returns END

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any) -> float | None:
        """Append ``item``: the seconds spent waiting for room, or None if the run stopped."""
        with self._cond:
            waited = 0.0
            if len(self._items) >= self.capacity and not self._stopped:
                started = time.perf_counter()
                while len(self._items) >= self.capacity and not self._stopped:
                    self._cond.wait()
                waited = time.perf_counter() - started
            if self._stopped:
                return None
            self._items.append(item)
            self._cond.notify()
            return waited

    def get(self) -> tuple[Any, float]:
        """The next item, or END once finished and empty, or stopped; and the seconds waited."""
        with self._cond:
            waited = 0.0
            if not self._items and not self._finished and not self._stopped:
                started = time.perf_counter()
                while not self._items and not self._finished and not self._stopped:
                    self._cond.wait()
                waited = time.perf_counter() - started
            if self._stopped or not self._items:
                return END, waited
            item = self._items.popleft()
            self._cond.notify()
            return item, waited

    def finish(self) -> None:
        """No more items will come: get() returns END once the buffer is empty."""
        with self._cond:
            self._finished = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
