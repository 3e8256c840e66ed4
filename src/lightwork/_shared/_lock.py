"""The lock of a shared object: ``flock`` on its file plus a thread lock (see the package
docstring for why not a POSIX semaphore, nor ``fcntl`` record locks)."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

from ._errors import SharedClosedError

if sys.platform != "win32":
    import fcntl

    # Bound once: the lock's fast path is a few microseconds, name lookups are a visible share.
    _flock = fcntl.flock
    _LOCK_EX, _LOCK_NB, _LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN
_get_ident = threading.get_ident

if TYPE_CHECKING:
    from ._segments import Segment

__all__ = ["SharedLock"]

# A waiter with a timeout polls flock() (it has no timed form): it starts fast for the common
# short hold and backs off so a long hold costs little CPU.
POLL_FIRST_SECONDS = 0.0005
POLL_MAX_SECONDS = 0.01


class SharedLock:
    """A reentrant lock shared by every thread of every process using one shared object.

    It is ``flock`` on the object's file plus a thread lock: the kernel releases it when a
    holder dies, so a killed worker never deadlocks the others (a ``multiprocessing.Lock``
    would stay taken). Used like ``multiprocessing.RLock``; get one from
    ``SharedValue.lock``, ``SharedValue.get_lock()`` or ``SharedArray.lock``.

    >>> from lightwork import SharedValue
    >>> with SharedValue("i", 1) as balance:
    ...     with balance.get_lock():
    ...         balance.value -= 1
    ...     balance.lock.acquire(timeout=1.0), balance.lock.release(), balance.value
    (True, None, 0)
    """

    def __init__(self, segment: Segment) -> None:
        self._segment = segment
        self._mutex = threading.Lock()  # file locks don't exclude threads sharing one file
        self._owner: int | None = None  # the holding thread's ident
        self._depth = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock (again, if this thread holds it); False if not within ``timeout``.

        ``timeout`` is in seconds; ``None`` or a negative number waits as long as it takes.
        """
        me = _get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        if not blocking or (timeout is not None and timeout >= 0):
            return self._acquire_within(me, blocking, timeout)
        self._mutex.acquire()
        try:
            _flock(self._fd(), _LOCK_EX)  # waits in the kernel, without the GIL
        except BaseException:
            self._mutex.release()
            raise
        self._owner, self._depth = me, 1
        return True

    def release(self) -> None:
        """Release one level; the last one lets other threads and processes in."""
        if self._owner != _get_ident():
            raise RuntimeError("cannot release a SharedLock that this thread does not hold")
        self._depth -= 1
        if self._depth:
            return
        self._owner = None
        try:
            fd = self._segment.fd
            if fd >= 0:  # closed while held: closing the file released the lock
                _flock(fd, _LOCK_UN)
        finally:
            self._mutex.release()

    def _fd(self) -> int:
        fd = self._segment.fd
        if fd < 0:
            raise SharedClosedError(f"the shared object {self._segment.name} is closed")
        return fd

    def _acquire_within(self, me: int, blocking: bool, timeout: float | None) -> bool:
        """acquire() without blocking, or with a timeout: flock() has no timed form, so poll."""
        wait = 0.0 if timeout is None else timeout
        deadline = time.monotonic() + wait
        if not (self._mutex.acquire(timeout=wait) if blocking else self._mutex.acquire(False)):
            return False
        try:
            fd = self._fd()
            delay = POLL_FIRST_SECONDS
            while True:
                try:
                    _flock(fd, _LOCK_EX | _LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                remaining = deadline - time.monotonic()
                if not blocking or remaining <= 0:
                    self._mutex.release()
                    return False
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, POLL_MAX_SECONDS)
        except BaseException:
            self._mutex.release()
            raise
        self._owner, self._depth = me, 1
        return True

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        held = "held by this process" if self._owner is not None else "not held here"
        return f"<SharedLock {self._segment.name} ({held})>"
