"""SharedValue, SharedArray and share(): shared state that tasks get as ordinary arguments.

Every behaviour runs on every backend: the serial reference, threads, and processes under the
default start method (forkserver), spawn and fork; all must agree. The autouse fixture fails
any test that leaves an entry behind in /dev/shm, so every test is also a leak test.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import functools
import gc
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import lightwork
from lightwork import SharedArray, SharedClosedError, SharedValue, share

SHM = Path("/dev/shm")
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm (Linux)")

BACKENDS: dict[str, dict[str, Any]] = {
    "serial": {"backend": "serial"},
    "threads": {"backend": "threads", "max_workers": 2},
    "processes": {"backend": "processes", "max_workers": 2},  # forkserver on Linux
    "spawn": {"backend": "processes", "max_workers": 2, "start_method": "spawn"},
    "fork": {"backend": "processes", "max_workers": 2, "start_method": "fork"},
}
PROCESS_BACKENDS = ["processes", "spawn", "fork"]
SETTLE_SECONDS = 5.0  # how long a released file may take to go: a dying parent's tracker


# ---- fixtures ------------------------------------------------------------------------------


def _shm_entries() -> set[str]:
    return set(os.listdir(SHM))


def _ours(name: str, run: set[int]) -> bool:
    """Whether an entry comes from this test run (the pids in ``run``).

    Other programs on the machine (other test runs, benchmarks, their resource trackers) add
    and remove entries of their own meanwhile. Ours are named for the process that made them,
    ``lightwork-<pid>-...``, or whatever the name, still held open or mapped by one of ours.
    """
    match = re.match(r"lightwork-(\d+)-", name)
    if match:
        return int(match.group(1)) in run
    path = str(SHM / name)
    for pid in run:
        proc = Path(f"/proc/{pid}")
        try:
            if path in (proc / "maps").read_text():
                return True
            if any(os.readlink(fd) == path for fd in (proc / "fd").iterdir()):
                return True
        except OSError:
            continue
    return False


@pytest.fixture(autouse=True)
def no_shm_leftovers() -> Iterator[None]:
    """Fails the test if a new entry it made stays in /dev/shm."""
    before = _shm_entries()
    yield
    gc.collect()  # objects the test dropped release their memory now, not at exit
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        run = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
        left = sorted(n for n in _shm_entries() - before if _ours(n, run))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"left in /dev/shm: {left}"


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, lightwork.Executor]]:
    """(name, executor) on each backend in turn, its workers started before any test data."""
    name = request.param
    with lightwork.Executor(**BACKENDS[name]) as executor:
        executor.start()
        yield name, executor


@pytest.fixture(params=PROCESS_BACKENDS)
def process_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return BACKENDS[request.param]


# ---- tasks: module-level, so workers import them by reference ------------------------------


def increment_with_lock(counter: SharedValue[int], _: int) -> None:
    with counter.get_lock():  # the tutorial's own lines
        counter.value += 1


def increment_with_add(counter: SharedValue[int], _: int) -> int:
    return counter.add(1)


def transact(balance: SharedValue[int], delta: int, times: int) -> None:
    for _ in range(times):
        with balance.get_lock():
            balance.value = balance.value + delta


def fill_slice(shared: SharedArray, index: int, width: int) -> int:
    shared.array[index * width : (index + 1) * width] = index
    return os.getpid()


def bump_first_element(shared: SharedArray, times: int) -> None:
    for _ in range(times):
        with shared.lock:
            shared.array[0] += 1  # read-modify-write: lost updates without the lock


def try_lock(value: SharedValue[int], timeout: float) -> bool:
    taken = value.lock.acquire(timeout=timeout)
    if taken:
        value.lock.release()
    return taken


LOADS: Counter[str] = Counter()  # per process: how often each Payload was unpickled


class Payload:
    """A large object whose unpickling is counted in the process that does it."""

    def __init__(self, blob: bytes, tag: str) -> None:
        self.blob = blob
        self.tag = tag

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_payload, (self.blob, self.tag)


def _rebuild_payload(blob: bytes, tag: str) -> Payload:
    LOADS[tag] += 1
    return Payload(blob, tag)


def payload_loads(shared: lightwork.Shared[Payload], _: int) -> tuple[int, int, int, bool]:
    value = shared.value
    again = shared.value
    return os.getpid(), LOADS[value.tag], len(value.blob), again is value


def array_flags(shared: lightwork.Shared[dict[str, Any]], _: int) -> tuple[bool, float]:
    array = shared.value["array"]
    return bool(array.flags.writeable), float(array.sum())


def hold_lock_and_die(value: SharedValue[int], holding: SharedValue[bool]) -> None:
    with value.lock:
        value.value += 1000
        holding.value = True
        time.sleep(0.2)  # let the others queue up on the lock
        os.kill(os.getpid(), signal.SIGKILL)


def add_once_held(value: SharedValue[int], holding: SharedValue[bool]) -> int:
    deadline = time.monotonic() + 10
    while not holding.value and time.monotonic() < deadline:
        time.sleep(0.005)
    return value.add(1)


def add_or_die_first_time(value: SharedValue[int], attempts: SharedValue[int], i: int) -> int:
    with value.lock:
        if i == 0 and attempts.add(1) == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # while holding the lock
        return value.add(1)


# ---- the tutorial's programs, on every backend ---------------------------------------------


@pytest.mark.parametrize("task", [increment_with_lock, increment_with_add])
def test_thirty_increments_count_thirty(backend: tuple[str, lightwork.Executor], task: Any) -> None:
    _, executor = backend
    with SharedValue("i", 0) as counter:
        list(executor.map(functools.partial(task, counter), range(30)))
        assert counter.value == 30


def test_deposits_and_withdrawals_leave_the_balance_unchanged(
    backend: tuple[str, lightwork.Executor],
) -> None:
    _, executor = backend
    with SharedValue("i", 100) as balance:
        deltas = [+1, -1, +1, -1]
        list(executor.map(transact, [balance] * 4, deltas, [2000] * 4))
        assert balance.value == 100


def test_array_slices_written_by_tasks_are_seen_by_the_parent(
    backend: tuple[str, lightwork.Executor],
) -> None:
    _, executor = backend
    with SharedArray.zeros(8 * 1000, "int64") as shared:
        list(executor.map(functools.partial(fill_slice, shared, width=1000), range(8)))
        assert (shared.array.reshape(8, 1000) == np.arange(8)[:, None]).all()


def test_array_lock_serializes_overlapping_updates(backend: tuple[str, lightwork.Executor]) -> None:
    _, executor = backend
    with SharedArray(1, "int64") as shared:
        list(executor.map(bump_first_element, [shared] * 4, [200] * 4))
        assert shared.array[0] == 800


def test_shared_object_is_unpickled_once_per_worker(
    backend: tuple[str, lightwork.Executor],
) -> None:
    name, executor = backend
    tag = f"payload-{name}-{time.monotonic_ns()}"
    blob = bytes(50 * 2**20)
    with share(Payload(blob, tag)) as shared:
        assert shared.nbytes > len(blob)
        results = list(executor.map(functools.partial(payload_loads, shared), range(16)))
    assert {size for _, _, size, _ in results} == {len(blob)}
    assert all(same for *_, same in results), ".value returns the same object every time"
    loads = {pid: count for pid, count, _, _ in results}
    in_parent = BACKENDS[name]["backend"] != "processes"
    assert set(loads.values()) == ({0} if in_parent else {1}), loads


def test_numpy_arrays_in_a_shared_object_are_read_only_views_in_workers(
    backend: tuple[str, lightwork.Executor],
) -> None:
    name, executor = backend
    with share({"array": np.ones(1000)}) as shared:
        flags = set(executor.map(functools.partial(array_flags, shared), range(4)))
    in_parent = BACKENDS[name]["backend"] != "processes"
    assert flags == {(in_parent, 1000.0)}


def test_lock_is_reentrant_in_its_thread_and_exclusive_elsewhere(
    backend: tuple[str, lightwork.Executor],
) -> None:
    name, executor = backend
    with SharedValue("i", 0) as value:
        with value.lock:
            taken_elsewhere = executor.submit(try_lock, value, 0.2).result()
        assert taken_elsewhere is (name == "serial")  # serial runs it in this very thread
        assert executor.submit(try_lock, value, 0.2).result() is True


# ---- crashes -------------------------------------------------------------------------------


def test_worker_killed_holding_the_lock_does_not_block_the_others(
    process_options: dict[str, Any],
) -> None:
    with (
        SharedValue("i", 0) as value,
        SharedValue("?", False) as holding,
        lightwork.Executor(**process_options, retries=0) as executor,
    ):
        killed = executor.submit(hold_lock_and_die, value, holding)
        others = [executor.submit(add_once_held, value, holding) for _ in range(10)]
        done, not_done = concurrent.futures.wait(others, timeout=15)
        assert not not_done, "tasks waiting for the dead worker's lock never got it"
        with pytest.raises(lightwork.WorkerCrashedError, match="SIGKILL"):
            killed.result(timeout=15)
        assert sorted(f.result() for f in done) == list(range(1001, 1011))
        assert value.value == 1010


def test_task_killed_holding_the_lock_is_retried_and_the_map_completes(
    process_options: dict[str, Any],
) -> None:
    with (
        SharedValue("i", 0) as value,
        SharedValue("i", 0) as attempts,
        lightwork.Executor(**process_options, retries=1) as executor,
    ):
        started = time.monotonic()
        list(executor.map(add_or_die_first_time, [value] * 6, [attempts] * 6, range(6)))
        assert value.value == 6
        assert attempts.value == 2
        assert time.monotonic() - started < 15


def test_fork_worker_that_inherited_a_value_still_waits_for_the_parents_lock() -> None:
    """A forked child shares its parent's open files, and with them their file locks: it must
    lock through a file of its own."""
    with SharedValue("i", 0) as value, lightwork.Executor(1, start_method="fork") as executor:
        assert executor.submit(increment_with_add, value, 0).result() == 1  # forked after value
        with value.lock:
            assert executor.submit(try_lock, value, 0.2).result() is False
        assert executor.submit(try_lock, value, 0.2).result() is True


# ---- SharedValue ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "initial", "typecode"),
    [
        ("i", -7, "i"),
        ("l", 2**40, "l"),
        ("Q", 2**64 - 1, "Q"),
        ("d", 2.5, "d"),
        ("f", 0.5, "f"),
        ("?", True, "?"),
        (int, 2**62, "q"),
        (float, 1e300, "d"),
        (bool, True, "?"),
        (ctypes.c_int, 3, "i"),
        (ctypes.c_double, 0.25, "d"),
    ],
)
def test_value_types(kind: Any, initial: Any, typecode: str) -> None:
    with SharedValue(kind, initial) as value:
        assert value.typecode == typecode
        assert value.value == initial
        clone = pickle.loads(pickle.dumps(value))
        assert clone.value == initial and clone.typecode == typecode


@pytest.mark.parametrize("kind", ["x", "e", "ii", str, ctypes.c_char_p, 3])
def test_unknown_typecode_is_an_invalid_option(kind: Any) -> None:
    with pytest.raises(lightwork.InvalidOptionError, match="typecode"):
        SharedValue(kind)


def test_overflow_raises_instead_of_wrapping_around() -> None:
    with SharedValue("b", 127) as value:
        with pytest.raises(ValueError):
            value.add(1)
        assert value.value == 127


def test_wrong_type_is_refused() -> None:
    with SharedValue("i") as value, pytest.raises(TypeError):
        value.value = 1.5  # type: ignore[assignment]


def test_default_initial_value_is_zero() -> None:
    with SharedValue("d") as value:
        assert value.value == 0.0


def test_lock_inside_lock_and_add_inside_lock() -> None:
    with SharedValue("i", 1) as value:
        with value.lock, value.get_lock():
            assert value.add(1) == 2
            value.value *= 10
        assert value.value == 20


def test_lock_times_out_while_another_thread_holds_it() -> None:
    with SharedValue("i") as value:
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            with value.lock:
                held.set()
                release.wait(5)

        thread = threading.Thread(target=holder)
        thread.start()
        held.wait(5)
        try:
            assert value.lock.acquire(False) is False
            started = time.monotonic()
            assert value.lock.acquire(timeout=0.1) is False
            assert time.monotonic() - started >= 0.1
        finally:
            release.set()
            thread.join()
        assert value.lock.acquire(timeout=1) is True
        value.lock.release()


def test_releasing_a_lock_not_held_is_an_error() -> None:
    with SharedValue("i") as value, pytest.raises(RuntimeError, match="does not hold"):
        value.lock.release()


def test_repr_shows_type_and_value_without_waiting_for_the_lock() -> None:
    value = SharedValue("i", 3)
    with value.lock:
        assert repr(value) == "SharedValue('i', 3)"
    value.close()
    assert repr(value) == "<SharedValue 'i' closed>"


# ---- SharedArray ---------------------------------------------------------------------------


def test_array_constructors() -> None:
    with (
        SharedArray((2, 3), "int32", fill=7) as filled,
        SharedArray.zeros(4) as zeros,
        SharedArray.from_array(np.arange(6.0).reshape(2, 3)) as copied,
    ):
        assert filled.array.tolist() == [[7, 7, 7], [7, 7, 7]]
        assert filled.shape == (2, 3) and filled.dtype == np.int32 and filled.nbytes == 24
        assert zeros.array.dtype == np.float64 and not zeros.array.any()
        assert copied.array.tolist() == [[0, 1, 2], [3, 4, 5]]
        assert repr(filled) == "<SharedArray shape=(2, 3) dtype=int32>"


def test_empty_array() -> None:
    with SharedArray(0) as empty:
        assert empty.array.shape == (0,)
        assert pickle.loads(pickle.dumps(empty)).array.shape == (0,)


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [((2,), object, "Python objects"), ((-1,), "f8", "non-negative"), ((2.0,), "f8", "ints")],
)
def test_bad_array_options_are_invalid(shape: Any, dtype: Any, message: str) -> None:
    with pytest.raises(lightwork.InvalidOptionError, match=message):
        SharedArray(shape, dtype)


def test_closing_while_views_exist_keeps_them_valid() -> None:
    shared = SharedArray(5, fill=1.0)
    view = shared.array
    shared.close()
    assert not (SHM / shared.name).exists()
    assert view.sum() == 5.0  # the memory lives as long as a view uses it
    with pytest.raises(SharedClosedError):
        shared.array  # noqa: B018


# ---- share() -------------------------------------------------------------------------------


def test_shared_value_is_the_original_object_in_the_owner() -> None:
    table = {"a": [1, 2, 3]}
    with share(table) as shared:
        assert shared.value is table
        assert pickle.loads(pickle.dumps(shared)).value is table  # a handle come back home


def test_shared_handle_pickles_small() -> None:
    with share(bytes(10 * 2**20)) as shared:
        assert len(pickle.dumps(shared)) < 200


def test_fork_workers_inherit_the_shared_object_without_unpickling() -> None:
    tag = f"payload-inherited-{time.monotonic_ns()}"
    with (
        share(Payload(b"abc", tag)) as shared,
        lightwork.Executor(1, start_method="fork") as executor,  # forked after share()
    ):
        _, loads, size, _ = executor.submit(payload_loads, shared, 0).result()
    assert (loads, size) == (0, 3)


# ---- lifetime ------------------------------------------------------------------------------


def make_value() -> SharedValue[int]:
    return SharedValue("i", 1)


def make_array() -> SharedArray:
    return SharedArray(3)


def make_shared() -> lightwork.Shared[list[int]]:
    return share([1, 2, 3])


MAKERS = [make_value, make_array, make_shared]


@pytest.mark.parametrize("make", MAKERS)
def test_memory_lives_in_dev_shm_until_close(make: Any) -> None:
    shared = make()
    path = SHM / shared.name
    assert path.exists() and shared.name.startswith(f"lightwork-{os.getpid()}-")
    assert not shared.closed
    shared.close()
    shared.close()  # idempotent
    assert shared.closed and not path.exists()


@pytest.mark.parametrize("make", MAKERS)
def test_garbage_collected_owner_releases_its_memory(make: Any) -> None:
    shared = make()
    path = SHM / shared.name
    del shared
    gc.collect()
    assert not path.exists()


@pytest.mark.parametrize("make", MAKERS)
def test_pickling_a_closed_object_raises_a_clear_error(make: Any) -> None:
    shared = make()
    shared.close()
    with pytest.raises(SharedClosedError, match="closed") as caught:
        pickle.dumps(shared)
    assert isinstance(caught.value, lightwork.LightworkError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("make", MAKERS)
def test_attaching_after_the_owner_closed_raises_a_clear_error(make: Any) -> None:
    shared = make()
    handle = pickle.dumps(shared)
    shared.close()
    with pytest.raises(SharedClosedError, match="no longer exists"):
        pickle.loads(handle)


@pytest.mark.parametrize("make", MAKERS)
def test_a_handle_pickles_as_a_function_of_the_package_not_of_a_module_in_it(make: Any) -> None:
    # Short on the wire, and valid for pickles made before _shared became a package.
    with make() as shared:
        data = pickle.dumps(shared, protocol=0)
        assert data.startswith(b"clightwork._shared\n_attach_")
        assert pickle.loads(data).name == shared.name


def test_shared_closed_error_shows_and_pickles_as_its_public_name() -> None:
    error = pickle.loads(pickle.dumps(SharedClosedError("gone")))
    assert type(error) is SharedClosedError
    assert f"{SharedClosedError.__module__}.{SharedClosedError.__qualname__}" == (
        "lightwork.SharedClosedError"
    )


def test_a_shared_object_offers_its_value_to_a_cluster_backend() -> None:
    # The Dask backend knows the protocol in lightwork._core, never this feature.
    from lightwork._core._scatter import Scatterable

    words = ["many", "hands"]
    with share(words) as shared:
        assert isinstance(shared, Scatterable)
        assert shared.__lightwork_scatter__() is words


def test_sending_a_closed_object_to_a_worker_fails_that_task_only() -> None:
    value = SharedValue("i")
    value.close()
    with lightwork.Executor(1) as executor:
        with pytest.raises(lightwork.SerializationError, match="closed") as caught:
            executor.submit(abs, value).result()
        assert isinstance(caught.value.__cause__, SharedClosedError)
        assert executor.submit(abs, -1).result() == 1


def test_a_full_dev_shm_fails_at_creation_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="shm-size") as caught:
        SharedArray(1000)
    assert caught.value.errno == errno.ENOSPC


PARENT_KILLED = """
import os, signal, sys
import lightwork

def touch(value, array, obj):
    return value.value, float(array.array.sum()), len(obj.value)

if __name__ == "__main__":
    value = lightwork.SharedValue("i", 1)
    array = lightwork.SharedArray(4, fill=1.0)
    obj = lightwork.share(list(range(10)))
    if sys.argv[1] != "none":
        executor = lightwork.Executor(2, start_method=sys.argv[1])
        assert executor.submit(touch, value, array, obj).result() == (1, 4.0, 10)
    print(value.name, array.name, obj.name, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("start_method", ["none", "forkserver", "spawn", "fork"])
def test_killed_parent_leaves_nothing_in_dev_shm(tmp_path: Path, start_method: str) -> None:
    """The resource tracker removes the files; workers that attached must not have stopped it
    (a worker's ``resource_tracker.unregister`` would erase the parent's registration)."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT_KILLED))
    process = subprocess.run(
        [sys.executable, str(script), start_method], capture_output=True, text=True, timeout=30
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    names = process.stdout.split()
    assert len(names) == 3, process.stdout + process.stderr
    deadline = time.monotonic() + SETTLE_SECONDS
    while any((SHM / n).exists() for n in names) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [n for n in names if (SHM / n).exists()]


FORKED_BEFORE_TRACKER = """
import os, time
from multiprocessing import resource_tracker
import lightwork

def total(array):
    return float(array.array.sum())

if __name__ == "__main__":
    with lightwork.Executor(1, start_method="fork") as executor:
        executor.submit(abs, 1).result()  # the worker is forked before any shared memory...
        print("tracker running at fork:", resource_tracker._resource_tracker._fd is not None)
        array = lightwork.SharedArray(4, fill=1.0)
        assert executor.submit(total, array).result() == 4.0
    time.sleep(0.5)  # ...and has exited: a tracker of its own would have unlinked the array
    print("exists after the worker exited:", os.path.exists("/dev/shm/" + array.name))
    array.close()
"""


def test_fork_worker_started_before_the_tracker_does_not_unlink_the_array(
    tmp_path: Path,
) -> None:
    """cpython#82300: attaching with SharedMemory(name=...) in such a worker starts a tracker
    of its own, which unlinks the segment when the worker exits."""
    script = tmp_path / "forked.py"
    script.write_text(textwrap.dedent(FORKED_BEFORE_TRACKER))
    process = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30
    )
    assert process.returncode == 0, process.stderr
    assert "tracker running at fork: False" in process.stdout  # the case being tested
    assert "exists after the worker exited: True" in process.stdout
    assert "leaked" not in process.stderr
