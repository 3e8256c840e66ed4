"""The machine's own ceiling: the same work in independent processes, with no pool between them.

For ``p`` workers, ``p`` plain processes each run every ``p``-th item on lightwork's serial
backend (the baseline's own code path), all set going by one message each; the wall time until
the last one is done is what the machine itself allows for the work. No dispatch, no pickling
per task, no coordination: what separates this from ``p`` times the serial speed is the
machine's (other programs on the cores, clocks that drop when more cores work, shared caches
and memory bandwidth) and the work's granularity. A pool's speed-up measured in the same round
against this ceiling shows what the pool itself costs.

    parent                                   process i (of max(p))
      start: cloudpickle (fn, shares_i)  ->    loads; Executor(backend="serial")
      run(p): send p to processes 0..p-1 ->    runs shares_i[p]; replies "done"
      ... wall time until the last reply
      close: send None                   ->    exits

The processes are started once and wait on their pipes between runs, using no CPU.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Ceiling", "CeilingUnavailable"]

# Seconds to wait for a process to load the function and its items before giving up on the
# ceiling: a fresh interpreter importing NumPy takes well under one.
START_TIMEOUT = 60.0


class CeilingUnavailable(Exception):
    """The ceiling can't be measured for this work (the reason is the message); the lab notes
    it and measures the rest."""


def _serve(connection: Connection) -> None:
    """A ceiling process: load the work, then run a share per request until told to stop."""
    try:
        import cloudpickle

        from .._engine._executor import Executor

        fn, chunksize, shares = cloudpickle.loads(connection.recv_bytes())
        executor = Executor(backend="serial")
    except BaseException as error:  # reported to the parent, which notes it
        connection.send(("error", f"{type(error).__name__}: {error}"))
        return
    connection.send(("ready", None))
    with executor:
        while (workers := connection.recv()) is not None:
            try:
                list(executor.imap(fn, shares[workers], chunksize=chunksize))
            except BaseException as error:
                connection.send(("error", f"{type(error).__name__}: {error}"))
                return
            connection.send(("done", None))


class Ceiling:
    """Independent processes that time ``fn`` over ``work(p)`` split ``p`` ways, for each ``p``.

    Use as a context manager: the processes start on entry and stop on exit.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        work: Callable[[int], Sequence[Any]],
        counts: Sequence[int],
        chunksize: int | None,
    ) -> None:
        self._counts = list(counts)
        self._processes: list[Any] = []
        self._connections: list[Connection] = []
        self._payloads = self._pickle(fn, work, chunksize)

    def _pickle(
        self, fn: Callable[[Any], Any], work: Callable[[int], Sequence[Any]], chunksize: int | None
    ) -> list[bytes]:
        import cloudpickle

        runs = {p: work(p) for p in self._counts}
        payloads = []
        for i in range(max(self._counts)):
            shares = {p: list(runs[p][i::p]) for p in self._counts if p > i}
            try:
                payloads.append(cloudpickle.dumps((fn, chunksize, shares)))
            except Exception as error:
                raise CeilingUnavailable(
                    f"the function or its items can't be sent to a process: {error}"
                ) from None
        return payloads

    def __enter__(self) -> Ceiling:
        # Started as lightwork starts its workers: a fork server on Linux, spawn elsewhere.
        method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        context: Any = multiprocessing.get_context(method)  # typeshed: BaseContext lacks Process
        try:
            for payload in self._payloads:
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_serve, args=(theirs,), name="lightwork-ceiling", daemon=True
                )
                process.start()
                theirs.close()
                self._processes.append(process)
                self._connections.append(ours)
                ours.send_bytes(payload)
            for connection in self._connections:
                self._expect(connection, "ready", START_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def run(self, workers: int) -> float:
        """Wall-clock seconds for ``workers`` processes to run their shares of ``work(p)``."""
        chosen = self._connections[:workers]
        started = time.perf_counter()
        for connection in chosen:
            connection.send(workers)
        for connection in chosen:
            self._expect(connection, "done", None)
        return time.perf_counter() - started

    @staticmethod
    def _expect(connection: Connection, what: str, timeout: float | None) -> None:
        if timeout is not None and not connection.poll(timeout):
            raise CeilingUnavailable(f"a ceiling process did not start within {timeout:.0f} s")
        try:
            kind, detail = connection.recv()
        except (EOFError, OSError):
            raise CeilingUnavailable("a ceiling process died") from None
        if kind != what:
            raise CeilingUnavailable(f"a ceiling process failed: {detail}")

    def __exit__(self, *exc_info: object) -> None:
        for connection in self._connections:
            try:
                connection.send(None)
            except OSError:
                pass  # already gone
            connection.close()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
