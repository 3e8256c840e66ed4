"""In a worker: a parent's array segment, mapped read-only (see ``_arrays``).

Unpickling a large array's handle calls :func:`attach`, so a worker imports this module, and
only this of the array machinery: no cloudpickle, no typing (see lightwork._engine._run).
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
