"""``share()``: a large object pickled once into shared memory, unpickled once per worker."""

from __future__ import annotations

import os
import pickle
import struct
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .._backends._pickling import PICKLE_PROTOCOL
from .._core._scatter import Scatterable
from ._errors import SharedClosedError
from ._segments import Handle, Segment, attach_segment, create_segment, loaded, release, remember

__all__ = ["Shared", "share"]

T = TypeVar("T")

# share()'s buffers start on cache-line boundaries: what NumPy would allocate for them itself.
SHARE_ALIGN = 64


# The segment of share(): this header, an (offset, length) per piece, then the pieces: the
# pickle and the out-of-band buffers (NumPy arrays' data), each aligned to SHARE_ALIGN.
_SHARE_HEADER = struct.Struct("<8sQ")  # magic, number of out-of-band buffers
_SHARE_PIECE = struct.Struct("<QQ")
_SHARE_MAGIC = b"lwshare1"

_load_lock = threading.Lock()  # one share() object is unpickled at a time, and only once


def _after_fork_in_child() -> None:
    global _load_lock
    _load_lock = threading.Lock()  # another thread may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Shared(Handle, Scatterable, Generic[T]):
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
        segment = create_segment("object", _write_pieces(None, pieces))
        try:
            assert segment.mmap is not None
            _write_pieces(memoryview(segment.mmap), pieces)
        except BaseException:
            release(segment)
            raise
        # The original, for .value here and for handles unpickled here; it lives as long as the
        # segment does.
        remember(segment, obj)
        self._setup(segment, owner=True)

    @classmethod
    def _attached(cls, name: str) -> Shared[Any]:
        self: Shared[Any] = cls.__new__(cls)
        self._setup(attach_segment(name), owner=False)
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


def _load(segment: Segment) -> Any:
    """The object in a share() segment, unpickled once in this process."""
    name = segment.name
    obj = loaded.get(name, loaded)
    if obj is not loaded:
        return obj
    with _load_lock:
        obj = loaded.get(name, loaded)
        if obj is not loaded:
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
        remember(segment, obj)
        return obj
