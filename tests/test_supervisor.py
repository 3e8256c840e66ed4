"""The process backend's supervisor, seen from outside: what its thread rule and its death
branches promise (the attribution table itself is in test_death_attribution.py)."""

from __future__ import annotations

import threading
import time

import pytest

import lightwork

from tasks import broken_initializer, sleep_then


def test_a_pool_broken_by_its_initializer_keeps_saying_so() -> None:
    # Breaking the pool kills its workers: their deaths are not start-up deaths of their own.
    with lightwork.Executor(4, initializer=broken_initializer) as ex:
        futures = [ex.submit(abs, -i) for i in range(8)]
        for future in futures:
            with pytest.raises(lightwork.WorkerInitializationError):
                future.result(timeout=30)
        time.sleep(0.5)  # the killed workers' sentinels are handled meanwhile
        with pytest.raises(lightwork.WorkerInitializationError):
            ex.submit(abs, 1)


def test_terminate_from_another_thread_stops_the_workers_within_a_second() -> None:
    with lightwork.Executor(2, start_method="fork") as ex:
        future = ex.submit(sleep_then, (60, "never"))
        while ex.statistics().workers_started == 0:
            time.sleep(0.01)
        started = time.monotonic()
        stopper = threading.Thread(target=ex.terminate)
        stopper.start()
        stopper.join()
        assert time.monotonic() - started < 1.0
        with pytest.raises(lightwork.ExecutorShutdownError):
            future.result(timeout=5)
        assert not any(w.alive for w in ex.statistics().workers)
