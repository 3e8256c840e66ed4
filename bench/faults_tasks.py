"""The misbehaving task of ``bench_faults.py``, in a module of its own that every worker imports.

Every run appends ``"<index> <pid>"`` to ``runs.log`` in the work directory, so the benchmark
knows afterwards which tasks ran how many times (a retry shows as task 3 twice). Task 3 misbehaves
the first time only: whoever creates ``fault-fired`` first (O_EXCL) gets the fault.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

FAULTY = 3  # the index of the task that misbehaves once
TASK_SECONDS = 0.1  # a normal task
LONG_TASK_SECONDS = 30.0  # every task of the Ctrl-C and parent-SIGKILL maps


def _log(workdir: str, name: str, line: str) -> None:
    fd = os.open(os.path.join(workdir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


def _first_time(workdir: str) -> bool:
    try:
        fd = os.open(os.path.join(workdir, "fault-fired"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def task(index: int, fault: str, workdir: str) -> int:
    """``index ** 2`` after a short sleep, unless this is the one time task 3 misbehaves."""
    _log(workdir, "runs.log", f"{index} {os.getpid()}\n")
    if fault in ("sigint", "parent_kill"):
        _log(workdir, "started.log", f"{index} {os.getpid()}\n")
        time.sleep(LONG_TASK_SECONDS)
        return index * index
    if index == FAULTY and _first_time(workdir):
        if fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault == "segfault":
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        elif fault == "timeout":
            time.sleep(3600)
    time.sleep(TASK_SECONDS)
    return index * index
