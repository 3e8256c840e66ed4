"""One call's use of its checkpoint: what to skip, what to replay, what to record.

    input --take()--> fingerprints checked against those stored (or stored, for new items)
                      |
                      +--> pieces: (first index, items, None)            to run
                                   (first index, items, (values, errors)) stored: replayed
    finished chunk --record()--> its row, with the fingerprints read since --> _Writer queue
    _Writer (its own thread and connection): everything queued --> one transaction --> SQLite

All but the writer runs in the thread that consumes the call's results; the writer only
commits the batches it is handed, in order, so the two share no state but its queue.
"""

from __future__ import annotations

import functools
import itertools
import os
import pickle
import queue
import sqlite3
import threading
import time
import weakref
import zlib
from array import array
from collections.abc import Callable, Iterator
from typing import Any

from ..._core._errors import CheckpointError, CheckpointMismatchError, RemoteTraceback
from ..._core._options import Checkpoint
from ..._core._run import add_task_note, format_remote
from ..._core._tasks import Chunk
from ._fingerprint import function_fingerprint, item_fingerprints
from ._store import (
    NOT_STORED,
    Lock,
    Outcomes,
    clear,
    connect,
    create_schema,
    read_digests,
    read_meta,
)

Piece = tuple[int, list[Any], "tuple[list[Any], dict[int, BaseException]] | None"]

_dumps = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)


def _how_to_start_afresh(path: str) -> str:
    return (
        f"to start afresh, delete {path!r} or pass "
        f"checkpoint=lightwork.checkpoint.Checkpoint({path!r}, fresh=True); to keep its "
        "results, use another path"
    )


class CheckpointRun:
    """The open checkpoint of one running call; ``close()`` writes the rest and unlocks it."""

    def __init__(
        self,
        spec: Checkpoint,
        fn: Callable[[Any], Any],
        seed: int | None,
        entropy: int,
        total: int | None,
    ) -> None:
        self.path = spec.path
        self.rerun_failed = spec.rerun_failed
        self._lock = Lock(self.path)
        self._closed = False
        try:
            # (any thread may be the one whose garbage collection runs the finalizer)
            self._db = connect(self.path, readonly=False, check_same_thread=False)
        except BaseException:
            self._abandon()
            raise
        self._writers: list[_Writer] = []  # (the one writer, once started: for the finalizer)
        self._finalizer = weakref.finalize(self, _close, self._db, self._lock, self._writers)
        try:
            self._open(spec, fn, seed, entropy, total)
        except BaseException:
            self._abandon()
            raise

    def _open(
        self,
        spec: Checkpoint,
        fn: Callable[[Any], Any],
        seed: int | None,
        entropy: int,
        total: int | None,
    ) -> None:

        digest, name = function_fingerprint(fn)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if spec.fresh:
                clear(self._db)
            if not self._db.execute("SELECT 1 FROM sqlite_master").fetchone():
                create_schema(
                    self._db,
                    {
                        "function": digest,
                        "function_name": name,
                        "seed": None if seed is None else str(seed),
                        "entropy": str(entropy),
                        "total": total,
                        "created": time.time(),
                    },
                )
            meta = read_meta(self._db)
        except sqlite3.Error as error:
            raise CheckpointError(f"checkpoint {self.path!r} can't be written: {error}") from error
        afresh = _how_to_start_afresh(self.path)
        if meta["function"] != digest:
            if meta["function_name"] == name:
                what = (
                    f"the outcomes of {name} as it was: its code, defaults or closure "
                    "have changed since"
                )
            else:
                stored = meta["function_name"]
                what = f"the outcomes of another function ({stored}; this call runs {name})"
            raise CheckpointMismatchError(f"checkpoint {self.path!r} holds {what}: {afresh}")
        stored_seed = None if meta["seed"] is None else int(meta["seed"])
        if stored_seed != seed:
            raise CheckpointMismatchError(
                f"checkpoint {self.path!r} holds a run with seed={stored_seed}; this call has "
                f"seed={seed}, which would give other results: {afresh}"
            )
        # seed=None: the run's fresh entropy is stored, so the resumed tasks draw the same
        # random streams as an uninterrupted run would have.
        self.entropy = int(meta["entropy"])
        self.total: int | None = meta["total"]
        self._digests = read_digests(self._db)
        self._recorded_digests = len(self._digests)
        self._outcomes = Outcomes(self._db)
        self._new_total = False  # the input's length became known: to write
        if total is not None:
            self._check_total(total)
        self._rows: list[tuple[int, int, bytes, bytes | None, float]] = []
        self._tasks = 0  # outcomes recorded by this run, committed or not
        self._writer: _Writer | None = None  # started at the first commit
        self._write_failed = False
        self._held: list[Piece] = []
        self.input_ended = False
        self._row_cache: tuple[int, int, list[Any], dict[int, Any]] | None = None
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO sessions (pid, started, updated, tasks, writing) VALUES (?, ?, ?, 0, 0)",
            (os.getpid(), now, now),
        )
        self._session = cursor.lastrowid

    def _abandon(self) -> None:
        """Opening failed: leave the file as it was (removed, if this call created it empty)."""
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._lock.created and os.path.exists(self.path) and not os.path.getsize(self.path):
            os.unlink(self.path)
        self._lock.release()
        self._closed = True

    # ---- what is stored ------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every task has a stored outcome to replay: the call needs no worker."""
        total = self.total
        if total is None or len(self._outcomes) < total:
            return False
        if 0 in self._outcomes.row_of[:total]:
            return False
        return not self.rerun_failed or 1 not in self._outcomes.failed[:total]

    def _is_stored(self, index: int) -> bool:
        outcomes = self._outcomes
        return bool(
            index < len(outcomes)
            and outcomes.row_of[index]
            and not (self.rerun_failed and outcomes.failed[index])
        )

    # ---- reading the input ---------------------------------------------------------------

    def take(self, items: Iterator[Any], first: int, n: int) -> tuple[list[Piece], bool]:
        """Read up to ``n`` items (the first has index ``first``): the pieces to run or replay,
        and whether the input has ended."""
        if self._held:
            pieces, self._held = _first_items(self._held, n)
            return pieces, self.input_ended and not self._held
        batch = list(itertools.islice(items, n))
        exhausted = len(batch) < n
        if batch:
            self._check_items(first, item_fingerprints(first, batch))
        if exhausted:
            self._check_total(first + len(batch))
            self.input_ended = True
        return self._split(first, batch), exhausted

    def stored_run(self, first: int, most: int) -> int:
        """How many tasks from index ``first`` on are stored (at most ``most``): they are
        replayed, not sized into chunks to run."""
        outcomes = self._outcomes
        end = min(first + most, len(outcomes))
        if first >= end:
            return 0
        rows = outcomes.row_of[first:end]
        count = rows.index(0) if 0 in rows else len(rows)
        if self.rerun_failed:
            failed = outcomes.failed.find(1, first, first + count)
            if failed >= 0:
                count = failed - first
        return count

    @property
    def stored_end(self) -> int:
        """No index from this one on has a stored outcome."""
        return len(self._outcomes)

    @property
    def drained(self) -> bool:
        """The input has ended and every piece read was taken."""
        return self.input_ended and not self._held

    def hold(self, pieces: list[Piece]) -> None:
        """Give back pieces taken but not used: the next ``take`` returns them first."""
        self._held = pieces + self._held

    def pending_items(self, items: Iterator[Any], first: int) -> PendingItems:
        """The input from index ``first`` for as long as its tasks are to run (the ``auto``
        probe's input); ``give_back()`` then holds what it did not use for the next take."""
        return PendingItems(self, items, first)

    def _check_items(self, first: int, digests: array[int]) -> None:
        known = self._digests
        end = first + len(digests)
        if self.total is not None and end > self.total:
            raise CheckpointMismatchError(
                f"checkpoint {self.path!r} holds a run over {self.total} input items; this "
                f"call's input has more (item {self.total} exists): "
                f"{_how_to_start_afresh(self.path)}"
            )
        overlap = max(0, min(len(known), end) - first)
        if overlap and known[first : first + overlap] != digests[:overlap]:
            changed = next(i for i in range(overlap) if known[first + i] != digests[i])
            raise CheckpointMismatchError(
                f"checkpoint {self.path!r} holds a run over another input: input item "
                f"{first + changed} differs from the one the checkpointed run read "
                f"(its fingerprint changed): {_how_to_start_afresh(self.path)}"
            )
        if len(digests) > overlap:
            known.extend(digests[overlap:])

    def _check_total(self, total: int) -> None:
        read = len(self._digests)
        if (self.total is not None and self.total != total) or read > total:
            had = self.total if self.total is not None else f"at least {read}"
            raise CheckpointMismatchError(
                f"checkpoint {self.path!r} holds a run over {had} input items; this call's "
                f"input has {total}: {_how_to_start_afresh(self.path)}"
            )
        if self.total is None:
            self.total = total
            self._new_total = True

    def _split(self, first: int, batch: list[Any]) -> list[Piece]:
        """Runs of consecutive items that are all to run, or all stored."""
        end = first + len(batch)
        outcomes = self._outcomes
        if first >= len(outcomes):  # nothing stored this far: the common case
            return [(first, batch, None)] if batch else []
        if end <= len(outcomes) and self._all_stored(first, end):  # (a resumed run's first part)
            return [(first, batch, self._stored(first, end))]
        pieces: list[Piece] = []
        start = first
        for stored, run in itertools.groupby(range(first, end), self._is_stored):
            count = sum(1 for _ in run)
            args = batch[start - first : start - first + count]
            pieces.append((start, args, self._stored(start, start + count) if stored else None))
            start += count
        return pieces

    def _all_stored(self, lo: int, hi: int) -> bool:
        """Whether every index in ``lo .. hi`` is stored, checked in C."""
        if 0 in self._outcomes.row_of[lo:hi]:
            return False
        return not self.rerun_failed or 1 not in self._outcomes.failed[lo:hi]

    def _stored(self, lo: int, hi: int) -> tuple[list[Any], dict[int, BaseException]]:
        """The stored outcomes of ``lo .. hi``: their values, and their errors by position."""
        values: list[Any] = []
        errors: dict[int, BaseException] = {}
        row_of = self._outcomes.row_of
        index = lo
        while index < hi:
            row = row_of[index]
            row_lo, row_values, failures = self._row(row)
            # the indices from here on that this row still holds (a later row may hold some)
            stop = min(hi, row_lo + len(row_values))
            same = array("q", [row]) * (stop - index)
            if row_of[index:stop] != same:
                stop = index + 1
                while stop < hi and row_of[stop] == row:
                    stop += 1
            for position, failure in failures.items():
                failed_index = row_lo + position
                if index <= failed_index < stop:
                    errors[len(values) + failed_index - index] = rebuild_failure(
                        failure, failed_index
                    )
            values += row_values[index - row_lo : stop - row_lo]
            index = stop
        return values, errors

    def _row(self, row: int) -> tuple[int, list[Any], dict[int, Any]]:
        cached = self._row_cache
        if cached is not None and cached[0] == row:
            return cached[1], cached[2], cached[3]
        lo, blob, failures = self._db.execute(
            "SELECT lo, vals, failures FROM outcomes WHERE id = ?", (row,)
        ).fetchone()
        values = pickle.loads(blob)
        failed = {} if failures is None else pickle.loads(failures)
        self._row_cache = (row, lo, values, failed)
        return lo, values, failed

    # ---- recording outcomes --------------------------------------------------------------

    def record(self, chunk: Chunk) -> None:
        """Buffer a finished chunk's outcomes; commit if the batch is due."""
        values = chunk.values
        failures: dict[int, tuple[str, str, str, bytes | None]] = {
            position: _describe(error) for position, error in chunk.errors.items()
        }
        try:
            blob = _dumps(values)
        except Exception:
            blob, unpicklable = _dumps_each(values)
            failures.update(unpicklable)
        indices = chunk.indices
        self._rows.append(
            (indices.start, indices.stop, blob, _dumps(failures) if failures else None, time.time())
        )
        self._tasks += len(indices)
        self.flush()

    @property
    def _dirty(self) -> bool:
        return bool(self._rows) or len(self._digests) > self._recorded_digests

    def flush(self) -> None:
        """Hand what is buffered to the writer thread, to commit with what else is queued.

        Called for every finished chunk: the writer commits whatever queued while it wrote
        the last transaction (a group commit), so a commit costs a few microseconds a task
        when tasks are tiny, and a SIGKILL loses only what was in flight and the commit under
        way, whatever the tasks' size."""
        self._check_writer()
        if not self._dirty and not self._new_total:
            return
        digests = self._digests
        inputs = None
        if len(digests) > self._recorded_digests:
            new = digests[self._recorded_digests :].tobytes()
            inputs = (self._recorded_digests, len(digests), new)
        total = self.total if self._new_total else None
        if self._writer is None:
            self._writer = _Writer(self.path, self._session)
            self._writers.append(self._writer)
        self._writer.put((self._rows, inputs, total, self._tasks, time.time()))
        self._rows = []
        self._recorded_digests = len(digests)
        self._new_total = False

    def _check_writer(self) -> None:
        writer = self._writer
        if writer is None or writer.error is None or self._write_failed:
            return
        self._write_failed = True
        raise CheckpointError(
            f"checkpoint {self.path!r}: writing outcomes failed ({writer.error}); it holds "
            "every outcome committed before, and the same call resumes from there once there "
            "is room"
        ) from writer.error

    def close(self, *, write: bool = True) -> None:
        """Commit the rest (unless ``write`` is False), wait for it, and unlock the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if write and not self._write_failed:  # (after a failed write: raised already)
                self.flush()
        finally:
            try:
                if self._writer is not None:
                    self._writer.finish()
                    if write:
                        self._check_writer()
            finally:
                self._finalizer()


class _Writer:
    """Commits batches in a thread of its own: SQLite lets go of the GIL while it writes, so
    the thread that feeds the workers goes on meanwhile. Batches are committed in order; after
    a failure (a full disk) the rest are dropped and ``error`` says why."""

    def __init__(self, path: str, session: int | None) -> None:

        self._db = connect(path, readonly=False, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=NORMAL")  # (WAL: a commit needs no fsync)
        self._session = session
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.seconds = 0.0  # spent committing
        self._thread = threading.Thread(target=self._run, name="lightwork-checkpoint")
        self._thread.daemon = True  # (close() waits for it; a killed process can't anyway)
        self._thread.start()

    def put(self, batch: Any) -> None:
        self._queue.put(batch)

    def finish(self) -> None:
        """Commit what was put, then stop."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:

        try:
            stop = False
            while not stop:
                batches = [self._queue.get()]
                try:
                    while True:  # (everything queued meanwhile: one transaction)
                        batches.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                stop = None in batches
                batches = [batch for batch in batches if batch is not None]
                if batches and self.error is None:
                    try:
                        self._commit(batches)
                    except BaseException as error:
                        self.error = error
        finally:
            self._db.close()

    def _commit(self, batches: list[Any]) -> None:
        """One transaction for the batches: (rows, inputs, total, tasks, updated) each."""

        started = time.perf_counter()
        db = self._db
        *_, tasks, updated = batches[-1]
        try:
            db.execute("BEGIN IMMEDIATE")
            for rows, inputs, total, _, _ in batches:
                db.executemany(
                    "INSERT INTO outcomes (lo, hi, vals, failures, finished) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                if inputs is not None:
                    lo, hi, digests = inputs
                    # (a range's fingerprints shrink 5x, for 35 ns an item, here off the GIL)
                    compressed = zlib.compress(digests, 1)
                    db.execute("INSERT INTO inputs VALUES (?, ?, ?)", (lo, hi, compressed))
                if total is not None:
                    db.execute("UPDATE meta SET value = ? WHERE key = 'total'", (total,))
            writing = self.seconds + time.perf_counter() - started
            db.execute(
                "UPDATE sessions SET updated = ?, tasks = ?, writing = ? WHERE id = ?",
                (updated, tasks, writing, self._session),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        self.seconds += time.perf_counter() - started


class PendingItems(Iterator[Any]):
    """See :meth:`CheckpointRun.pending_items`."""

    def __init__(self, run: CheckpointRun, items: Iterator[Any], first: int) -> None:
        self._run = run
        self._items = items
        self.index = first  # the index of the next item yielded
        self._buffer: list[Any] = []  # of a pending piece, from self.index on
        self._rest: list[Piece] = []  # pieces after it, taken but not for the probe
        self._ended = False  # the input has ended after them
        self._stopped = False

    def __next__(self) -> Any:
        while not self._buffer:
            if self._stopped or self._ended:
                raise StopIteration
            pieces, self._ended = self._run.take(self._items, self.index, 1)
            if not pieces:
                raise StopIteration
            if pieces[0][2] is not None:  # a stored task: the probe stops before it
                self._stopped = True
                self._rest = pieces
                raise StopIteration
            self._buffer = list(pieces[0][1])
            self._buffer.reverse()
            self._rest = pieces[1:]
            if self._rest:
                self._stopped = True  # (yield this piece's items, then stop)
        self.index += 1
        return self._buffer.pop()

    def give_back(self) -> None:
        pieces: list[Piece] = []
        if self._buffer:
            pieces.append((self.index, self._buffer[::-1], None))
        pieces += self._rest
        self._buffer, self._rest = [], []
        if pieces:
            self._run.hold(pieces)


def _first_items(pieces: list[Piece], n: int) -> tuple[list[Piece], list[Piece]]:
    """(the first ``n`` items' pieces, the rest): a piece that straddles ``n`` is cut in two,
    so a chunk made of a piece is never larger than the ``n`` its sizer asked for."""
    taken: list[Piece] = []
    for position, (first, items, stored) in enumerate(pieces):
        if len(items) >= n:
            if len(items) == n:
                return [*taken, pieces[position]], pieces[position + 1 :]
            head: Any = None
            tail: Any = None
            if stored is not None:
                values, errors = stored
                head = (values[:n], {p: e for p, e in errors.items() if p < n})
                tail = (values[n:], {p - n: e for p, e in errors.items() if p >= n})
            rest: list[Piece] = [(first + n, items[n:], tail), *pieces[position + 1 :]]
            return [*taken, (first, items[:n], head)], rest
        taken.append((first, items, stored))
        n -= len(items)
    return taken, []


def _close(db: Any, lock: Lock, writers: list[_Writer]) -> None:
    try:
        for writer in writers:
            writer.finish()  # (at once if close() did it already)
        db.close()
    finally:
        lock.release()


def _dumps_each(values: list[Any]) -> tuple[bytes, dict[int, tuple[str, str, str, None]]]:
    """Pickle a chunk whose results don't all pickle: those that don't are stored as failures
    saying why (the call itself still yields them; a resumed call runs them again)."""
    kept: list[Any] = []
    failures: dict[int, tuple[str, str, str, None]] = {}
    for position, value in enumerate(values):
        try:
            _dumps(value)
        except Exception as error:
            reason = (
                f"the result ({type(value).__name__}) can't be pickled into the checkpoint: "
                f"{error!r:.300}"
            )
            failures[position] = (NOT_STORED, reason, reason, None)
            value = None
        kept.append(value)
    return _dumps(kept), failures


def _describe(error: BaseException) -> tuple[str, str, str, bytes | None]:
    """(type, message, traceback text, the exception pickled if it can be) of a failure."""
    cause = error.__cause__
    text = cause.text if isinstance(cause, RemoteTraceback) else format_remote(error)
    payload: bytes | None
    try:
        payload = _dumps(error)
        pickle.loads(payload)  # (an exception whose __init__ takes other arguments won't load)
    except Exception:
        payload = None
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}", str(error)[:2000], text, payload


def rebuild_failure(failure: tuple[str, str, str, bytes | None], index: int) -> BaseException:
    """A stored failure as an exception again, its traceback text as ``__cause__``."""
    kind, message, text, payload = failure
    error: BaseException | None = None
    if payload is not None:
        try:
            error = pickle.loads(payload)
        except Exception:
            error = None
    if not isinstance(error, BaseException):
        error = CheckpointError(f"task {index} failed in the checkpointed run: {kind}: {message}")
    error.__cause__ = RemoteTraceback(text)
    add_task_note(error, index)
    return error
