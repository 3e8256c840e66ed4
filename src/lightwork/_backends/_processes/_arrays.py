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


# The inheritable arrays' registry: _mapped.inheritable maps token -> array (what a forked
# worker finds); this maps id(array) -> [token, number of calls using it], so that calls
# passing the same array (submit() in a loop) share one token and one set of workers.
_registry_lock = threading.Lock()
_registered: dict[int, list[int]] = {}
_tokens = itertools.count(1)


def inheritable_tokens() -> frozenset[int]:
    """The arrays that a worker forked now inherits: read just before it forks."""
    with _registry_lock:
        return frozenset(_mapped.inheritable)


class CallArrays:
    """The large arrays of one call and how each reaches the workers; ``close()`` releases them.

    ``tokens``: the inherited arrays' tokens; a worker may run the call's tasks only if it was
    forked after all of them were registered (they are all among its ``inheritable_tokens``).
    """

    def __init__(self, inherit: bool = False) -> None:
        self._inherit = inherit
        self._by_array: dict[int, tuple[Any, shared_memory.SharedMemory]] = {}
        self.tokens: set[int] = set()

    def reduce(self, array: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """What pickles in the array's place: a call the worker makes to get it back."""
        if self._inherit and array.nbytes >= INHERIT_THRESHOLD_BYTES:
            return inherited, (self._register(array),)
        return attach, self._handle(array)

    def _register(self, array: Any) -> int:
        with _registry_lock:
            entry = _registered.get(id(array))  # the registry holds the array: ids stay unique
            if entry is None:
                entry = _registered[id(array)] = [next(_tokens), 0]
                _mapped.inheritable[entry[0]] = array
            token = entry[0]
            if token not in self.tokens:
                self.tokens.add(token)
                entry[1] += 1
        return token

    def _handle(self, array: Any) -> tuple[str, tuple[int, ...], Any]:
        """Copy ``array`` into a segment (once per call) and return what a worker needs:
        the segment's name, the shape and the dtype (itself: a structured one keeps its
        fields)."""
        found = self._by_array.get(id(array))
        if found is None or found[0] is not array:
            segment = shared_memory.SharedMemory(create=True, size=max(array.nbytes, 1))
            try:
                _copy_into(segment, array)
            except BaseException:
                segment.close()  # a full /dev/shm, say: leave no segment behind
                segment.unlink()
                raise
            found = (array, segment)  # holding the array keeps id(array) from being reused
            self._by_array[id(array)] = found
        segment = found[1]
        return segment.name, array.shape, array.dtype

    def close(self) -> frozenset[int]:
        """Unlink the segments; return the tokens of the arrays that no call uses any more."""
        for _, segment in self._by_array.values():
            segment.close()
            try:
                segment.unlink()
            except FileNotFoundError:
                pass
        self._by_array.clear()
        released = set()
        with _registry_lock:
            for token in self.tokens:
                key = id(_mapped.inheritable[token])
                _registered[key][1] -= 1
                if _registered[key][1] == 0:
                    del _registered[key], _mapped.inheritable[token]
                    released.add(token)
        self.tokens.clear()
        return frozenset(released)

    def __len__(self) -> int:
        return len(self._by_array) + len(self.tokens)


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
