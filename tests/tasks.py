"""Task functions for the tests: importable by reference in every worker."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from typing import Any


class CustomError(Exception):
    pass


class NeedsTwoArgs(Exception):
    """Pickles but won't unpickle the default way: __init__ wants two arguments."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise CustomError(f"task got {x}")
    return x


def touch(path: str, bad: str = "") -> str:
    """Leave a trace of having run (a file, seen from any process); fail for ``bad``."""
    with open(path, "w"):
        pass
    if path == bad:
        raise CustomError(f"task got {path}")
    return path


def identity(x: Any) -> Any:
    return x


def sleep_then(x: tuple[float, Any]) -> Any:
    time.sleep(x[0])
    return x[1]


def sleep_and_return(x: float) -> float:
    time.sleep(x)
    return x


def pid(_: object = None) -> int:
    return os.getpid()


def where(_: object = None) -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def kill_self(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def exit_three(x: int) -> int:
    os._exit(3)


def segfault(x: int) -> int:
    ctypes.string_at(0)
    return x


def hang(x: int) -> int:
    time.sleep(3600)
    return x


def kill_once(arg: tuple[int, str]) -> int:
    """SIGKILL this worker the first time it runs (the marker file records it), then succeed."""
    x, marker = arg
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 10


def fail_until(arg: tuple[int, str, int]) -> int:
    """Raise CustomError until called `times` times (counted in a file), then return x."""
    x, counter, times = arg
    with open(counter, "a") as f:
        f.write(".")
    with open(counter) as f:
        calls = len(f.read())
    if calls <= times:
        raise CustomError(f"call {calls}")
    return x


def unpicklable_result(_: object) -> Any:
    return threading.Lock()


def raise_unpicklable_error(_: object) -> Any:
    raise NeedsTwoArgs(1, 2)


class FailsToUnpickle:
    """Pickles fine, raises when unpickled: a fault injector for the loading side."""

    def __reduce__(self) -> Any:
        return (_refuse, ())


def _refuse() -> Any:
    raise RuntimeError("refusing to unpickle")


def return_fails_to_unpickle(_: object) -> Any:
    return FailsToUnpickle()


_worker_state = threading.local()  # per worker: a process, or a thread of the threads backend


def remember(value: int) -> None:
    _worker_state.value = value


def initialized(_: object = None) -> int | None:
    return getattr(_worker_state, "value", None)


def broken_initializer() -> None:
    raise CustomError("initializer failed")


def fault_by_kind(arg: tuple[int, str, str]) -> int:
    """x * 2, unless ``kind`` says to raise CustomError or StopIteration, or to SIGKILL this
    worker the first time (``marker`` records it) or every time."""
    x, kind, marker = arg
    if kind == "raise":
        raise CustomError(x)
    if kind == "stop":
        raise StopIteration(x)
    if kind == "kill_always" or (kind == "kill_once" and not os.path.exists(marker)):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 2


# The first lines of a driver script that a test runs in a subprocess: it can import this module.
DRIVER_HEADER = f"import sys\nsys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"


def announce_workers() -> None:
    """In a driver script: wait until its pool's two workers exist (under the forkserver, if
    there is one), then print the pids of every process below this one for the test."""
    import psutil

    me = psutil.Process()
    while True:
        workers = []
        for child in me.children():
            line = " ".join(child.cmdline())
            if "forkserver" in line:
                workers += child.children()
            elif "resource_tracker" not in line:
                workers.append(child)
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    print("PIDS", " ".join(str(p.pid) for p in me.children(recursive=True)), flush=True)


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Wait up to ``seconds`` for processes to exit; the pids still running (zombies count as
    gone: only their parent's wait is missing)."""
    import psutil

    def running(pid: int) -> bool:
        try:
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    end = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if running(p)]
        if not alive or time.monotonic() > end:
            return alive
        time.sleep(0.05)


class ExitsWhenUnpickled:
    """Unpickling it raises SystemExit (a fault injector from CPython's own pool tests)."""

    def __reduce__(self) -> Any:
        return (exit_with, (1,))


class ExitsWhenPickled:
    """Pickling it raises SystemExit."""

    def __reduce__(self) -> Any:
        raise SystemExit(2)


def exit_with(code: int) -> Any:
    raise SystemExit(code)


def make(cls: type) -> Any:
    return cls()


def raise_base(kind: type[BaseException]) -> Any:
    raise kind("from the task")


def put_on_queue(x: int) -> int:
    """Put x on the queue the initializer ``keep_primitives`` gave this worker, and count it."""
    queue, counter, lock, event = _worker_state.primitives
    with lock:
        counter.value += 1
    queue.put(x)
    return int(event.is_set())


def keep_primitives(*primitives: Any) -> None:
    _worker_state.primitives = primitives


def slow_broken_initializer() -> None:
    """Fails after a moment: long enough for work to queue up behind it."""
    time.sleep(0.3)
    raise CustomError("initializer failed")


def which_interpreter(_: object = None) -> tuple[int, int]:
    """(this process's pid, the id of the interpreter running the task: 0 is the main one)."""
    from concurrent import interpreters  # type: ignore[import-not-found,unused-ignore]

    return os.getpid(), interpreters.get_current().id


def uses_numpy(x: int) -> float:
    import numpy as np

    return float(np.sqrt(x))


def count_primes(n: int) -> int:
    """Pure-Python CPU work: the primes below ``n``, by trial division."""
    return sum(all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n))


def python_work_importing_numpy(n: int) -> int:
    """Pure-Python CPU work, whose code imports NumPy as it runs."""
    import numpy  # noqa: F401

    total = 0
    for i in range(20_000):
        total += i * n
    return total


def map_in_a_child() -> None:
    """A multiprocessing.Process target that runs a lightwork pool (its own workers)."""
    import lightwork

    assert lightwork.map(abs, [-1, -2], max_workers=2) == [1, 2]
