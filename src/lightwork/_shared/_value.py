"""``SharedValue``: one number in shared memory, with its lock."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar, overload

from .._core._errors import InvalidOptionError
from ._errors import SharedClosedError
from ._lock import SharedLock
from ._segments import Handle, Segment, attach_segment, create_segment, release

__all__ = ["SharedValue"]

V = TypeVar("V")

# Numbers travel as one native C item of this format; "e" (half) has no memoryview support.
TYPECODES = frozenset("bBhHiIlLqQnNfd?")

IntCode = Literal["b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "n", "N"]
FloatCode = Literal["f", "d"]


class SharedValue(Handle, Generic[V]):
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
        segment = create_segment("value", struct.calcsize(typecode))
        try:
            _typed_view(segment, typecode)[0] = initial
        except BaseException:
            release(segment)
            raise
        self._typecode = typecode
        self._setup(segment, owner=True)

    @classmethod
    def _attached(cls, name: str, typecode: str) -> SharedValue[Any]:
        self: SharedValue[Any] = cls.__new__(cls)
        segment = attach_segment(name)
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


def _typed_view(segment: Segment, typecode: str) -> Any:
    if segment.typed is None:
        assert segment.mmap is not None
        view: Any = memoryview(segment.mmap)
        segment.typed = view.cast(typecode)
    elif segment.typed.format != typecode:
        raise SharedClosedError(
            f"{segment.name} holds a {segment.typed.format!r}, not a {typecode!r}"
        )
    return segment.typed
