"""Bad input gets a clear error that names the problem, on every entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import lightwork

from conftest import MakeExecutor
from tasks import square

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"max_workers": 0}, "max_workers must be greater than 0"),
    ({"max_workers": -2}, "max_workers must be greater than 0"),
    ({"max_workers": 1.5}, "max_workers must be a positive int"),
    ({"backend": "gpu"}, "unknown backend 'gpu': choose one of 'serial'"),
    ({"backend": "thread"}, "unknown backend 'thread': did you mean 'threads'\\?"),
    ({"backend": None}, "unknown backend None: choose one of"),
    ({"chunksize": 0}, "chunksize must be at least 1"),
    ({"chunksize": "big"}, "chunksize must be a positive int"),
    ({"retries": -1}, "retries must be an int >= 0"),
    ({"task_timeout": 0}, "task_timeout must be a number of seconds > 0"),
    ({"retry_on": "ValueError"}, "retry_on must be an exception type"),
    ({"seed": -5}, "seed must be an int >= 0"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_option_raises_invalid_option_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(lightwork.InvalidOptionError, match=message):
        lightwork.map(square, [1, 2], **options)
    with pytest.raises(ValueError, match=message):  # also what users already catch
        lightwork.imap(square, [1, 2], **options)


def test_executor_rejects_bad_constructor_options() -> None:
    with pytest.raises(lightwork.InvalidOptionError, match="max_workers"):
        lightwork.Executor(0)
    with pytest.raises(lightwork.InvalidOptionError, match="max_workers"):
        lightwork.Executor(-3, backend="serial")  # serial uses one, but -3 is still a mistake
    with pytest.raises(lightwork.InvalidOptionError, match="unknown start_method 'vfork'"):
        lightwork.Executor(start_method="vfork")
    with pytest.raises(lightwork.InvalidOptionError, match="max_tasks_per_worker"):
        lightwork.Executor(max_tasks_per_worker=0)
    with pytest.raises(lightwork.InvalidOptionError, match="processes backend only"):
        lightwork.Executor(backend="threads", start_method="spawn")
    with pytest.raises(lightwork.InvalidArgumentError, match="initializer must be callable"):
        lightwork.Executor(initializer=42)  # type: ignore[arg-type]


def test_serial_backend_refuses_task_timeout() -> None:
    with pytest.raises(lightwork.InvalidOptionError, match="serial backend"):
        lightwork.map(square, [1], backend="serial", task_timeout=1)


def test_non_callable_is_a_type_error_naming_it() -> None:
    with pytest.raises(lightwork.InvalidArgumentError, match="fn must be callable, not int"):
        lightwork.map(42, [1])  # type: ignore[arg-type]


def test_non_iterable_is_a_type_error_naming_it() -> None:
    with pytest.raises(lightwork.InvalidArgumentError, match="iterable must be iterable, not int"):
        lightwork.map(square, 42)  # type: ignore[arg-type]


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'workers'"):
        lightwork.map(square, [1], workers=2)  # type: ignore[call-arg]


@pytest.mark.parametrize("call", [lightwork.map, lightwork.imap, lightwork.starmap])
def test_a_pool_option_given_to_a_call_says_where_it_belongs(call: Any) -> None:
    name = call.__name__
    with pytest.raises(
        lightwork.InvalidArgumentError, match=rf"lightwork\.{name}\(\).*'start_method'.*Executor"
    ):
        call(square, [1], start_method="fork")


def test_unpicklable_function_names_itself(make_executor: MakeExecutor) -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    with make_executor() as ex:
        if ex.backend not in ("processes", "interpreters"):
            assert list(ex.imap(uses_lock, [1, 2])) == [1, 2]  # nothing to pickle
            return
        with pytest.raises(lightwork.SerializationError, match=r"uses_lock.*could not be pickled"):
            ex.imap(uses_lock, [1, 2])
        future = ex.submit(uses_lock, 1)
        with pytest.raises(lightwork.SerializationError, match="could not be pickled"):
            future.result()
        assert list(ex.imap(square, [3])) == [9]  # still usable


def test_unpicklable_argument_fails_only_its_task(make_process_executor: MakeExecutor) -> None:
    with make_process_executor() as ex:
        items: list[Any] = [1, threading.Lock(), 3]
        results = list(ex.imap(type, items, return_exceptions=True))
        assert results[0] is int and results[2] is int
        assert isinstance(results[1], lightwork.SerializationError)
        assert "arguments of task 1 could not be pickled" in str(results[1])
        with pytest.raises(lightwork.SerializationError, match="task 1"):
            list(ex.imap(type, items))


def _cgroup_tree(tmp_path: Path, own: str, files: dict[str, str]) -> tuple[str, str]:
    """A fake /sys/fs/cgroup under tmp_path, and a fake /proc/self/cgroup saying ``own``."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    own_file = tmp_path / "self-cgroup"
    own_file.write_text(own)
    return str(root), str(own_file)


@pytest.mark.parametrize(
    ("own", "files", "cpus"),
    [
        # a container with its own cgroup namespace: the root's file is its own
        ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5),
        # systemd CPUQuota= on a service: the quota is on the process's own cgroup
        (
            "0::/system.slice/job.service\n",
            {"cpu.max": "max 100000\n", "system.slice/job.service/cpu.max": "50000 100000\n"},
            0.5,
        ),
        # the tightest of the cgroup and its ancestors
        (
            "0::/a/b\n",
            {"a/cpu.max": "100000 100000\n", "a/b/cpu.max": "300000 100000\n"},
            1.0,
        ),
        ("0::/a\n", {"cpu.max": "max 100000\n", "a/cpu.max": "max 100000\n"}, None),
        # cgroup v1, the cpu controller's hierarchy
        (
            "2:cpuacct:/\n1:cpu:/docker/abc\n0::/\n",
            {
                "cpu/docker/abc/cpu.cfs_quota_us": "200000\n",
                "cpu/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            2.0,
        ),
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ("", {}, None),  # no cgroup files at all (macOS, a bare chroot)
    ],
)
def test_cgroup_quota_is_the_tightest_on_the_process_cgroup_path(
    tmp_path: Path, own: str, files: dict[str, str], cpus: float | None
) -> None:
    from lightwork._core._cpus import _cgroup_cpu_quota

    root, own_file = _cgroup_tree(tmp_path, own, files)
    assert _cgroup_cpu_quota(root, own_file) == cpus


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_available_cpus_follows_the_affinity_mask() -> None:
    code = "import lightwork; print(lightwork.available_cpus())"
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "1"


def test_call_options_are_merged_once_and_never_change() -> None:
    from lightwork._core._options import CallOptions

    defaults = CallOptions()
    merged = defaults.merge(retries=3, chunksize=8)
    assert (merged.retries, merged.chunksize, merged.ordered) == (3, 8, True)
    assert (defaults.retries, defaults.chunksize) == (1, None)  # the defaults are untouched
    with pytest.raises(AttributeError, match="immutable"):
        merged.retries = 5  # type: ignore[misc]
    with pytest.raises(lightwork.InvalidOptionError, match="retries must be"):
        defaults.merge(retries=-1)
    with pytest.raises(lightwork.InvalidArgumentError, match="unknown option 'retry'"):
        defaults.merge(retry=2)


def test_an_executors_defaults_reach_every_call_unless_overridden() -> None:
    with lightwork.Executor(1, backend="threads", retries=4, seed=9) as ex:
        assert ex._options(retries=2).retries == 2
        assert ex._options().retries == 4 and ex._options().seed == 9
