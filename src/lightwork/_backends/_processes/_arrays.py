"""Zero-copy NumPy arrays for process workers.

A large array among a task's arguments (or captured by its function, as in
``functools.partial(fn, big)``) is copied once into a shared-memory segment per call; what
travels to the workers is a small handle, and each worker maps the segment read-only instead of
unpickling its own copy. A 400 MB array sent to 8 tasks costs one copy, not 8 pickles.
This module is the parent's side; ``_mapped`` is the worker's.

    parent: ndarray --copy once--> /dev/shm segment <--mmap, read-only-- worker (per chunk)
            handle (name, shape, dtype) travels in the payload instead of the data

A fork pool (``start_method="fork"``, no initializer) does better with a very large array: no
copy at all. The array is registered, the call's tasks go only to workers forked after that
(they have the array already, its pages shared copy-on-write with the parent's), and only a
token travels. Those workers are retired when the call ends, which lets go of the parent memory
they inherited. A fork costs a few milliseconds; a copy of 64 MiB about 25.

The segments of a call are unlinked when the call ends; workers' mappings go with the arrays
that use them. The segment is created with ``SharedMemory``, so the resource tracker unlinks it
even if the parent is killed. Workers map it by name without ``SharedMemory`` (which would
register it with the tracker and warn about a 'leak' at exit, cpython#82300).

An array created with :class:`lightwork.SharedArray` already lives in shared memory and is never
copied; this module is for the plain arrays users already have.
"""

from __future__ import annotations

import io
import itertools
import os
import pickle
import sys
import threading
import weakref
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

import cloudpickle

from . import _mapped
from ._mapped import attach, inherited

# Below this, pickling the bytes is about as cheap as a segment's system calls.
ARRAY_THRESHOLD_BYTES = 1 << 20
# From this size on, fork workers inherit an array rather than map a copy of it (see above).
INHERIT_THRESHOLD_BYTES = 64 << 20

PICKLE_PROTOCOL = 5


def numpy_loaded() -> bool:
    """Arrays can only be among the arguments if NumPy was imported: don't import it here."""
    return "numpy" in sys.modules


def has_large_array(value: Any) -> bool:
    """Whether ``value`` is, or directly holds (a tuple, list or dict), a large ndarray."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.nbytes >= ARRAY_THRESHOLD_BYTES and not value.dtype.hasobject
    if isinstance(value, tuple | list):
        return any(has_large_array(v) for v in value[:16])
    if isinstance(value, dict):
        return any(has_large_array(v) for v in list(value.values())[:16])
    return False


# The inheritable arrays' registry. _mapped.inheritable maps token -> weak reference to the
# array (a worker forked while the array is alive finds it alive in its copy of our memory);
# _registered maps id(array) -> its _Lent, so that calls passing the same array (submit() in a
# loop) share one token and one set of workers.
_registry_lock = threading.Lock()
_registered: dict[int, _Lent] = {}
_tokens = itertools.count(1)


class _Lent:
    """One registered array: its token and the calls using it."""

    __slots__ = ("calls", "ref", "token")

    def __init__(self, token: int, ref: weakref.ref[Any]) -> None:
        self.token = token
        self.ref = ref  # its callback unregisters the array when it dies
        self.calls: list[CallArrays] = []


def inheritable_tokens() -> frozenset[int]:
    """The arrays that a worker forked now inherits: read just before it forks."""
    with _registry_lock:
        return frozenset(_mapped.inheritable)


class CallArrays:
    """The large arrays of one call and how each reaches the workers.

    Each is held only weakly: an array the call no longer holds (a finished chunk's argument,
    read from a stream) is released when it dies, its segment unlinked or its workers retired,
    so a long stream of arrays holds no more than the chunks in flight. ``close()`` releases
    the rest when the call ends. ``on_release(tokens)`` hears of inherited arrays no call uses
    any more, whose workers hold their memory.

    ``tokens``: the call's live inherited arrays; a worker may run the call's tasks only if it
    was forked after all of them were registered (all among its ``inheritable_tokens``).
    ``new_bytes``: the bytes of the arrays met so far, each counted once.
    """

    def __init__(
        self, inherit: bool = False, on_release: Callable[[frozenset[int]], None] | None = None
    ) -> None:
        self._inherit = inherit
        self._on_release = on_release
        self._by_array: dict[int, tuple[weakref.ref[Any], shared_memory.SharedMemory]] = {}
        self.tokens: set[int] = set()
        self.new_bytes = 0

    def reduce(self, array: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """What pickles in the array's place: a call the worker makes to get it back."""
        if self._inherit and array.nbytes >= INHERIT_THRESHOLD_BYTES:
            return inherited, (self._register(array),)
        return attach, self._handle(array)

    def _register(self, array: Any) -> int:
        key = id(array)
        with _registry_lock:
            lent = _registered.get(key)  # an entry goes as its array dies: ids stay unique
            if lent is None:
                token = next(_tokens)
                ref = weakref.ref(array, lambda _: _unregister(key))
                lent = _registered[key] = _Lent(token, ref)
                _mapped.inheritable[token] = ref
            if self not in lent.calls:
                lent.calls.append(self)
                self.tokens.add(lent.token)
                self.new_bytes += array.nbytes
        return lent.token

    def _handle(self, array: Any) -> tuple[str, tuple[int, ...], Any]:
        """Copy ``array`` into a segment (once per call) and return what a worker needs:
        the segment's name, the shape and the dtype (itself: a structured one keeps its
        fields)."""
        key = id(array)
        found = self._by_array.get(key)
        if found is None or found[0]() is not array:
            segment = shared_memory.SharedMemory(create=True, size=max(array.nbytes, 1))
            try:
                _copy_into(segment, array)
            except BaseException:
                _unlink(segment)  # a full /dev/shm, say: leave no segment behind
                raise
            found = (weakref.ref(array, lambda _: self._drop_segment(key)), segment)
            self._by_array[key] = found
            self.new_bytes += array.nbytes
        segment = found[1]
        return segment.name, array.shape, array.dtype

    def _drop_segment(self, key: int) -> None:
        found = self._by_array.pop(key, None)  # atomic: a racing close() unlinks it once
        if found is not None:
            _unlink(found[1])

    def close(self) -> None:
        """The call is over: unlink its segments, and let its inherited arrays go."""
        for key in list(self._by_array):
            self._drop_segment(key)
        released = set()
        with _registry_lock:
            for key, lent in [(k, e) for k, e in _registered.items() if self in e.calls]:
                lent.calls.remove(self)
                if not lent.calls:  # dropping the weak reference drops its callback too
                    del _registered[key], _mapped.inheritable[lent.token]
                    released.add(lent.token)
        self.tokens.clear()
        if released and self._on_release is not None:
            self._on_release(frozenset(released))

    def __len__(self) -> int:
        return len(self._by_array) + len(self.tokens)


def _unregister(key: int) -> None:
    """A registered array died (the chunks that held it are done): forget it everywhere."""
    with _registry_lock:
        lent = _registered.pop(key, None)
        if lent is None:
            return
        del _mapped.inheritable[lent.token]
    for call in lent.calls:
        call.tokens.discard(lent.token)
        if call._on_release is not None:
            call._on_release(frozenset((lent.token,)))


def _unlink(segment: shared_memory.SharedMemory) -> None:
    segment.close()
    try:
        segment.unlink()
    except FileNotFoundError:
        pass


# pwrite() calls of this size: bounded so a call can't pin a huge slice, large enough that the
# system calls cost nothing against the copy.
_WRITE_BYTES = 64 << 20


def _copy_into(segment: shared_memory.SharedMemory, array: Any) -> None:
    """The one copy of ``array``, into ``segment``."""
    import numpy as np

    if not _write_into(segment.name, array):
        view = np.ndarray(array.shape, array.dtype, buffer=segment.buf)
        view[...] = array
        del view  # release the export, so the segment can be closed later


def _write_into(name: str, array: Any) -> bool:
    """Copy a C-contiguous array into segment ``name`` by writing its file; False if not done.

    Twice as fast as assigning through the segment's mapping (400 MB: 187 against 330-350 ms,
    bench/bench_zero_copy.py's floor row then and before): the kernel fills the pages as it
    copies, instead of taking one page fault per 4 KiB.
    """
    path = f"/dev/shm/{name.lstrip('/')}"
    if not array.flags.c_contiguous or not os.path.exists(path):
        return False
    import numpy as np

    data = memoryview(array.reshape(-1).view(np.uint8))  # any dtype's bytes (datetime64 too)
    fd = os.open(path, os.O_WRONLY)
    try:
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, data[offset : offset + _WRITE_BYTES], offset)
    finally:
        os.close(fd)
    return True


def dumps_sharing(obj: Any, arrays: CallArrays) -> bytes:
    """Pickle ``obj`` with large arrays replaced by what brings them to a worker without a copy
    of its own (see :class:`CallArrays`)."""
    buffer = io.BytesIO()
    _SharingPickler(buffer, arrays).dump(obj)
    return buffer.getvalue()


def dumps_function_sharing(obj: Any, arrays: CallArrays) -> bytes:
    """Like :func:`dumps_sharing`, for functions: closures and partials holding arrays.

    By reference where workers can import the function, else by value (see
    ``lightwork._backends._processes._supervisor.dumps_function``).
    """
    from ._supervisor import needs_value

    try:
        data = dumps_sharing(obj, arrays)
    except Exception:
        pass
    else:
        if not needs_value(data):
            return data
    buffer = io.BytesIO()
    _SharingCloudPickler(buffer, arrays).dump(obj)
    return buffer.getvalue()


def _reduce_array(obj: Any, arrays: CallArrays) -> Any:
    is_array = type(obj).__module__ == "numpy" and type(obj).__name__ == "ndarray"
    if is_array and obj.nbytes >= ARRAY_THRESHOLD_BYTES and not obj.dtype.hasobject:
        return arrays.reduce(obj)
    return NotImplemented


class _SharingPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, arrays: CallArrays) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._arrays = arrays

    def reducer_override(self, obj: Any) -> Any:
        return _reduce_array(obj, self._arrays)


class _SharingCloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, arrays: CallArrays) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._arrays = arrays

    def reducer_override(self, obj: Any) -> Any:
        reduced = _reduce_array(obj, self._arrays)
        if reduced is NotImplemented:
            return super().reducer_override(obj)
        return reduced
