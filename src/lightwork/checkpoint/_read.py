"""Reading a checkpoint without running anything: its outcomes, and how far its run got."""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

from .._core._errors import CheckpointError
from .._engine._checkpoint._run import rebuild_failure
from .._engine._checkpoint._store import Lock, Outcomes, connect, held_here, read_meta


@dataclass(frozen=True)
class CheckpointContents:
    """What :func:`load` returns: each task's latest outcome, by input index."""

    results: dict[int, Any]  #: the result of every task that succeeded
    failures: dict[int, BaseException]  #: the exception of every task that failed
    total: int | None  #: the input's length, None while it is not known (a generator)
    function: str  #: the function the run calls, as "map of module.name"


@dataclass(frozen=True)
class CheckpointSummary:
    """What :func:`summary` (and ``lightwork checkpoint PATH``) reports of a run."""

    path: str
    function: str  #: "map of module.name" or "starmap of ..."
    done: int  #: tasks whose latest outcome is a result
    failed: int  #: tasks whose latest outcome is a failure
    total: int | None  #: the input's length; None: not known yet (a generator not read to its end)
    left: int | None  #: tasks without a result (failed ones included); None: not known
    seconds: float  #: time the runs that wrote to it have spent, summed
    rate: float | None  #: tasks recorded per second of that time
    eta_seconds: float | None  #: ``left / rate``; None when either is unknown
    runs: int  #: the runs (sessions) that wrote to it
    write_seconds: float  #: of ``seconds``, the time spent committing to SQLite
    running: bool  #: a process holds the checkpoint now

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        return dict(self.__dict__)


def _open(path: str | os.PathLike[str]) -> tuple[str, Any]:
    if not isinstance(path, str | os.PathLike):
        raise CheckpointError(f"a checkpoint path must be a str or os.PathLike, not {path!r}")
    text = os.fspath(path)
    return text, connect(text, readonly=True)


def load(path: str | os.PathLike[str]) -> CheckpointContents:
    """Every outcome stored at ``path``, without running anything (a run may be writing it).

    >>> import os, tempfile, lightwork, lightwork.checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "run.db")
    >>> _ = lightwork.map(str, range(3), backend="serial", checkpoint=path)
    >>> lightwork.checkpoint.load(path).results
    {0: '0', 1: '1', 2: '2'}
    """
    _, db = _open(path)
    try:
        db.execute("BEGIN")  # one snapshot, even while a run commits
        meta = read_meta(db)
        results: dict[int, Any] = {}
        failures: dict[int, BaseException] = {}
        rows = db.execute("SELECT lo, hi, vals, failures FROM outcomes ORDER BY id")
        for lo, hi, blob, failed_blob in rows:  # a later row overrides an earlier one
            values = pickle.loads(blob)
            failed = {} if failed_blob is None else pickle.loads(failed_blob)
            for position in range(hi - lo):
                index = lo + position
                failure = failed.get(position)
                if failure is None:
                    results[index] = values[position]
                    failures.pop(index, None)
                else:
                    failures[index] = rebuild_failure(failure, index)
                    results.pop(index, None)
        db.execute("COMMIT")
    finally:
        db.close()
    return CheckpointContents(
        results=dict(sorted(results.items())),
        failures=dict(sorted(failures.items())),
        total=meta["total"],
        function=meta["function_name"],
    )


def summary(path: str | os.PathLike[str]) -> CheckpointSummary:
    """How far the run stored at ``path`` got: done, failed, left, time spent, rate, estimate.

    >>> import os, tempfile, lightwork, lightwork.checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "run.db")
    >>> _ = lightwork.map(abs, range(5), backend="serial", checkpoint=path)
    >>> s = lightwork.checkpoint.summary(path)
    >>> (s.done, s.failed, s.total, s.left)
    (5, 0, 5, 0)
    """
    text, db = _open(path)
    try:
        db.execute("BEGIN")
        meta = read_meta(db)
        done, failed = Outcomes(db).counts()
        sessions = db.execute("SELECT started, updated, tasks, writing FROM sessions").fetchall()
        db.execute("COMMIT")
    finally:
        db.close()
    running = _is_running(text)
    seconds = sum(updated - started for started, updated, _, _ in sessions)
    if running and sessions:  # the live run's time goes on between its commits
        seconds += max(0.0, time.time() - sessions[-1][1])
    recorded = sum(tasks for _, _, tasks, _ in sessions)
    rate = recorded / seconds if seconds > 0 and recorded else None
    total: int | None = meta["total"]
    left = None if total is None else total - done
    eta = None if left is None or rate is None else left / rate
    return CheckpointSummary(
        path=text,
        function=meta["function_name"],
        done=done,
        failed=failed,
        total=total,
        left=left,
        seconds=seconds,
        rate=rate,
        eta_seconds=eta,
        runs=len(sessions),
        write_seconds=sum(writing for _, _, _, writing in sessions),
        running=running,
    )


def _is_running(path: str) -> bool:
    """Whether a writer holds the file's lock (a shared lock can't be had while it does)."""
    import fcntl

    if held_here(path):  # (and a descriptor opened and closed here would drop its locks)
        return True
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def remove(path: str | os.PathLike[str]) -> None:
    """Delete the checkpoint at ``path`` and SQLite's side files (``-wal``, ``-shm``).

    Refused with :class:`lightwork.CheckpointInUseError` while a run uses it, and with
    :class:`lightwork.CheckpointError` if the file is not a lightwork checkpoint.
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else path
    if not (isinstance(text, str) and os.path.isfile(text) and not os.path.getsize(text)):
        text, db = _open(path)  # (an empty file: a run killed before it wrote its schema)
        db.close()
    lock = Lock(text)
    try:
        for suffix in ("-wal", "-shm", ""):
            try:
                os.unlink(text + suffix)
            except FileNotFoundError:
                pass
    finally:
        lock.release()
