"""In a worker: a parent's large array, read-only, with no copy of its own (see ``_arrays``).

Unpickling a large array's handle calls :func:`attach` (a shared-memory segment) or
:func:`inherited` (a fork worker's copy-on-write view of the parent's array), so a worker
imports this module, and only this of the array machinery: no cloudpickle, no typing (see
lightwork._core._run).
"""

from __future__ import annotations

import mmap
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from multiprocessing import shared_memory
    from typing import Any


def attach(name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """In a worker: the array, read-only, on the parent's segment (unpickling calls this)."""
    import numpy as np

    path = f"/dev/shm/{name.lstrip('/')}"
    if os.path.exists(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        # The array keeps the mapping alive, and the mapping goes when the array does.
        array = np.frombuffer(mapped, dtype=np.dtype(dtype), count=int(np.prod(shape)))
        return array.reshape(shape)
    return _attach_portable(name, shape, dtype)  # no /dev/shm: macOS


# Arrays that fork workers inherit: token -> weak reference (see _arrays.CallArrays). Filled in
# the parent; a worker forked while an array is here and alive has it too, its pages shared with
# the parent's until either side writes to them.
inheritable: dict[int, Any] = {}


def inherited(token: int) -> Any:
    """In a fork worker: the parent's array as of the fork, read-only (unpickling calls this)."""
    ref = inheritable.get(token)
    array = None if ref is None else ref()
    if array is None:
        # The supervisor sends such tasks only to workers forked after the array was
        # registered: this would be a bug, and it must not pass for a missing value.
        raise LookupError(
            f"worker {os.getpid()} was forked before large array #{token} was registered"
        )
    view = array.view()
    view.flags.writeable = False
    return view


_portable: dict[str, shared_memory.SharedMemory] = {}


def _attach_portable(name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    from multiprocessing import shared_memory

    import numpy as np

    segment = _portable.get(name)
    if segment is None:
        segment = _portable[name] = shared_memory.SharedMemory(name=name)
        try:
            from multiprocessing import resource_tracker

            resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]
        except Exception:
            pass
    array = np.ndarray(shape, np.dtype(dtype), buffer=segment.buf)
    array.flags.writeable = False
    return array
