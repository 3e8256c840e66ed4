"""Death attribution: which task a dead worker is charged with, and what runs again.

When a worker's process ends unexpectedly (or the supervisor killed it for overrunning
``task_timeout``), the supervisor knows three things, and :func:`attribute_death` decides from
them alone, touching no process:

- the attempts the worker held, in send order, which is the order it runs them: the first is
  the one it was in, if any; the others were sent ahead and never begun;
- what the worker's task slot says (see lightwork._core._slot): the serial of the attempt it
  last began, and the task it was in: an index; ``NO_TASK`` while it read the arguments;
  ``IN_CHUNK`` while it ran several untimed tasks without naming each;
- for a worker killed for a deadline, the index of the task that overran.

The cases, in the order they are tested:

    slot serial < 0 (it never began one)   NEVER_STARTED  requeue everything as it was; the
                                                          start-up is to blame (see Supervisor)
    it held nothing                        NOTHING_HELD   nothing to do
    slot serial is not the first's         BETWEEN        it died between attempts: requeue
                                                          everything as it was, charge nobody
    slot index IN_CHUNK                    IN_CHUNK       re-run the first attempt naming each
                                                          task, charging none now: the one at
                                                          fault dies again and is charged then
    NO_TASK, several tasks                 UNPICKLING     it died reading the arguments: re-run
                                                          them one by one to find whose
    a named task (or a single-task         TASK           requeue the tasks before it (done, but
    attempt), or the task that overran                    their results are lost); charge it one
                                                          retry: it and the rest run again,
                                                          naming each; with none left it fails
                                                          and the rest run again

In every case the attempts sent ahead are requeued after, unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection

from ..._core._slot import IN_CHUNK
from ..._core._tasks import Attempt, Chunk


class Blame(enum.Enum):
    """Where the worker was when it died (see the module's table)."""

    NEVER_STARTED = "died before beginning any attempt"
    NOTHING_HELD = "died holding no attempt"
    BETWEEN = "died between attempts"
    IN_CHUNK = "died in a chunk run that names no task"
    UNPICKLING = "died reading the arguments of several tasks"
    TASK = "died on a known task"


class Verdict:
    """What to do about one death."""

    __slots__ = ("blame", "charged", "requeue", "retried", "unattributed")

    def __init__(
        self,
        blame: Blame,
        requeue: list[Attempt],
        charged: int | None = None,
        retried: bool = False,
        unattributed: tuple[int, int] | None = None,
    ) -> None:
        self.blame = blame
        # Attempts to run again, in this order, ahead of all other waiting work.
        self.requeue = requeue
        self.charged = charged  # the chunk position of the task charged with the death (TASK)
        self.retried = retried  # it had a retry left (it is in requeue); else it is to fail
        # (lo, hi) of the first attempt when one of its tasks died unnamed (IN_CHUNK): that
        # task is charged later, and its error counts this death too.
        self.unattributed = unattributed

    @property
    def failed(self) -> int | None:
        """The position of the task to fail with the death's error, if any."""
        return None if self.retried else self.charged

    def __repr__(self) -> str:
        return (
            f"Verdict({self.blame.name}, requeue={len(self.requeue)} attempts, "
            f"charged={self.charged}, retried={self.retried})"
        )


def attribute_death(
    inflight: Collection[tuple[int, Attempt]],
    slot_serial: float,
    slot_index: int,
    overran: int | None = None,
    charge_retry: Callable[[Chunk, int], bool] = Chunk.charge_retry,
) -> Verdict:
    """Decide what a worker's death means for the attempts it held.

    ``inflight``: (serial, attempt) pairs in send order; ``slot_serial``, ``slot_index``: its
    task slot as it died; ``overran``: the index of the task it was killed for overrunning, if
    it was. ``charge_retry``: the retry rule (``Chunk.charge_retry``), the only thing called:
    it spends one retry of a task and says whether the task may run again.
    """
    if slot_serial < 0:
        return Verdict(Blame.NEVER_STARTED, [attempt for _, attempt in inflight])
    if not inflight:
        return Verdict(Blame.NOTHING_HELD, [])
    (serial, attempt), *sent_ahead = inflight
    ahead = [held for _, held in sent_ahead]
    chunk = attempt.chunk
    if overran is not None:
        slot_serial, slot_index = serial, overran
    if slot_serial != serial:
        return Verdict(Blame.BETWEEN, [attempt, *ahead])
    if slot_index == IN_CHUNK:
        rerun = Attempt(chunk, attempt.lo, attempt.hi, attempt.payload, True, attempt.held)
        return Verdict(Blame.IN_CHUNK, [rerun, *ahead], unattributed=(attempt.lo, attempt.hi))
    slot_position = slot_index - chunk.indices.start if slot_index >= 0 else -1
    if slot_position < 0 and len(attempt) > 1:
        singly = [Attempt(chunk, p, p + 1) for p in range(attempt.lo, attempt.hi)]
        return Verdict(Blame.UNPICKLING, [*singly, *ahead])
    position = max(slot_position, attempt.lo)
    requeue: list[Attempt] = []
    if attempt.lo < position:
        requeue.append(Attempt(chunk, attempt.lo, position))  # done, but results lost
    retried = charge_retry(chunk, position)
    if retried:
        # Still naming each task: if this one dies again, it is charged at once.
        requeue.append(Attempt(chunk, position, attempt.hi, per_task=True))
    elif position + 1 < attempt.hi:
        requeue.append(Attempt(chunk, position + 1, attempt.hi))
    return Verdict(Blame.TASK, [*requeue, *ahead], position, retried)
