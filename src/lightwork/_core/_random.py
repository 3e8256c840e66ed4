"""Per-task random streams: the same numbers for a task whatever runs it.

Each job has an entropy (its ``seed``, or fresh entropy when no seed is given) and each task an
index: its position in the input. A task's stream is derived from ``(entropy, index)`` only,
never from the worker, the chunk or the backend, so a seeded run gives bit-identical results on
one worker or sixty-four, on threads, processes or a cluster, and unseeded streams are never
shared between workers (the duplicated-sample bug of forked NumPy generators, numpy#9650).

The engine sets :data:`task_context` around every chunk it runs, and the running task's index
in its slot (``run_chunk``).
"""

from __future__ import annotations

import operator
import random as _stdlib_random
import threading
from collections.abc import Iterator
from contextvars import ContextVar

from ._slot import IN_CHUNK, NO_TASK, SLOT_INDEX, new_slot

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import Any

    import numpy as np

    from ._slot import Slot


__all__ = ["random", "rng", "task_context"]


class _TaskContext(threading.local):
    """Which task this thread is running: set by the engine, read by rng() and random()."""

    entropy: int | None = None  # the running job's entropy; None outside a task
    slot: Slot | None = None  # slot[SLOT_INDEX] is the running task's index, or IN_CHUNK
    # With IN_CHUNK: (index of the chunk's first task, its task count, the iterator over its
    # arguments that the chunk's map pulls from): the running task is the one last pulled.
    cursor: tuple[int, int, Iterator[Any]] | None = None
    private_slot: Slot | None = None
    # (entropy, index, generator): rng() returns the same generator within one task.
    cached_numpy: tuple[int, int, Any] | None = None
    cached_random: tuple[int, int, _stdlib_random.Random] | None = None

    def enter(self, entropy: int, slot: Slot) -> tuple[Any, ...]:
        """Start running a chunk of a job: streams start afresh, even for a repeated seed."""
        index = slot[SLOT_INDEX]  # what an enclosing chunk on this slot had written in it
        saved = (self.entropy, self.slot, self.cursor, self.cached_numpy, self.cached_random)
        self.entropy, self.slot, self.cursor = entropy, slot, None
        self.cached_numpy = self.cached_random = None
        return saved, index

    def leave(self, saved: tuple[Any, ...]) -> None:
        """Back to the enclosing task, if any (a task may run a nested map)."""
        state, index = saved
        if state[1] is self.slot:  # a nested chunk on the same slot: give the index back
            self.slot[SLOT_INDEX] = index
        self.entropy, self.slot, self.cursor, self.cached_numpy, self.cached_random = state

    def restart_task(self) -> None:
        """A task runs again (a retry): its stream restarts, as on a first attempt."""
        self.cached_numpy = self.cached_random = None

    def own_slot(self) -> Slot:
        if self.private_slot is None:
            self.private_slot = new_slot()
        return self.private_slot


task_context = _TaskContext()
# An async task's (entropy, index): coroutines interleave on one thread, so each keeps its own
# in its context rather than in the thread's slot.
async_task: ContextVar[tuple[int, int] | None] = ContextVar("lightwork_async_task", default=None)


def _current_task() -> tuple[int, int]:
    in_coroutine = async_task.get()
    if in_coroutine is not None:
        return in_coroutine
    entropy, slot = task_context.entropy, task_context.slot
    index = NO_TASK if slot is None else int(slot[SLOT_INDEX])
    if index == IN_CHUNK and task_context.cursor is not None:
        first, count, arguments = task_context.cursor
        index = first + count - operator.length_hint(arguments) - 1
    if entropy is None or index < 0:
        from ._errors import LightworkError  # not at the top: a worker need not import it

        raise LightworkError(
            "lightwork.rng() and lightwork.random() give a task its own random stream, so they "
            "are only available inside a task run by lightwork (map, imap, starmap, submit)"
        )
    return entropy, index


def rng() -> np.random.Generator:
    """The running task's NumPy generator, from ``SeedSequence(seed, spawn_key=(index,))``.

    Repeated calls within one task return the same generator, so its stream continues.

    >>> import lightwork
    >>> def draw(_):
    ...     return float(lightwork.rng().random())
    >>> a = lightwork.map(draw, range(4), backend="threads", seed=42)
    >>> a == lightwork.map(draw, range(4), backend="serial", seed=42)
    True
    """
    import numpy as np

    entropy, index = _current_task()
    cached = task_context.cached_numpy
    if cached is not None and cached[0] == entropy and cached[1] == index:
        generator: np.random.Generator = cached[2]
        return generator
    sequence = np.random.SeedSequence(entropy, spawn_key=(index,))
    generator = np.random.Generator(np.random.PCG64(sequence))
    task_context.cached_numpy = (entropy, index, generator)
    return generator


def random() -> _stdlib_random.Random:
    """The running task's :class:`random.Random`, for pure-Python code such as the tutorials'.

    It is seeded from the same ``(seed, task index)`` pair as :func:`rng` (without needing
    NumPy), and repeated calls within one task return the same instance.

    >>> import lightwork
    >>> def coin(_):
    ...     return lightwork.random().random() < 0.5
    >>> lightwork.map(coin, range(6), backend="serial", seed=1) == lightwork.map(
    ...     coin, range(6), backend="threads", max_workers=3, seed=1)
    True
    """
    entropy, index = _current_task()
    cached = task_context.cached_random
    if cached is not None and cached[0] == entropy and cached[1] == index:
        return cached[2]
    import hashlib  # here, not at the top: it loads OpenSSL (3 ms), which few runs need

    digest = hashlib.blake2b(f"lightwork:{entropy}:{index}".encode(), digest_size=32).digest()
    generator = _stdlib_random.Random(int.from_bytes(digest, "little"))
    task_context.cached_random = (entropy, index, generator)
    return generator
