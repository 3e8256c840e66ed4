"""The task slot: which task a thread or worker process is running, and since when.

The engine writes it as it runs a chunk (``run_chunk``); ``lightwork.rng()`` reads the running
task's index from it, and the process backend's supervisor, for whom a worker's slot is shared
memory, reads it when the worker dies or overruns ``task_timeout``, to charge the right task.
"""

from __future__ import annotations

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import TypeAlias

    Slot: TypeAlias = "memoryview[float]"  # a task slot, as the engine and the supervisor see it

# A task slot is three doubles: the serial of the attempt being run, the index of the running
# task and time.monotonic() when it started. A process worker's slot is shared memory that its
# supervisor reads; other threads use a private one. Doubles hold task indices exactly to 2**53.
SLOT_SERIAL, SLOT_INDEX, SLOT_STARTED = range(3)
SLOT_SIZE = 3
# slot[SLOT_INDEX] outside any task, and while a chunk of several untimed tasks runs: then only
# the running thread knows which task it is in (its cursor), at no cost per task.
NO_TASK = -1
IN_CHUNK = -2


def new_slot() -> Slot:
    slot: Slot = memoryview(bytearray(8 * SLOT_SIZE)).cast("d")
    slot[SLOT_INDEX] = NO_TASK
    return slot
