"""Zero-copy NumPy arrays for process workers.

A large array among a task's arguments (or captured by its function, as in
``functools.partial(fn, big)``) is copied once into a shared-memory segment per call; what
travels to the workers is a small handle, and each worker maps the segment read-only instead of
unpickling its own copy. A 400 MB array sent to 8 tasks costs one copy, not 8 pickles.
This module is the parent's side; ``_mapped`` is the worker's.

    parent: ndarray --copy once--> /dev/shm segment <--mmap, read-only-- worker (per chunk)
            handle (name, shape, dtype) travels in the payload instead of the data

A fork pool (``start_method="fork"``, no initializer) does better with a very large array: no
copy at all. The array is registered, the tasks that use it go only to workers forked after
that (they have the array already, its pages shared copy-on-write with the parent's), and only a
token travels. Those workers are retired once the call is over or the array is done with, which
lets go of the parent memory they inherited. A fork costs a few milliseconds; a copy of 64 MiB
about 25. A worker sees the array as it was when it forked: as with any shared memory, a call's
arrays must not be changed while it runs.

A segment is unlinked when its array is done with (see CallArrays) or the call ends; workers'
mappings go with the arrays that use them. Segments are lightwork's one kind
(lightwork._core._segment, named ``lightwork-<pid>-arg-<hex>``): the resource tracker unlinks
them even if the parent is killed, and workers map them by name without touching the tracker.

An array created with :class:`lightwork.SharedArray` already lives in shared memory and is never
copied; this module is for the plain arrays users already have.
"""

from __future__ import annotations

import io
import itertools
import pickle
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import cloudpickle

from ..._core._segment import Segment, create
from .._pickling import PICKLE_PROTOCOL
from . import _mapped
from ._mapped import attach, inherited

# Below this, pickling the bytes is about as cheap as a segment's system calls.
ARRAY_THRESHOLD_BYTES = 1 << 20
# From this size on, fork workers inherit an array rather than map a copy of it (see above).
INHERIT_THRESHOLD_BYTES = 64 << 20


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


# Tokens name the arrays lent to fork workers; _mapped.inheritable maps each to a weak reference
# to its array, which a worker forked while the array is alive finds alive in its copy of our
# memory. Single dict operations, atomic: no lock (see CallArrays on why none may be taken).
_tokens = itertools.count(1)


class Held:
    """What one pickle's arrays need: the arrays themselves, held until the worker has read
    the pickle (one made while pickling would otherwise die at once), and the tokens of those
    lent to fork workers (the worker must have been forked after them)."""

    __slots__ = ("arrays", "tokens")

    def __init__(self) -> None:
        self.arrays: list[Any] = []
        self.tokens: set[int] = set()


class CallArrays:
    """The large arrays of one call and how each reaches the workers.

    Copied once into a segment, or (``inherit``, from INHERIT_THRESHOLD_BYTES on) lent to
    workers forked after it was registered. The call holds each array weakly; what holds it is
    the payload's :class:`Held`, until the worker has read it. An array that died (a streamed
    chunk's argument, done with) is released at the next pickle or at ``close()``: its segment
    unlinked, or its token unregistered and ``on_release(tokens)`` told, so that the workers
    holding it retire. A long stream of arrays so keeps no more than the chunks in flight.

    The weak references' callbacks only queue the dead: they can run in any thread, inside a
    garbage collection started while this thread holds a lock, so they must take none.
    ``function``: what the call's function holds (a partial's array), kept until ``close()``.
    ``new_bytes``: the bytes of the arrays met so far, each counted once.
    """

    def __init__(
        self, inherit: bool = False, on_release: Callable[[frozenset[int]], None] | None = None
    ) -> None:
        self._inherit = inherit
        self._on_release = on_release
        self._lock = threading.Lock()  # the caller's thread and the supervisor both pickle
        self._copies: dict[int, tuple[weakref.ref[Any], Segment]] = {}
        self._lent: dict[int, tuple[weakref.ref[Any], int]] = {}
        self._dead: deque[weakref.ref[Any]] = deque()
        self._closed = False
        self.function = Held()
        self.new_bytes = 0

    def reduce(self, array: Any, held: Held) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """What pickles in the array's place: a call the worker makes to get it back."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the call is over: its arrays are released")
            # First, so that an entry found below is for this very array, not for a dead
            # one whose id it now has (a weak reference is queued as its array dies).
            released = self._collect()
            held.arrays.append(array)
            if self._inherit and array.nbytes >= INHERIT_THRESHOLD_BYTES:
                token = self._lend(array)
                held.tokens.add(token)
                reduced: tuple[Callable[..., Any], tuple[Any, ...]] = (inherited, (token,))
            else:
                reduced = (attach, self._copy(array))
        self._announce(released)
        return reduced

    def needs(self, held: Held | None) -> frozenset[int]:
        """The tokens a worker must have to read a payload (and the call's function)."""
        tokens = self.function.tokens if held is None else held.tokens | self.function.tokens
        return frozenset(tokens)

    def _lend(self, array: Any) -> int:
        found = self._lent.get(id(array))
        if found is None:
            ref = weakref.ref(array, self._dead.append)
            found = self._lent[id(array)] = (ref, next(_tokens))
            _mapped.inheritable[found[1]] = ref
            self.new_bytes += array.nbytes
        return found[1]

    def _copy(self, array: Any) -> tuple[str, tuple[int, ...], Any]:
        """Copy ``array`` into a segment (once per call) and return what a worker needs:
        the segment's name, the shape and the dtype (itself: a structured one keeps its
        fields)."""
        found = self._copies.get(id(array))
        if found is None:
            # Pages are reserved up front only where the copy goes through the mapping:
            # pwrite() fails cleanly on a full /dev/shm, a store into the mapping with SIGBUS.
            segment = create("arg", array.nbytes, reserve=not array.flags.c_contiguous)
            try:
                _copy_into(segment, array)
            except BaseException:
                _unlink(segment)  # a full /dev/shm, say: leave no segment behind
                raise
            found = self._copies[id(array)] = (weakref.ref(array, self._dead.append), segment)
            self.new_bytes += array.nbytes
        segment = found[1]
        return segment.name, array.shape, array.dtype

    def _collect(self) -> set[int]:
        """Release the arrays that died; the tokens among them."""
        released: set[int] = set()
        while self._dead:
            ref = self._dead.popleft()
            for key in [k for k, (r, _) in self._copies.items() if r is ref]:
                _unlink(self._copies.pop(key)[1])
            for key in [k for k, (r, _) in self._lent.items() if r is ref]:
                token = self._lent.pop(key)[1]
                _mapped.inheritable.pop(token, None)
                released.add(token)
        return released

    def close(self) -> None:
        """The call is over: release every array it still has."""
        with self._lock:
            self._closed = True
            released = self._collect()
            for _, segment in self._copies.values():
                _unlink(segment)
            for _, token in self._lent.values():
                _mapped.inheritable.pop(token, None)
                released.add(token)
            self._copies.clear()
            self._lent.clear()
            self.function = Held()
        self._announce(released)

    def _announce(self, released: set[int]) -> None:
        if released and self._on_release is not None:
            self._on_release(frozenset(released))


def _unlink(segment: Segment) -> None:
    segment.close()
    segment.unlink()


def _copy_into(segment: Segment, array: Any) -> None:
    """The one copy of ``array``, into ``segment``."""
    import numpy as np

    if not _write_into(segment, array):
        view = np.ndarray(array.shape, array.dtype, buffer=segment.view)
        view[...] = array
        del view  # release the export, so the segment can be closed later


def _write_into(segment: Segment, array: Any) -> bool:
    """Copy a C-contiguous array into ``segment`` through its file; False if not done.

    Twice as fast as assigning through the segment's mapping (400 MB: 187 against 330-350 ms,
    bench/bench_zero_copy.py's floor row then and before): the kernel fills the pages as it
    copies, instead of taking one page fault per 4 KiB.
    """
    if not array.flags.c_contiguous:
        return False
    import numpy as np

    segment.write(memoryview(array.reshape(-1).view(np.uint8)))  # any dtype's bytes
    return True


def dumps_sharing(obj: Any, arrays: CallArrays, held: Held) -> bytes:
    """Pickle ``obj`` with large arrays replaced by what brings them to a worker without a copy
    of its own (see :class:`CallArrays`); ``held`` gets what the pickle needs kept."""
    buffer = io.BytesIO()
    _SharingPickler(buffer, arrays, held).dump(obj)
    return buffer.getvalue()


def dumps_function_sharing(obj: Any, arrays: CallArrays, held: Held) -> bytes:
    """Like :func:`dumps_sharing`, for functions: closures and partials holding arrays.

    By reference where workers can import the function, else by value (see
    ``lightwork._backends._pickling.dumps_function``).
    """
    from .._pickling import needs_value

    try:
        data = dumps_sharing(obj, arrays, held)
    except Exception:
        pass
    else:
        if not needs_value(data):
            return data
    buffer = io.BytesIO()
    _SharingCloudPickler(buffer, arrays, held).dump(obj)
    return buffer.getvalue()


def _reduce_array(obj: Any, arrays: CallArrays, held: Held) -> Any:
    is_array = type(obj).__module__ == "numpy" and type(obj).__name__ == "ndarray"
    if is_array and obj.nbytes >= ARRAY_THRESHOLD_BYTES and not obj.dtype.hasobject:
        return arrays.reduce(obj, held)
    return NotImplemented


class _SharingPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, arrays: CallArrays, held: Held) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._arrays = arrays
        self._held = held

    def reducer_override(self, obj: Any) -> Any:
        return _reduce_array(obj, self._arrays, self._held)


class _SharingCloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, arrays: CallArrays, held: Held) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._arrays = arrays
        self._held = held

    def reducer_override(self, obj: Any) -> Any:
        reduced = _reduce_array(obj, self._arrays, self._held)
        if reduced is NotImplemented:
            return super().reducer_override(obj)
        return reduced
