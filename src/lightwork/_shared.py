"""Shared state across processes: ``SharedValue``, ``SharedArray`` and ``share()``.

They replace ``multiprocessing.Value`` + ``Lock`` and ``Array``, but are passed to tasks as
ordinary arguments, on every backend and start method::

    parent: owns the memory                              worker: forkserver, spawn or fork
    -----------------------                              ---------------------------------
    SharedValue("i", 0)
      creates /dev/shm/lightwork-<pid>-value-<hex>  <--- maps the same file (os.open + mmap),
      registers it with the resource tracker             once per process, cached by name
      pickles as ("lightwork-...", "i") --task arguments--> _attach_value("lightwork-...", "i")
      close() / GC / exit: unlinks the file              a crash: the kernel drops its mapping
                                                         and releases the lock it held

Every shared object is a *segment*: a file in ``/dev/shm`` (tmpfs: memory, never disk) that each
process maps with ``mmap``. The object in the parent owns it; everything else holds a handle that
pickles as the segment's name, so it travels with pickle, cloudpickle, ``functools.partial`` or
an ``initargs`` tuple, to a worker started before or after it was created. On the serial and
threads backends nothing is pickled: tasks get the parent's object itself.

Why not ``multiprocessing.Value``: its pickling is refused outside process start-up
("Synchronized objects should only be shared between processes through inheritance"), so it
cannot be a task argument for a pool; and its lock is a POSIX semaphore, which stays taken
forever when a process holding it is killed: one SIGKILLed worker deadlocks all the others.

The lock is ``flock`` on the segment's file, plus a ``threading.Lock`` per process: the kernel
releases a file lock when its holder dies, however it dies; and since a file lock belongs to an
open file, two threads using the same one would not exclude each other without the thread lock.
``flock`` rather than ``fcntl``/``lockf`` record locks: those are dropped when the process closes
*any* descriptor of the file, and ``mmap`` keeps a duplicate descriptor of its own. A killed
holder may leave the value as its last completed write; it never leaves the lock taken.

Why workers don't attach with ``multiprocessing.shared_memory.SharedMemory(name=...)``: before
Python 3.13 that registers the segment with the resource tracker (cpython#82300), and both ways
out break something. Measured on 3.11: the tracker workers share with their parent (forkserver,
spawn, and fork once the tracker runs) keeps one *set* of names, so a worker's ``unregister``
also erases the parent's registration, and the segment leaks when the parent is killed; a fork
worker started before the parent's first segment starts a tracker of its own, which unlinks the
parent's segment when that worker exits. So workers open and map the file themselves and never
touch the tracker, while the owner registers the file as SharedMemory does (a ``/dev/shm`` file
is what ``shm_open`` creates; the tracker's ``shm_unlink`` removes it). That also gives the lock
a descriptor, and lets ``close()`` drop a mapping that NumPy views still use without an error.

Lifetime: the owner releases its segment (file unlinked) on ``close()``, at the end of its
``with`` block, when it is garbage-collected, at interpreter exit, and, through the resource
tracker, when its process is killed. Workers never own anything, so a crashed worker leaks
nothing (create shared objects in the parent: one made in a task is released when the task
drops it). A worker keeps its mappings cached; it drops those whose owner has released them the
next time it attaches a new segment, or when it exits. Memory stays valid for views still using
it after a release: the kernel frees it with the last mapping.

After ``os.fork()`` (the fork start method) the child inherits the parent's open files, and an
inherited file lock would be the parent's own: the child reopens each segment and resets its
thread locks, and it never releases segments its parent owns. Space in ``/dev/shm`` is reserved
when a segment is created, so a full ``/dev/shm`` (64 MB in a default Docker container) fails
then with ``ENOSPC`` rather than later with a SIGBUS in whichever process first touches a page.

Where ``/dev/shm`` is missing (macOS) the files go to the temporary directory, and a killed
parent leaves them there: the resource tracker only knows how to remove ``/dev/shm`` entries.
"""

from __future__ import annotations

import errno
import math
import mmap
import os
import pickle
import secrets
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar, overload

from ._backends._pickling import PICKLE_PROTOCOL
from ._core._errors import InvalidOptionError, LightworkError
from ._core._scatter import Scatterable

if sys.platform != "win32":
    import fcntl

    # Bound once: the lock's fast path is a few microseconds, name lookups are a visible share.
    _flock = fcntl.flock
    _LOCK_EX, _LOCK_NB, _LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN
_get_ident = threading.get_ident

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "SharedValue",
    "SharedArray",
    "Shared",
    "share",
    "SharedLock",
    "SharedClosedError",
]

T = TypeVar("T")
V = TypeVar("V")

# tmpfs: a segment is memory, never written to disk. glibc's shm_open() creates its objects here
# too, which is why the resource tracker's shm_unlink("/name") can remove our files.
_DEV_SHM = "/dev/shm"
SHM_DIR = _DEV_SHM if os.path.isdir(_DEV_SHM) and os.access(_DEV_SHM, os.W_OK) else None
PREFIX = "lightwork-"  # every segment's name: lightwork-<creator pid>-<kind>-<random>
# A waiter with a timeout polls flock() (it has no timed form): it starts fast for the common
# short hold and backs off so a long hold costs little CPU.
POLL_FIRST_SECONDS = 0.0005
POLL_MAX_SECONDS = 0.01
# Numbers travel as one native C item of this format; "e" (half) has no memoryview support.
TYPECODES = frozenset("bBhHiIlLqQnNfd?")
# share()'s buffers start on cache-line boundaries: what NumPy would allocate for them itself.
SHARE_ALIGN = 64

IntCode = Literal["b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "n", "N"]
FloatCode = Literal["f", "d"]


class SharedClosedError(LightworkError, ValueError):
    """A shared object was used, pickled or attached after its owner released it.

    Raised by ``SharedValue``, ``SharedArray`` and ``Shared`` after ``close()`` (like the
    ``ValueError`` of a closed file), and in a worker that receives the handle of a segment its
    owner has since closed, garbage-collected, or lost when its process exited.

    >>> import pickle, lightwork
    >>> counter = lightwork.SharedValue("i")
    >>> counter.close()
    >>> try:
    ...     pickle.dumps(counter)
    ... except lightwork.SharedClosedError as error:
    ...     print(str(error).endswith("it was closed, its memory is gone"))
    True
    """


# ---- segments: one shared file, mapped in this process --------------------------------------


class _Segment:
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
_segments: dict[str, _Segment] = {}
# name -> the object share() made, as this process knows it (the owner's own, or unpickled once)
_loaded: dict[str, object] = {}
_registry_lock = threading.RLock()
_load_lock = threading.Lock()  # one share() object is unpickled at a time, and only once


def _after_fork_in_child() -> None:
    global _registry_lock, _load_lock
    _registry_lock = threading.RLock()  # another thread may have held them at fork time
    _load_lock = threading.Lock()
    for segment in _segments.values():
        segment.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _shm_dir() -> str:
    if SHM_DIR is not None:
        return SHM_DIR
    import tempfile  # only where there is no /dev/shm: keep `import lightwork` cheap

    return tempfile.gettempdir()


def _tracked() -> bool:
    return SHM_DIR == _DEV_SHM


def _create_segment(kind: str, size: int) -> _Segment:
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
    segment = _Segment(name, path, fd, size, mapping)
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


def _attach_segment(name: str) -> _Segment:
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
        segment = _segments[name] = _Segment(name, path, fd, size, mapping)
        return segment


def _drop_released() -> None:
    """Unmap the segments whose owner has released them (called with the registry lock)."""
    for name, segment in list(_segments.items()):
        if not segment.owned_by and segment.released():
            del _segments[name]
            _loaded.pop(name, None)
            segment.close()


def _release(segment: _Segment) -> None:
    """Release an owner's segment: unlink it (in the process that created it) and unmap it.

    Also the finalizer of the owning object, so it must not raise, nor refer to that object.
    """
    with _registry_lock:
        if _segments.get(segment.name) is segment:
            del _segments[segment.name]
        _loaded.pop(segment.name, None)
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


class _Handle:
    """What ``SharedValue``, ``SharedArray`` and ``Shared`` have in common: a segment, owned or
    attached, and the lifetime that goes with it."""

    _segment: _Segment
    _finalizer: weakref.finalize[[_Segment], _Handle] | None
    _closed: bool

    def _setup(self, segment: _Segment, owner: bool) -> None:
        self._segment = segment
        self._closed = False
        # The finalizer holds the segment, never self: it runs when self is collected.
        self._finalizer = weakref.finalize(self, _release, segment) if owner else None

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

    def _live_segment(self) -> _Segment:
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


# ---- the lock ------------------------------------------------------------------------------


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

    def __init__(self, segment: _Segment) -> None:
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


# ---- SharedValue ---------------------------------------------------------------------------


class SharedValue(_Handle, Generic[V]):
    """One number in shared memory, with its lock: ``multiprocessing.Value`` for task arguments.

    ``typecode_or_type`` is an ``array``-module typecode (``"i"``, ``"l"``, ``"q"``, ``"d"``,
    ``"f"``, ``"?"``, ...), ``int`` (``"q"``, 64 bits), ``float`` (``"d"``), ``bool`` or a
    ``ctypes`` type such as ``ctypes.c_int``. Create it in the parent and pass it to tasks like
    any argument, on every backend. ``.value`` reads and writes under the lock (reentrant, so
    also inside ``with shared.lock:``); a read-modify-write needs the lock held around it, or
    ``add()``. Values out of range raise ``ValueError`` instead of wrapping around.

    >>> import functools, lightwork
    >>> def increment(counter, _):
    ...     with counter.get_lock():
    ...         counter.value += 1
    >>> with lightwork.SharedValue("i", 0) as counter:
    ...     _ = lightwork.map(functools.partial(increment, counter), range(30), backend="threads")
    ...     counter.value, counter.add(12), counter
    (30, 42, SharedValue('i', 42))
    """

    _typecode: str

    @overload
    def __init__(
        self: SharedValue[bool], typecode_or_type: Literal["?"] | type[bool], initial: bool = ...
    ) -> None: ...
    @overload
    def __init__(
        self: SharedValue[int], typecode_or_type: IntCode | type[int], initial: int = ...
    ) -> None: ...
    @overload
    def __init__(
        self: SharedValue[float], typecode_or_type: FloatCode | type[float], initial: float = ...
    ) -> None: ...
    @overload
    def __init__(self: SharedValue[Any], typecode_or_type: Any, initial: Any = ...) -> None: ...

    def __init__(self, typecode_or_type: Any, initial: Any = 0) -> None:
        typecode = _typecode(typecode_or_type)
        segment = _create_segment("value", struct.calcsize(typecode))
        try:
            _typed_view(segment, typecode)[0] = initial
        except BaseException:
            _release(segment)
            raise
        self._typecode = typecode
        self._setup(segment, owner=True)

    @classmethod
    def _attached(cls, name: str, typecode: str) -> SharedValue[Any]:
        self: SharedValue[Any] = cls.__new__(cls)
        segment = _attach_segment(name)
        _typed_view(segment, typecode)
        self._typecode = typecode
        self._setup(segment, owner=False)
        return self

    @property
    def typecode(self) -> str:
        """The item's format, as ``array`` and ``struct`` spell it."""
        return self._typecode

    @property
    def lock(self) -> SharedLock:
        """The lock guarding the value, across threads and processes."""
        return self._live_segment().lock()

    def get_lock(self) -> SharedLock:
        """``multiprocessing.Value``'s name for :attr:`lock`."""
        return self.lock

    @property
    def value(self) -> V:
        """The number; reading and writing it each take the lock (unless this thread has it)."""
        segment = self._live_segment()
        with segment.lock():
            assert segment.typed is not None
            result: V = segment.typed[0]
            return result

    @value.setter
    def value(self, new: V) -> None:
        segment = self._live_segment()
        with segment.lock():
            assert segment.typed is not None
            segment.typed[0] = new

    def add(self, delta: V) -> V:
        """Add ``delta`` under the lock and return the new value: an atomic ``+=``."""
        segment = self._live_segment()
        with segment.lock():
            assert segment.typed is not None
            new: V = segment.typed[0] + delta
            segment.typed[0] = new
            return new

    def __reduce__(self) -> tuple[Callable[[str, str], SharedValue[Any]], tuple[str, str]]:
        self._check_picklable()
        return _attach_value, (self._segment.name, self._typecode)

    def __repr__(self) -> str:
        if self.closed:
            return f"<SharedValue {self._typecode!r} closed>"
        typed = self._segment.typed
        assert typed is not None
        return f"SharedValue({self._typecode!r}, {typed[0]!r})"  # unlocked: repr never waits


def _attach_value(name: str, typecode: str) -> SharedValue[Any]:
    return SharedValue._attached(name, typecode)


def _typecode(typecode_or_type: object) -> str:
    if typecode_or_type is bool:
        return "?"
    if typecode_or_type is int:
        return "q"
    if typecode_or_type is float:
        return "d"
    code = getattr(typecode_or_type, "_type_", typecode_or_type)  # ctypes.c_int._type_ == "i"
    if isinstance(code, str) and code in TYPECODES:
        return code
    raise InvalidOptionError(
        f"SharedValue needs a typecode among {''.join(sorted(TYPECODES))!r}, int, float, bool "
        f"or a ctypes number type, not {typecode_or_type!r}"
    )


def _typed_view(segment: _Segment, typecode: str) -> Any:
    if segment.typed is None:
        assert segment.mmap is not None
        view: Any = memoryview(segment.mmap)
        segment.typed = view.cast(typecode)
    elif segment.typed.format != typecode:
        raise SharedClosedError(
            f"{segment.name} holds a {segment.typed.format!r}, not a {typecode!r}"
        )
    return segment.typed


# ---- SharedArray ---------------------------------------------------------------------------


class SharedArray(_Handle):
    """A NumPy array in shared memory, writable by every worker: pass it to tasks as is.

    ``.array`` is the ``numpy.ndarray`` over the shared memory, in the parent and in workers,
    so tasks writing to it are seen by all. Give each task its own slice, or hold ``.lock``
    around updates that overlap. The memory starts zeroed; ``fill`` sets every element.
    Arrays of Python objects are refused: they would hold pointers into one process.

    >>> import lightwork
    >>> def fill_row(shared, i):
    ...     shared.array[i] = i
    >>> with lightwork.SharedArray((3, 2), "int64") as grid:
    ...     _ = lightwork.starmap(fill_row, [(grid, i) for i in range(3)], backend="threads")
    ...     grid.array.tolist()
    [[0, 0], [1, 1], [2, 2]]
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        dtype: npt.DTypeLike = "float64",
        *,
        fill: Any = None,
    ) -> None:
        shape, dtype_ = _check_array(shape, dtype)
        nbytes = math.prod(shape) * dtype_.itemsize
        segment = _create_segment("array", nbytes)
        try:
            array: np.ndarray[Any, np.dtype[Any]] = _ndarray(segment, shape, dtype_)
            if fill is not None:
                array[...] = fill
        except BaseException:
            _release(segment)
            raise
        self._array: np.ndarray[Any, np.dtype[Any]] | None = array
        self._shape, self._dtype = shape, dtype_
        self._setup(segment, owner=True)

    @classmethod
    def zeros(cls, shape: int | tuple[int, ...], dtype: npt.DTypeLike = "float64") -> SharedArray:
        """A zeroed shared array, like ``numpy.zeros`` (free: new shared memory is zero).

        >>> import lightwork
        >>> with lightwork.SharedArray.zeros(3, "int32") as a:
        ...     a.array
        array([0, 0, 0], dtype=int32)
        """
        return cls(shape, dtype)

    @classmethod
    def from_array(cls, data: npt.ArrayLike) -> SharedArray:
        """A shared copy of ``data`` (anything ``numpy.asarray`` takes), same shape and dtype.

        >>> import lightwork
        >>> with lightwork.SharedArray.from_array([[1.5, 2.5]]) as a:
        ...     a.array.shape, a.array.dtype.name, float(a.array.sum())
        ((1, 2), 'float64', 4.0)
        """
        source = _numpy().asarray(data)
        shared = cls(source.shape, source.dtype)
        shared.array[...] = source
        return shared

    @classmethod
    def _attached(cls, name: str, shape: tuple[int, ...], dtype: Any) -> SharedArray:
        numpy = _numpy()
        self = cls.__new__(cls)
        segment = _attach_segment(name)
        dtype_ = numpy.dtype(dtype)
        if math.prod(shape) * dtype_.itemsize > segment.size:
            raise SharedClosedError(f"{name} is smaller than a {shape} array of {dtype_}")
        self._array = _ndarray(segment, shape, dtype_)
        self._shape, self._dtype = tuple(shape), dtype_
        self._setup(segment, owner=False)
        return self

    @property
    def array(self) -> np.ndarray[Any, np.dtype[Any]]:
        """The ``numpy.ndarray`` view of the shared memory: writes are seen by every process."""
        self._live_segment()
        assert self._array is not None
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        dtype: np.dtype[Any] = self._dtype
        return dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self._shape) * int(self._dtype.itemsize)

    @property
    def lock(self) -> SharedLock:
        """A lock for updates that tasks must not interleave (``+=`` on shared elements)."""
        return self._live_segment().lock()

    def close(self) -> None:
        super().close()
        self._array = None  # our view would keep the memory mapped

    def __reduce__(
        self,
    ) -> tuple[Callable[[str, tuple[int, ...], Any], SharedArray], tuple[Any, ...]]:
        self._check_picklable()
        return _attach_array, (self._segment.name, self._shape, self._dtype)

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<SharedArray shape={self._shape} dtype={self._dtype}{state}>"


def _attach_array(name: str, shape: tuple[int, ...], dtype: Any) -> SharedArray:
    return SharedArray._attached(name, shape, dtype)


def _ndarray(segment: _Segment, shape: tuple[int, ...], dtype: Any) -> Any:
    """An ndarray over the segment that keeps the mapping alive for as long as it lives.

    ``numpy.ndarray(shape, dtype, buffer=...)`` keeps no buffer export (it unwraps even a
    memoryview to the mmap), so closing the mmap would leave it pointing at unmapped memory: a
    segfault on next use. ``frombuffer`` holds a memoryview, and close() then leaves the mapping
    to the array.
    """
    return _numpy().frombuffer(segment.mmap, dtype, math.prod(shape)).reshape(shape)


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise ImportError(
            "SharedArray needs NumPy: pip install numpy (or lightwork[numpy])"
        ) from None
    return numpy


def _check_array(shape: int | tuple[int, ...], dtype: npt.DTypeLike) -> tuple[tuple[int, ...], Any]:
    numpy = _numpy()
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dims):
        raise InvalidOptionError(f"shape must be non-negative ints, not {shape!r}")
    dtype_ = numpy.dtype(dtype)
    if dtype_.hasobject:
        raise InvalidOptionError(
            f"a SharedArray cannot hold Python objects (dtype {dtype_}): their pointers mean "
            "nothing in another process; use share() to broadcast objects"
        )
    return dims, dtype_


# ---- share() -------------------------------------------------------------------------------

# The segment of share(): this header, an (offset, length) per piece, then the pieces: the
# pickle and the out-of-band buffers (NumPy arrays' data), each aligned to SHARE_ALIGN.
_SHARE_HEADER = struct.Struct("<8sQ")  # magic, number of out-of-band buffers
_SHARE_PIECE = struct.Struct("<QQ")
_SHARE_MAGIC = b"lwshare1"


class Shared(_Handle, Scatterable, Generic[T]):
    """A large object sent once per worker, not once per task: make it with :func:`share`.

    In the process that shared it (and on the serial and threads backends), ``.value`` is the
    object itself. Elsewhere the handle pickles as a name of a few bytes, and ``.value``
    unpickles the object the first time a process asks, then returns that same object. NumPy
    arrays inside it are not even copied: they are read-only views of the shared memory.
    Treat the object as read-only: changes made in one worker are not seen by the others.

    >>> import pickle, lightwork
    >>> words = ["many", "hands"] * 100_000
    >>> with lightwork.share(words) as shared:
    ...     shared.value is words, len(pickle.dumps(shared)) < 100 < len(pickle.dumps(words))
    (True, True)
    """

    def __init__(self, obj: T) -> None:
        pieces = _pack(obj)
        segment = _create_segment("object", _write_pieces(None, pieces))
        try:
            assert segment.mmap is not None
            _write_pieces(memoryview(segment.mmap), pieces)
        except BaseException:
            _release(segment)
            raise
        with _registry_lock:
            # The original, for .value here and for handles unpickled here; it lives as long
            # as the segment does.
            _loaded[segment.name] = obj
        self._setup(segment, owner=True)

    @classmethod
    def _attached(cls, name: str) -> Shared[Any]:
        self: Shared[Any] = cls.__new__(cls)
        self._setup(_attach_segment(name), owner=False)
        return self

    @property
    def value(self) -> T:
        """The shared object: the original here, unpickled once per process elsewhere."""
        obj: T = _load(self._live_segment())
        return obj

    @property
    def nbytes(self) -> int:
        """The size of the pickled object in shared memory."""
        return self._segment.size

    def __reduce__(self) -> tuple[Callable[[str], Shared[Any]], tuple[str]]:
        self._check_picklable()
        return _attach_shared, (self._segment.name,)

    def __lightwork_scatter__(self) -> T:
        """For a Dask cluster, whose workers can't map this machine's memory: the object."""
        return self.value

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<Shared {self._segment.name} ({self._segment.size:,} bytes){state}>"


def share(obj: T) -> Shared[T]:
    """Put ``obj`` in shared memory once, for every worker: pass the result to tasks instead.

    ``obj`` is pickled once, here (with cloudpickle, protocol 5); each worker unpickles it at
    most once, however many tasks get the handle. Like mpire's ``shared_objects`` but for every
    start method, not only fork. Release it with ``close()`` or a ``with`` block.

    >>> import functools, lightwork
    >>> def lookup(table, key):
    ...     return table.value[key]
    >>> with lightwork.share({"a": 1, "b": 2}) as table:
    ...     lightwork.map(functools.partial(lookup, table), ["b", "a"], backend="threads")
    [2, 1]
    """
    return Shared(obj)


def _attach_shared(name: str) -> Shared[Any]:
    return Shared._attached(name)


def _pack(obj: object) -> list[memoryview]:
    """The pickle of ``obj`` then its out-of-band buffers, all as byte views."""
    import cloudpickle

    buffers: list[pickle.PickleBuffer] = []
    data = cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL, buffer_callback=buffers.append)
    return [memoryview(data), *(buffer.raw() for buffer in buffers)]


def _write_pieces(target: memoryview | None, pieces: list[memoryview]) -> int:
    """Lay the pieces out (into ``target`` if given) and return the size they need."""
    table = _SHARE_HEADER.size + _SHARE_PIECE.size * len(pieces)
    offset = _align(table)
    if target is not None:
        _SHARE_HEADER.pack_into(target, 0, _SHARE_MAGIC, len(pieces) - 1)
    for index, piece in enumerate(pieces):
        if target is not None:
            _SHARE_PIECE.pack_into(
                target, _SHARE_HEADER.size + _SHARE_PIECE.size * index, offset, piece.nbytes
            )
            target[offset : offset + piece.nbytes] = piece
        offset = _align(offset + piece.nbytes)
    return offset


def _align(offset: int) -> int:
    return -(-offset // SHARE_ALIGN) * SHARE_ALIGN


def _load(segment: _Segment) -> Any:
    """The object in a share() segment, unpickled once in this process."""
    name = segment.name
    obj = _loaded.get(name, _loaded)
    if obj is not _loaded:
        return obj
    with _load_lock:
        obj = _loaded.get(name, _loaded)
        if obj is not _loaded:
            return obj
        mapping = segment.mmap
        if mapping is None:
            raise SharedClosedError(f"the shared object {name} is closed")
        view = memoryview(mapping).toreadonly()  # NumPy arrays made from it are read-only
        magic, buffers = _SHARE_HEADER.unpack_from(view)
        if magic != _SHARE_MAGIC:
            raise SharedClosedError(f"{name} does not hold an object made by share()")
        pieces = []
        for index in range(buffers + 1):
            offset, length = _SHARE_PIECE.unpack_from(
                view, _SHARE_HEADER.size + _SHARE_PIECE.size * index
            )
            pieces.append(view[offset : offset + length])
        obj = pickle.loads(pieces[0], buffers=pieces[1:])
        with _registry_lock:
            if _segments.get(name) is segment:
                _loaded[name] = obj
        return obj
