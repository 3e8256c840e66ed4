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

import struct

from ..._core._segment import anonymous
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
    """A worker's task slot: an anonymous shared-memory segment (lightwork._core._segment) that
    the parent creates and the worker maps, its descriptor passed like any file descriptor.

    ``context`` (the pool's multiprocessing context) is not needed: every platform gets the same
    segment.
    """

    def __init__(self, context: Any = None) -> None:
        self.segment = anonymous(8 * SLOT_SIZE)
        self.view: Slot = self.segment.view.cast("d")
        self.view[SLOT_SERIAL] = -1
        self.view[SLOT_INDEX] = NO_TASK

    def __reduce__(self) -> tuple[Any, ...]:
        return self.segment.__reduce__()  # the worker gets the mapping itself

    def close(self) -> None:
        self.view.release()
        self.segment.close()
