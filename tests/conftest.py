"""Shared fixtures: every behavioural test runs on every backend.

``backend`` parametrizes a test over the serial reference, threads, and processes under the
default start method and under spawn (the default on macOS and Windows).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import lightwork

if TYPE_CHECKING:
    import psutil

BACKENDS = {
    "serial": {"backend": "serial"},
    "threads": {"backend": "threads", "max_workers": 2},
    "processes": {"backend": "processes", "max_workers": 2},
    "spawn": {"backend": "processes", "max_workers": 2, "start_method": "spawn"},
}
if sys.version_info >= (3, 14):  # subinterpreters: see tests/test_interpreters.py for the rest
    BACKENDS["interpreters"] = {"backend": "interpreters", "max_workers": 2}
PARALLEL = [name for name in BACKENDS if name != "serial"]
PROCESS_BACKENDS = ["processes", "spawn"]

MakeExecutor = Callable[..., lightwork.Executor]


def _factory(name: str) -> Iterator[MakeExecutor]:
    made: list[lightwork.Executor] = []

    def make(**overrides: Any) -> lightwork.Executor:
        options = {**BACKENDS[name], **overrides}
        if options["backend"] == "serial":
            options.pop("max_workers", None)
        executor = lightwork.Executor(**options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown(wait=True, cancel_futures=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On 3.14, subinterpreters' tests run last (their own file first, then the shared tests
    on that backend): a subinterpreter abandoned by a timed-out task (hang, in test_faults)
    lives until its task returns, and while any exists the process cannot fork, so the tests
    of fork pools would be refused (see _check_no_subinterpreters)."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith("tests/test_interpreters.py"):
            return 1
        callspec = getattr(item, "callspec", None)
        values = callspec.params.values() if callspec is not None else ()
        return 2 if any(isinstance(v, str) and v == "interpreters" for v in values) else 0

    if sys.version_info >= (3, 14):
        items.sort(key=rank)  # (stable: the order within each group is kept)


@pytest.fixture(autouse=True)
def no_subinterpreters_left() -> Iterator[None]:
    """On 3.14: a test that leaves subinterpreters (lightwork.map's warm pools) has them shut
    down after it, or a later test's fork-started workers would be refused (see
    _check_no_subinterpreters)."""
    yield
    interpreters = sys.modules.get("concurrent.interpreters")
    if interpreters is not None and len(interpreters.list_all()) > 1:
        from lightwork._engine._api import _shutdown_warm_pools

        _shutdown_warm_pools()


@pytest.fixture(params=list(BACKENDS))
def make_executor(request: pytest.FixtureRequest) -> Iterator[MakeExecutor]:
    """A factory of executors on each backend in turn; they are shut down after the test."""
    yield from _factory(request.param)


@pytest.fixture(params=PARALLEL)
def make_parallel_executor(request: pytest.FixtureRequest) -> Iterator[MakeExecutor]:
    yield from _factory(request.param)


@pytest.fixture(params=PROCESS_BACKENDS)
def make_process_executor(request: pytest.FixtureRequest) -> Iterator[MakeExecutor]:
    yield from _factory(request.param)


@pytest.fixture
def no_leftover_children() -> Iterator[None]:
    """Fails the test if it leaves a child process of ours running (forkserver excepted)."""
    import psutil  # here: test modules import this one, and psutil cannot load in a

    # subinterpreter, where backend="interpreters" imports them for their functions
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = 5.0
    import time

    end = time.monotonic() + deadline
    while True:
        left = [
            p
            for p in psutil.Process().children(recursive=True)
            if p.pid not in before and _is_worker(p)
        ]
        if not left or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


def _is_worker(process: psutil.Process) -> bool:
    try:
        return "forkserver" not in " ".join(process.cmdline()) and process.status() != "zombie"
    except Exception:  # psutil.Error: it went meanwhile
        return False


def pids_of(executor: lightwork.Executor) -> set[int]:
    return {w.pid for w in executor.statistics().workers if w.alive}


os.environ.setdefault("PYTHONFAULTHANDLER", "1")


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_TIMEOUT = 60  # seconds per script: each takes a few at most, even on a loaded machine


def run_example(name: str, *args: str, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``examples/name`` as a user would, and check how it exited."""
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        cwd=EXAMPLES,
    )
    assert process.returncode == returncode, (
        f"{name} {' '.join(args)} exited with {process.returncode}\n"
        f"--- stdout\n{process.stdout}\n--- stderr\n{process.stderr}"
    )
    return process
