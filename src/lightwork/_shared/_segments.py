"""Segments: a shared file in ``/dev/shm``, mapped in this process; the storage of every
shared object, and the handle that owns or attaches one (see the package docstring)."""

from __future__ import annotations

import errno
import mmap
import os
import secrets
import sys
import threading
import weakref
from types import TracebackType
from typing import Any, Self

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


# tmpfs: a segment is memory, never written to disk. glibc's shm_open() creates its objects here
# too, which is why the resource tracker's shm_unlink("/name") can remove our files.
_DEV_SHM = "/dev/shm"
SHM_DIR = _DEV_SHM if os.path.isdir(_DEV_SHM) and os.access(_DEV_SHM, os.W_OK) else None
PREFIX = "lightwork-"  # every segment's name: lightwork-<creator pid>-<kind>-<random>


class Segment:
    """A shared file mapped in this process: the storage of every shared object.

    One per (process, name), found in ``_segments``, so all handles to the same shared object in
    a process share one mapping, one descriptor and one lock.
    """

    def __init__(self, name: str, path: str, fd: int, size: int, mapping: mmap.mmap) -> None:
        self.name = name
        self.path = path
        self.fd = fd  # kept open: flock() needs it, fstat() tells whether the owner released it
        self.size = size
        self.mmap: mmap.mmap | None = mapping
        self.owned_by = 0  # pid of the process that must unlink it, 0 in attaching processes
        # SharedValue's one item, cast to its typecode (Any: the item type depends on it)
        self.typed: Any = None
        self._lock: SharedLock | None = None

    @property
    def closed(self) -> bool:
        return self.mmap is None

    def lock(self) -> SharedLock:
        lock = self._lock
        if lock is None:
            with _registry_lock:
                if self._lock is None:
                    self._lock = SharedLock(self)
                lock = self._lock
        return lock

    def released(self) -> bool:
        """Whether the owner has unlinked the file: this mapping is the last use of it."""
        if self.fd < 0:
            return True
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return True

    def close(self) -> None:
        """Unmap and close; memory that NumPy views still use stays mapped until they go."""
        if self.typed is not None:
            self.typed.release()
            self.typed = None
        mapping, self.mmap = self.mmap, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # views hold the mapping alive; it is unmapped when the last one dies
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

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


def _shm_dir() -> str:
    if SHM_DIR is not None:
        return SHM_DIR
    import tempfile  # only where there is no /dev/shm: keep `import lightwork` cheap

    return tempfile.gettempdir()


def _tracked() -> bool:
    return SHM_DIR == _DEV_SHM


def create_segment(kind: str, size: int) -> Segment:
    """A new zeroed segment of ``size`` bytes, owned by this process and mapped here."""
    if sys.platform == "win32":
        raise NotImplementedError("lightwork's shared objects need POSIX (Linux or macOS)")
    name = f"{PREFIX}{os.getpid()}-{kind}-{secrets.token_hex(8)}"
    path = os.path.join(_shm_dir(), name)
    length = max(size, 1)  # mmap refuses an empty file; a zero-size array still needs one
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, length)
        _reserve(fd, length, path)
        mapping = mmap.mmap(fd, length)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    segment = Segment(name, path, fd, size, mapping)
    segment.owned_by = os.getpid()
    if _tracked():
        from multiprocessing import resource_tracker

        # As SharedMemory(create=True) does: if this process is killed, the tracker (which
        # outlives it) unlinks the file.
        resource_tracker.register("/" + name, "shared_memory")
    with _registry_lock:
        _segments[name] = segment
    return segment


def _reserve(fd: int, length: int, path: str) -> None:
    """Allocate the pages now: a full tmpfs fails here, not with SIGBUS on first write."""
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, length)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            free = os.statvfs(path)
            raise OSError(
                errno.ENOSPC,
                f"no room for {length:,} bytes of shared memory in {os.path.dirname(path)} "
                f"({free.f_bavail * free.f_frsize:,} bytes free); in a Docker container, "
                "raise it with --shm-size",
            ) from error
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def attach_segment(name: str) -> Segment:
    """This process's mapping of the segment ``name``: cached, or opened now."""
    with _registry_lock:
        segment = _segments.get(name)
        if segment is not None and not segment.closed:
            return segment
        if not name.startswith(PREFIX) or "/" in name or name in (".", ".."):
            raise SharedClosedError(f"{name!r} is not the name of a lightwork shared object")
        _drop_released()
        path = os.path.join(_shm_dir(), name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise SharedClosedError(
                f"the shared object {name} no longer exists: its owner closed it, was "
                "garbage-collected, or its process exited (or it lives on another machine)"
            ) from None
        try:
            size = os.fstat(fd).st_size
            mapping = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        segment = _segments[name] = Segment(name, path, fd, size, mapping)
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
    if not owner:
        return  # a forked child's copy of its parent's object: the parent releases it
    try:
        os.unlink(segment.path)
    except FileNotFoundError:
        pass
    if _tracked():
        try:
            from multiprocessing import resource_tracker

            resource_tracker.unregister("/" + segment.name, "shared_memory")
        except Exception:
            pass  # at worst the tracker warns at exit about a file that is already gone


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
