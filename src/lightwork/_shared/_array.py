"""``SharedArray``: a NumPy array in shared memory, writable by every worker."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._errors import InvalidOptionError
from ._errors import SharedClosedError
from ._lock import SharedLock
from ._segments import Handle, Segment, attach_segment, create_segment, release

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SharedArray"]


class SharedArray(Handle):
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
        segment = create_segment("array", nbytes)
        try:
            array: np.ndarray[Any, np.dtype[Any]] = _ndarray(segment, shape, dtype_)
            if fill is not None:
                array[...] = fill
        except BaseException:
            release(segment)
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
        segment = attach_segment(name)
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


def _ndarray(segment: Segment, shape: tuple[int, ...], dtype: Any) -> Any:
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
