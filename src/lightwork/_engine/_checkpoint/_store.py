"""A checkpoint's SQLite database: its schema, its lock, and reading and writing it.

    meta      key -> value: format, version, function, seed, entropy, total (once known)
    inputs    lo, hi, digests    each input item's fingerprint, 8 bytes an item, zlib-compressed
    outcomes  id, lo, hi, vals, failures, finished
                                 one row per finished chunk: its results pickled as one list
                                 (a failed task's slot holds None) and its failures by
                                 position; a later row for an index (a failed task re-run)
                                 overrides an earlier one
    sessions  id, pid, started, updated, tasks, writing
                                 each run that wrote to it: for the time spent, the rate,
                                 and the seconds its commits took

A chunk's results are one row, not one row a task: a million tiny tasks write a few thousand
rows. Rows are written in one transaction per batch (see ``COMMIT_SECONDS``); the database is
in WAL mode with ``synchronous=NORMAL``, so a commit costs no fsync and survives the process
being killed (a power cut may lose the last commits, never the database). A writer holds an
exclusive ``flock`` on the database file for as long as it runs: the kernel drops it when the
process dies, however it dies.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pickle
import sqlite3
import time
import zlib
from array import array
from typing import Any

from ..._core._errors import CheckpointError, CheckpointInUseError

FORMAT = "lightwork-checkpoint"
VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE inputs (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, digests BLOB NOT NULL);
CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
    vals BLOB NOT NULL, failures BLOB, finished REAL NOT NULL
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, started REAL NOT NULL,
    updated REAL NOT NULL, tasks INTEGER NOT NULL, writing REAL NOT NULL
);
"""

_TABLES = {"meta", "inputs", "outcomes", "sessions"}


def check_directory(path: str) -> None:
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r} is a directory: give a file's path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(
            f"checkpoint {path!r}: its directory {directory!r} does not exist (lightwork "
            "creates the file, not its directories)"
        )


def connect(path: str, *, readonly: bool, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to an existing lightwork checkpoint, checked to be one."""
    if not os.path.isfile(path):
        check_directory(path)
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    if readonly and not os.path.getsize(path):  # (created by a run killed before its schema)
        raise CheckpointError(
            f"checkpoint {path!r} is empty: its run stopped before it stored anything (the "
            "same call run again starts it afresh)"
        )
    uri = f"file:{_quote(os.path.abspath(path))}?mode={'ro' if readonly else 'rw'}"
    try:
        connection = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=check_same_thread
        )
    except sqlite3.Error as error:
        raise CheckpointError(f"checkpoint {path!r} can't be opened: {error}") from error
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if not tables and not readonly:
            return connection  # a new, empty file: the caller creates the schema
        if not tables >= _TABLES:
            raise CheckpointError(_not_a_checkpoint(path, "it has no lightwork tables"))
        meta = dict(connection.execute("SELECT key, value FROM meta"))
    except sqlite3.OperationalError as error:  # (locked, an I/O error: not about its content)
        connection.close()
        raise CheckpointError(f"checkpoint {path!r} can't be read: {error}") from error
    except sqlite3.DatabaseError as error:
        connection.close()
        raise CheckpointError(_not_a_checkpoint(path, str(error))) from error
    except CheckpointError:
        connection.close()
        raise
    if meta.get("format") != FORMAT:
        connection.close()
        raise CheckpointError(_not_a_checkpoint(path, "its meta table is not lightwork's"))
    if meta.get("version") != VERSION:
        connection.close()
        raise CheckpointError(
            f"checkpoint {path!r} has format version {meta.get('version')!r}; this lightwork "
            f"reads version {VERSION}"
        )
    return connection


def _not_a_checkpoint(path: str, why: str) -> str:
    return (
        f"{path!r} is not a lightwork checkpoint ({why}); lightwork leaves it untouched: "
        "choose another path"
    )


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path)


# The checkpoints whose lock this process holds, by (device, inode). No other descriptor of
# such a file may be opened and closed here: POSIX locks belong to the process and any close
# drops them all, SQLite's included, and without them another process's reader, closing,
# takes itself for the last user and deletes the WAL from under the run.
_held: dict[tuple[int, int], int] = {}  # -> the descriptor the lock is on


def _drop_inherited_locks() -> None:
    """In a forked child (a worker): close the copies of the lock descriptors. The lock
    belongs to the open file, which they share: a worker that kept one would hold it after
    the run released it, for as long as the pool lives."""
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def held_here(path: str) -> bool:
    """Whether a run in this process holds the lock of the checkpoint at ``path``."""
    return _file_key(path) in _held


class Lock:
    """The writer's exclusive lock on the database file (see the module's docstring)."""

    def __init__(self, path: str) -> None:
        self.fd = -1
        check_directory(path)
        if held_here(path):
            raise _in_use(path)
        if os.path.exists(path) and not os.stat(path).st_mode & 0o222:
            # (root could write it anyway: a file marked read-only is meant to stay as it is)
            raise CheckpointError(
                f"checkpoint {path!r} is read-only: lightwork must write to it to record "
                "outcomes (to read it without running, use lightwork.checkpoint.load)"
            )
        self.created = not os.path.exists(path)
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise CheckpointError(f"checkpoint {path!r} can't be opened: {error}") from error
        try:
            _lock_soon(self.fd)
        except OSError as error:
            os.close(self.fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _in_use(path) from None
            raise CheckpointError(f"checkpoint {path!r} can't be locked: {error}") from error
        status = os.fstat(self.fd)
        self._key = (status.st_dev, status.st_ino)
        _held[self._key] = self.fd

    def release(self) -> None:
        if self.fd >= 0:
            _held.pop(self._key, None)
            os.close(self.fd)  # (closing the descriptor drops the flock)
            self.fd = -1


def _in_use(path: str) -> CheckpointInUseError:
    return CheckpointInUseError(
        f"checkpoint {path!r} is in use by another run (another process, or another call in "
        "this one, holds its lock): wait for it to finish, or use another path"
    )


# A reader's probe (lightwork checkpoint PATH asking whether a run is live) holds a shared lock
# for microseconds: a writer starting then waits this long rather than report it in use.
LOCK_PATIENCE_SECONDS = 0.2


def _lock_soon(fd: int) -> None:
    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def create_schema(connection: sqlite3.Connection, meta: dict[str, Any]) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        rows = [("format", FORMAT), ("version", VERSION), *meta.items()]
        connection.executemany("INSERT INTO meta VALUES (?, ?)", rows)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def clear(connection: sqlite3.Connection) -> None:
    """Forget everything stored (``fresh=True``), in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for table in sorted(_TABLES):
            connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def read_meta(connection: sqlite3.Connection) -> dict[str, Any]:
    return dict(connection.execute("SELECT key, value FROM meta"))


def read_digests(connection: sqlite3.Connection) -> array[int]:
    """Every input item's fingerprint stored, in index order (runs are written contiguously)."""
    digests = array("q")
    for lo, _hi, blob in connection.execute("SELECT lo, hi, digests FROM inputs ORDER BY lo"):
        if lo != len(digests):
            raise CheckpointError(f"checkpoint is damaged: input fingerprints jump to {lo}")
        digests.frombytes(zlib.decompress(blob))
    return digests


# The kind of a "failure" that is none of the task's: its result could not be pickled into
# the checkpoint. Such a task has no stored outcome: a resumed run runs it again, even with
# rerun_failed=False (load() shows the reason among the failures).
NOT_STORED = "lightwork.CheckpointError: result not stored"


class Outcomes:
    """Which row holds each index's latest outcome, and which of them are failures."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.row_of = array("q")  # index -> outcome row id (0: none)
        self.failed = bytearray()  # index -> 1 if its latest outcome is a failure
        rows = connection.execute(
            "SELECT id, lo, hi, failures FROM outcomes ORDER BY id"
        ).fetchall()
        size = max((hi for _, _, hi, _ in rows), default=0)
        self.row_of = array("q", bytes(8 * size))
        self.failed = bytearray(size)
        for row, lo, hi, failures in rows:
            self.row_of[lo:hi] = array("q", [row]) * (hi - lo)
            self.failed[lo:hi] = bytes(hi - lo)
            if failures is not None:
                for position, failure in pickle.loads(failures).items():
                    if failure[0] == NOT_STORED:  # (no outcome: to run again, always)
                        self.row_of[lo + position] = 0
                    else:
                        self.failed[lo + position] = 1

    def __len__(self) -> int:
        return len(self.row_of)

    def counts(self) -> tuple[int, int]:
        """(tasks whose latest outcome is a result, tasks whose latest is a failure)."""
        stored = len(self.row_of) - self.row_of.count(0)
        failed = self.failed.count(1)
        return stored - failed, failed


def now() -> float:
    return time.time()
