"""Death attribution, without killing anything: which task a dead worker is charged with and
what runs again, for each thing its task slot can say (lightwork._backends._processes._deaths).

Every row: a worker held attempt A (serial 7: tasks 10..13 of the input, chunk positions 0..3)
and, sent ahead, attempt B (serial 8: another chunk's two tasks); its slot said ``slot`` as it
died. ``requeue`` lists what runs again, in order: "A" and "B" unchanged, "A0-2" a new attempt
of A's chunk positions 0 and 1, with a "*" if it names each task in the slot as it runs.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest

from lightwork._backends._processes._deaths import Blame, attribute_death
from lightwork._core._slot import IN_CHUNK, NO_TASK
from lightwork._core._tasks import Attempt, Chunk

A_SERIAL, B_SERIAL = 7, 8


class Row(NamedTuple):
    slot: tuple[int, int]  # (serial, task index) as the worker's slot said
    blame: Blame
    requeue: list[str]
    charged: int | None = None  # chunk position charged with the death
    retried: bool = False  # it had a retry left
    retries: int = 1  # the job's retries
    used: int = 0  # retries the charged task has spent already
    overran: int | None = None  # the task the worker was killed for overrunning
    a: tuple[int, int] = (0, 4)  # A's positions in its chunk
    held: bool = True  # whether the worker held anything
    ahead: bool = True  # whether B was sent ahead


ROWS = {
    "died before beginning any attempt (a start-up death)": Row(
        (-1, NO_TASK), Blame.NEVER_STARTED, ["A", "B"]
    ),
    "died holding nothing": Row((A_SERIAL, NO_TASK), Blame.NOTHING_HELD, [], held=False),
    "died between attempts": Row((A_SERIAL - 1, 3), Blame.BETWEEN, ["A", "B"]),
    "died in a chunk run that names no task": Row(
        (A_SERIAL, IN_CHUNK), Blame.IN_CHUNK, ["A0-4*", "B"]
    ),
    "died unpickling the arguments of several tasks": Row(
        (A_SERIAL, NO_TASK), Blame.UNPICKLING, ["A0-1", "A1-2", "A2-3", "A3-4", "B"]
    ),
    "died unpickling the arguments of one task": Row(
        (A_SERIAL, NO_TASK), Blame.TASK, ["A2-3*", "B"], charged=2, retried=True, a=(2, 3)
    ),
    "died on a named task with a retry left": Row(
        (A_SERIAL, 12), Blame.TASK, ["A0-2", "A2-4*", "B"], charged=2, retried=True
    ),
    "died on a named task, retries=0": Row(
        (A_SERIAL, 12), Blame.TASK, ["A0-2", "A3-4", "B"], charged=2, retries=0
    ),
    "died on a named task whose retry is spent": Row(
        (A_SERIAL, 12), Blame.TASK, ["A0-2", "A3-4", "B"], charged=2, used=1
    ),
    "died on the last task, none left": Row(
        (A_SERIAL, 13), Blame.TASK, ["A0-3", "B"], charged=3, retries=0
    ),
    "died on the first task of a re-run": Row(
        (A_SERIAL, 12), Blame.TASK, ["A2-4*", "B"], charged=2, retried=True, a=(2, 4)
    ),
    "killed for overrunning task_timeout, a retry left": Row(
        (A_SERIAL, 11), Blame.TASK, ["A0-1", "A1-4*", "B"], charged=1, retried=True, overran=11
    ),
    "killed for overrunning task_timeout, none left": Row(
        (A_SERIAL, 11), Blame.TASK, ["A0-1", "A2-4", "B"], charged=1, retries=0, overran=11
    ),
    "killed for overrunning: that task, whatever the slot says since": Row(
        (A_SERIAL - 1, NO_TASK),
        Blame.TASK,
        ["A2-4*"],
        charged=2,
        retried=True,
        overran=12,
        a=(2, 4),
        ahead=False,
    ),
}


def make_chunk(retries: int, start: int, size: int) -> Chunk:
    job: Any = SimpleNamespace(options=SimpleNamespace(retries=retries))
    return Chunk(job, 0, range(start, start + size), list(range(size)))


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_a_death_is_attributed_as_its_table_row_says(row: Row) -> None:
    chunk_a = make_chunk(row.retries, 10, 4)
    chunk_b = make_chunk(row.retries, 50, 2)
    if row.charged is not None and row.used:
        chunk_a.retries_used[row.charged] = row.used
    a = Attempt(chunk_a, *row.a, payload=b"A's arguments")
    b = Attempt(chunk_b, 0, 2, payload=b"B's arguments")
    inflight = deque([(A_SERIAL, a), (B_SERIAL, b)] if row.ahead else [(A_SERIAL, a)])
    if not row.held:
        inflight.clear()

    verdict = attribute_death(inflight, *row.slot, overran=row.overran)

    assert verdict.blame is row.blame
    assert [describe(attempt, a, b) for attempt in verdict.requeue] == row.requeue
    assert (verdict.charged, verdict.retried) == (row.charged, row.retried)
    if row.charged is not None and row.retried:
        assert chunk_a.retries_used == {row.charged: row.used + 1}  # one retry spent
    else:
        assert chunk_a.retries_used == ({row.charged: row.used} if row.used else {})
    assert verdict.failed == (None if row.retried else row.charged)
    assert verdict.unattributed == (row.a if row.blame is Blame.IN_CHUNK else None)


def describe(attempt: Attempt, a: Attempt, b: Attempt) -> str:
    """ "A" or "B" for an attempt requeued as it was; else "A0-2": A's chunk, positions 0..1,
    and a "*" if the re-run names each task in the slot."""
    if attempt is a or attempt is b:
        return "A" if attempt is a else "B"
    name = "A" if attempt.chunk is a.chunk else "B"
    return f"{name}{attempt.lo}-{attempt.hi}" + ("*" if attempt.per_task else "")


def test_a_re_run_of_a_whole_attempt_keeps_its_pickled_arguments() -> None:
    # IN_CHUNK: the same tasks run again, naming each: their arguments need not be pickled
    # again (nor their large arrays shared again).
    chunk = make_chunk(1, 10, 4)
    held = object()
    attempt = Attempt(chunk, 0, 4, payload=b"pickled", held=held)
    (rerun,) = attribute_death([(A_SERIAL, attempt)], A_SERIAL, IN_CHUNK).requeue
    assert (rerun.payload, rerun.held, rerun.per_task) == (b"pickled", held, True)


def test_the_retry_rule_is_the_one_given() -> None:
    charged: list[tuple[Chunk, int]] = []

    def never(chunk: Chunk, position: int) -> bool:
        charged.append((chunk, position))
        return False

    chunk = make_chunk(5, 10, 4)
    verdict = attribute_death([(A_SERIAL, Attempt(chunk, 0, 4))], A_SERIAL, 11, charge_retry=never)
    assert charged == [(chunk, 1)]
    assert (verdict.blame, verdict.charged, verdict.failed) == (Blame.TASK, 1, 1)
