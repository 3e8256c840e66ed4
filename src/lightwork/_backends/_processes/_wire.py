"""The messages between the supervisor and a worker, over the worker's own duplex pipe.

Parent to worker, each a pickled tuple (``RUN`` is followed by its payload as raw bytes):

    (SPEC, spec_id, cloudpickled (fn, retries, retry_on))  a function and its retry policy, once
    (DROP, spec_id)                                        forget a spec (evicted from the cache)
    (RUN, serial, spec_id, entropy, indices, per_task)     then the tasks' pickled arguments
    (STOP,)                                                finish and exit

Worker to parent, each a fixed header then a pickled payload:

    RESULT     serial, seconds  + pickle((values, {position: encoded error}))
    BAD_INPUT  serial, seconds  + pickle((what, traceback)): the arguments ("its arguments")
                                 or the function ("the function") could not be unpickled
    INIT_FAILED                 + pickle(str): the initializer's traceback
    READY                       the worker has started and initialized: it waits for work
"""

from __future__ import annotations

import mmap
import os
import struct

from ..._core._slot import IN_CHUNK, NO_TASK, SLOT_INDEX, SLOT_SERIAL, SLOT_SIZE, SLOT_STARTED

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import Any

    from ..._core._slot import Slot

__all__ = ["IN_CHUNK", "NO_TASK", "SLOT_INDEX", "SLOT_SERIAL", "SLOT_SIZE", "SLOT_STARTED"]

SPEC, DROP, RUN, STOP = range(4)
RESULT, BAD_INPUT, INIT_FAILED, READY = range(4)

# kind, attempt serial, then compute, deserialize, serialize and idle seconds since the last one.
HEADER = struct.Struct("<BQdddd")

# The worker's task slot (see lightwork._core._random) is shared memory: the supervisor reads in it
# which attempt (serial) and which task (index, -1 while unpickling) a dead worker held, and
# since when, without a message per task.


class SharedSlot:
    """A worker's task slot in shared memory, created by the parent, mapped by the worker.

    On Linux an anonymous memory file (memfd) passed to the worker like any file descriptor;
    ``multiprocessing.RawArray`` elsewhere. (RawArray's heap imports ctypes, tempfile and
    shutil, a few milliseconds that every new pool's first result would wait for.)
    """

    def __init__(self, context: Any) -> None:
        size = 8 * SLOT_SIZE
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("lightwork-slot", os.MFD_CLOEXEC)
            os.ftruncate(self.fd, size)
            self.memory: Any = mmap.mmap(self.fd, size)
        else:
            self.fd = -1
            self.memory = context.RawArray("d", SLOT_SIZE)
        self.view: Slot = memoryview(self.memory).cast("B").cast("d")
        self.view[SLOT_SERIAL] = -1
        self.view[SLOT_INDEX] = NO_TASK

    def __reduce__(self) -> tuple[Any, ...]:
        if self.fd < 0:
            return (_same, (self.memory,))
        from multiprocessing import reduction

        return (_attach_slot, (reduction.DupFd(self.fd),))

    def close(self) -> None:
        self.view.release()
        if self.fd >= 0:
            self.memory.close()
            os.close(self.fd)
            self.fd = -1


def _attach_slot(handle: Any) -> Any:
    fd = handle.detach()
    try:
        return mmap.mmap(fd, 8 * SLOT_SIZE)
    finally:
        os.close(fd)


def _same(memory: Any) -> Any:
    return memory
