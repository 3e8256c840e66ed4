"""Segments: a shared file in ``/dev/shm``, mapped in this process; the storage of every
shared object, and the handle that owns or attaches one (see the package docstring)."""

from __future__ import annotations

import os
import sys
import threading
import weakref
from types import TracebackType
from typing import Any, Self

from .._core import _segment
from .._core._segment import PREFIX, SHM_DIR
from ._errors import SharedClosedError
from ._lock import SharedLock

__all__ = [
    "PREFIX",
    "SHM_DIR",
    "Handle",
    "Segment",
    "attach_segment",
    "create_segment",
    "release",
    "remember",
]


class Segment(_segment.Segment):
    """A shared object's segment (lightwork._core._segment) with what shared state adds: the
    lock, the typed view of a SharedValue, and the pid of the process that must unlink it.

    One per (process, name), found in ``_segments``, so all handles to the same shared object in
    a process share one mapping, one descriptor and one lock. The descriptor stays open: flock()
    needs it, fstat() tells whether the owner released it.
    """

    def __init__(self, base: _segment.Segment) -> None:
        assert base.mmap is not None
        super().__init__(base.name, base.path, base.fd, base.size, base.mmap)
        self.owned_by = 0  # pid of the process that must unlink it, 0 in attaching processes
        # SharedValue's one item, cast to its typecode (Any: the item type depends on it)
        self.typed: Any = None
        self._lock: SharedLock | None = None

    def lock(self) -> SharedLock:
        lock = self._lock
        if lock is None:
            with _registry_lock:
                if self._lock is None:
                    self._lock = SharedLock(self)
                lock = self._lock
        return lock

    def close(self) -> None:
        """Unmap and close; memory that NumPy views still use stays mapped until they go."""
        if self.typed is not None:
            self.typed.release()
            self.typed = None
        super().close()

    def after_fork(self) -> None:
        """In a forked child: use a file of its own, so its flock is not the parent's."""
        self.owned_by = 0
        self._lock = None  # a thread of the parent may have held it: start afresh
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            fd = -1  # released meanwhile: using the lock will say so
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd


# name -> this process's mapping of it. Guarded by an RLock: a finalizer releasing a segment may
# run from the garbage collector while this thread already holds it.
_segments: dict[str, Segment] = {}
# name -> the object share() made, as this process knows it (the owner's own, or unpickled
# once): forgotten when the segment is dropped or released (see remember()).
loaded: dict[str, object] = {}
_registry_lock = threading.RLock()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.RLock()  # another thread may have held it at fork time
    for segment in _segments.values():
        segment.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def remember(segment: Segment, obj: object) -> None:
    """Keep ``obj`` as what ``segment`` holds in this process, while it stays mapped here."""
    with _registry_lock:
        if _segments.get(segment.name) is segment:
            loaded[segment.name] = obj


def create_segment(kind: str, size: int) -> Segment:
    """A new zeroed segment of ``size`` bytes, owned by this process and mapped here."""
    if sys.platform == "win32":
        raise NotImplementedError("lightwork's shared objects need POSIX (Linux or macOS)")
    segment = Segment(_segment.create(kind, size))
    segment.owned_by = os.getpid()
    with _registry_lock:
        _segments[segment.name] = segment
    return segment


def attach_segment(name: str) -> Segment:
    """This process's mapping of the segment ``name``: cached, or opened now."""
    with _registry_lock:
        segment = _segments.get(name)
        if segment is not None and not segment.closed:
            return segment
        if not name.startswith(PREFIX) or "/" in name or name in (".", ".."):
            raise SharedClosedError(f"{name!r} is not the name of a lightwork shared object")
        _drop_released()
        try:
            segment = _segments[name] = Segment(_segment.attach(name))
        except FileNotFoundError:
            raise SharedClosedError(
                f"the shared object {name} no longer exists: its owner closed it, was "
                "garbage-collected, or its process exited (or it lives on another machine)"
            ) from None
        return segment


def _drop_released() -> None:
    """Unmap the segments whose owner has released them (called with the registry lock)."""
    for name, segment in list(_segments.items()):
        if not segment.owned_by and segment.released():
            del _segments[name]
            loaded.pop(name, None)
            segment.close()


def release(segment: Segment) -> None:
    """Release an owner's segment: unlink it (in the process that created it) and unmap it.

    Also the finalizer of the owning object, so it must not raise, nor refer to that object.
    """
    with _registry_lock:
        if _segments.get(segment.name) is segment:
            del _segments[segment.name]
        loaded.pop(segment.name, None)
        owner = segment.owned_by == os.getpid()
        segment.owned_by = 0
        segment.close()
    if owner:
        segment.unlink()
    # else a forked child's copy of its parent's object: the parent releases it


class Handle:
    """What ``SharedValue``, ``SharedArray`` and ``Shared`` have in common: a segment, owned or
    attached, and the lifetime that goes with it."""

    _segment: Segment
    _finalizer: weakref.finalize[[Segment], Handle] | None
    _closed: bool

    def _setup(self, segment: Segment, owner: bool) -> None:
        self._segment = segment
        self._closed = False
        # The finalizer holds the segment, never self: it runs when self is collected.
        self._finalizer = weakref.finalize(self, release, segment) if owner else None

    @property
    def name(self) -> str:
        """The segment's name: its file in ``/dev/shm``."""
        return self._segment.name

    @property
    def closed(self) -> bool:
        """Whether this object (or, in a worker, its owner) has released the memory."""
        return self._closed or self._segment.closed

    def close(self) -> None:
        """Release the memory now: the owner unlinks it; in a worker, only this handle closes.

        Idempotent. Tasks still using it keep their mapping until they drop it.
        """
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    def _live_segment(self) -> Segment:
        if self.closed:
            raise SharedClosedError(f"{self._describe()} is closed")
        return self._segment

    def _describe(self) -> str:
        return f"{type(self).__name__} {self._segment.name}"

    def _check_picklable(self) -> None:
        if self.closed:
            raise SharedClosedError(
                f"cannot send {self._describe()} to a task: it was closed, its memory is gone"
            )
