"""The Dask backend: the same semantics as the local backends, on real Dask processes."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lightwork

from tasks import CustomError, add, fail_on, hang, kill_once, square

distributed = pytest.importorskip("distributed")


def draw(_: int) -> float:
    return lightwork.random().random()


@pytest.fixture(scope="module")
def cluster() -> Iterator[lightwork.Executor]:
    """One LocalCluster of two worker processes for the module: it takes seconds to start."""
    with lightwork.Executor(2, backend="dask") as executor:
        executor.submit(square, 1).result(timeout=60)
        yield executor


def test_map_imap_starmap_keep_order(cluster: lightwork.Executor) -> None:
    assert list(cluster.imap(square, range(2000))) == [x * x for x in range(2000)]
    assert cluster.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
    assert sorted(cluster.imap(square, range(100), ordered=False)) == [x * x for x in range(100)]


def test_progress_bar_counts_items(
    cluster: lightwork.Executor, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list(cluster.imap(square, range(40), progress=True)) == [x * x for x in range(40)]
    assert "40/40" in capsys.readouterr().err


def test_imap_is_lazy_on_an_endless_generator(cluster: lightwork.Executor) -> None:
    pulled: list[int] = []

    def numbers() -> Iterator[int]:
        n = 0
        while True:
            pulled.append(n)
            yield n
            n += 1

    results = cluster.imap(square, numbers())
    assert [next(results) for _ in range(10)] == [x * x for x in range(10)]
    results.close()
    assert len(pulled) < 1_000_000


def test_futures_are_real_concurrent_futures(cluster: lightwork.Executor) -> None:
    futures = [cluster.submit(square, n) for n in range(5)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)
    done, _ = concurrent.futures.wait(futures, timeout=60)
    assert len(done) == 5
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures)) == [0, 1, 4, 9, 16]


def test_task_exception_keeps_its_type_and_remote_traceback(cluster: lightwork.Executor) -> None:
    with pytest.raises(CustomError, match="task got 3") as info:
        list(cluster.imap(fail_on, range(10)))
    assert isinstance(info.value.__cause__, lightwork.RemoteTraceback)
    assert "lightwork: raised by task 3" in info.value.__notes__
    results = list(cluster.imap(fail_on, range(5), return_exceptions=True))
    assert isinstance(results[3], CustomError) and results[4] == 4


def test_seeded_run_is_bit_identical_to_the_local_backends(cluster: lightwork.Executor) -> None:
    expected = lightwork.map(draw, range(300), backend="serial", seed=99)
    assert list(cluster.imap(draw, range(300), seed=99, chunksize=7)) == expected
    assert list(cluster.imap(draw, range(300), seed=99)) == expected


def test_statistics_count_tasks_per_dask_worker(cluster: lightwork.Executor) -> None:
    before = cluster.statistics().tasks_done
    list(cluster.imap(square, range(500)))
    stats = cluster.statistics()
    assert stats.backend == "dask"
    assert stats.tasks_done - before == 500
    assert {w.pid for w in stats.workers} and os.getpid() not in {w.pid for w in stats.workers}


def test_task_timeout_fails_the_task_and_keeps_the_others(cluster: lightwork.Executor) -> None:
    def hang_on_one(x: int) -> int:
        return hang(x) if x == 1 else x

    started = time.monotonic()
    results = list(
        cluster.imap(
            hang_on_one, range(4), chunksize=1, task_timeout=1, retries=0, return_exceptions=True
        )
    )
    assert results[0] == 0 and results[2:] == [2, 3]
    assert isinstance(results[1], lightwork.TaskTimeoutError)
    assert time.monotonic() - started < 30


def test_killed_dask_worker_task_is_rerun(cluster: lightwork.Executor, tmp_path: Path) -> None:
    marker = str(tmp_path / "killed")
    items = [(x, marker if x == 3 else os.devnull) for x in range(6)]
    assert list(cluster.imap(kill_once, items, chunksize=1)) == [x * 10 for x in range(6)]


def test_function_that_workers_cannot_import_fails_clearly(
    scheduler_address: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    module = tmp_path / "only_here.py"
    module.write_text("def twice(x):\n    return 2 * x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here  # type: ignore[import-not-found]

        address = scheduler_address[0]
        with (
            lightwork.Executor(backend="dask", address=address) as ex,
            pytest.raises(lightwork.SerializationError, match="could not be unpickled"),
        ):
            ex.submit(only_here.twice, 2).result(timeout=60)
    finally:
        sys.path.remove(str(tmp_path))


def test_missing_distributed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes the import fail
    with pytest.raises(lightwork.MissingDependencyError, match=r"pip install 'lightwork\[dask\]'"):
        lightwork.Executor(backend="dask").submit(square, 1)
    with pytest.raises(ImportError):
        lightwork.map(square, [1], backend="dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A `dask scheduler` and two `dask worker` processes, on loopback."""
    dask = shutil.which("dask", path=os.path.dirname(sys.executable))
    if dask is None:
        pytest.skip("the dask command is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    # The workers import the tests' task functions, as a cluster's workers import your code.
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **quiet,  # type: ignore[arg-type]
    )
    workers = [
        subprocess.Popen(
            [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--nworkers", "1"],
            **quiet,  # type: ignore[arg-type]
        )
        for _ in range(2)
    ]
    try:
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.send_signal(signal.SIGTERM)
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_address_connects_to_a_running_scheduler(
    scheduler_address: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    address, _ = scheduler_address
    try:
        assert lightwork.map(square, range(100), backend="dask", address=address) == [
            x * x for x in range(100)
        ]
    finally:
        # map keeps its client as a warm pool until exit; the scheduler dies first, at the end
        # of this module, and a client left reconnecting prints tracebacks as Python exits.
        from lightwork._engine._api import _shutdown_warm_pools

        _shutdown_warm_pools()
    with lightwork.Executor(backend="dask", address=address) as ex:
        marker = str(tmp_path / "killed")
        items = [(x, marker if x == 2 else os.devnull) for x in range(5)]
        # The worker holding task 2 is killed mid-task: the task is re-run elsewhere.
        assert list(ex.imap(kill_once, items, chunksize=1)) == [x * 10 for x in range(5)]


def test_client_option_uses_an_existing_client_and_leaves_it_open(
    scheduler_address: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    address, _ = scheduler_address
    with distributed.Client(address, timeout=30) as client:
        with lightwork.Executor(backend="dask", client=client) as ex:
            assert ex.submit(square, 12).result(timeout=60) == 144
        assert client.status == "running"


def total_of(shared: object, offset: int) -> int:
    return sum(shared.value) + offset  # type: ignore[attr-defined]


def test_shared_objects_are_scattered_once(cluster: lightwork.Executor) -> None:
    import functools

    data = list(range(100_000))
    with lightwork.share(data) as shared:
        first = list(cluster.imap(functools.partial(total_of, shared), range(4), chunksize=1))
        again = cluster.starmap(total_of, [(shared, 10)])
        backend = cluster._backends["dask"]  # what the executor scattered, for this test only
        assert len(backend._scattered) == 1
    assert first == [sum(data) + k for k in range(4)]
    assert again == [sum(data) + 10]


def test_the_scaling_lab_runs_on_dask() -> None:
    from lightwork.lab import scale

    report = scale(square, list(range(200)), max_workers=[1], backends=["dask"], repeat=1)
    (point,) = report.points
    assert point.backend == "dask" and point.workers == 1 and point.speedup > 0


CTRL_C_DRIVER = """
import sys, time, lightwork

def slow(i):
    open(f"{sys.argv[1]}/started-{i}", "w").close()
    time.sleep(60)
    return i

if __name__ == "__main__":
    try:
        if sys.argv[2] == "map":
            lightwork.map(slow, range(8), backend="dask", max_workers=2, chunksize=1)
        else:
            with lightwork.Executor(2, backend="dask") as ex:
                [f.result() for f in [ex.submit(slow, i) for i in range(4)]]
    except KeyboardInterrupt:
        print("STOPPED", time.monotonic(), flush=True)
        raise
"""


@pytest.mark.parametrize("mode", ["map", "executor"])
def test_one_ctrl_c_stops_the_local_cluster_within_a_second(tmp_path: Path, mode: str) -> None:
    import psutil

    script = tmp_path / "driver.py"
    script.write_text(CTRL_C_DRIVER)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2:  # both Dask workers are in a task
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.05)
        everyone = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        sent = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = process.communicate(timeout=30)
        stopped = float(out.split("STOPPED")[1].split()[0])
        assert stopped - sent < 1.0, "KeyboardInterrupt reached the caller late"
        assert err.count("KeyboardInterrupt") == 1, err
        assert process.returncode != 0
        end = time.monotonic() + 5
        while any(psutil.pid_exists(pid) for pid in everyone) and time.monotonic() < end:
            time.sleep(0.05)
        left = [pid for pid in everyone if psutil.pid_exists(pid)]
        assert left == [], "Dask processes left behind after Ctrl-C"
    finally:
        process.kill()


def test_terminate_kills_our_workers_and_leaves_the_environment_alone() -> None:
    before = dict(os.environ)
    ex = lightwork.Executor(1, backend="dask")
    futures = [ex.submit(hang, 30) for _ in range(2)]  # the cluster starts in submit()
    time.sleep(1.0)  # the first is running on the only worker
    started = time.monotonic()
    ex.terminate()
    assert time.monotonic() - started < 5
    assert all(f.cancelled() or f.done() for f in futures)
    assert dict(os.environ) == before  # no nanny restarted a worker and wrote its variables
