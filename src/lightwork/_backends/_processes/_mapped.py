"""In a worker: a parent's large array, read-only, with no copy of its own (see ``_arrays``).

Unpickling a large array's handle calls :func:`attach` (a shared-memory segment, see
lightwork._core._segment) or :func:`inherited` (a fork worker's copy-on-write view of the
parent's array), so a worker imports this module, and only this of the array machinery: no
cloudpickle, no typing (see lightwork._core._run).
"""

from __future__ import annotations

import os

from ..._core import _segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def attach(name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """In a worker: the array, read-only, on the parent's segment (unpickling calls this)."""
    import numpy as np

    # Read-only, and never registered with the resource tracker: the parent owns the segment.
    # The array keeps the mapping alive, and the mapping goes when the array does.
    mapped = _segment.attach(name, writable=False, keep_fd=False).mmap
    assert mapped is not None
    array = np.frombuffer(mapped, dtype=np.dtype(dtype), count=int(np.prod(shape)))
    return array.reshape(shape)


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
