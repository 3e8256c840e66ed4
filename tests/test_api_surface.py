"""The public surface: a change here is a change for every user, so it must be deliberate."""

from __future__ import annotations

import concurrent.futures
import inspect

import lightwork

PUBLIC = {
    "BrokenWorkerError",
    "Executor",
    "ExecutorShutdownError",
    "ExecutorStatistics",
    "InvalidArgumentError",
    "InvalidOptionError",
    "LightworkError",
    "MissingDependencyError",
    "Pipeline",
    "PipelineStatistics",
    "RemoteTraceback",
    "ScalingReport",
    "SerializationError",
    "Shared",
    "SharedArray",
    "SharedClosedError",
    "SharedLock",
    "SharedValue",
    "StageStatistics",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerInitializationError",
    "WorkerStatistics",
    "available_cpus",
    "imap",
    "map",
    "random",
    "rng",
    "scale",
    "share",
    "starmap",
}
CALL_OPTIONS = ["backend", "max_workers", "chunksize", "ordered", "progress"]


def test_all_lists_exactly_the_public_names() -> None:
    assert set(lightwork.__all__) == PUBLIC
    assert all(hasattr(lightwork, name) for name in PUBLIC)


def test_map_imap_starmap_share_the_fixed_options() -> None:
    for function in (lightwork.map, lightwork.imap, lightwork.starmap):
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:2] in (["fn", "iterable"],)
        assert list(parameters)[2 : 2 + len(CALL_OPTIONS)] == CALL_OPTIONS
        assert parameters["backend"].default == "processes"
        assert parameters["max_workers"].default is None
        assert parameters["chunksize"].default is None
        assert parameters["ordered"].default is True
        assert parameters["progress"].default is False
        assert all(p.kind is p.KEYWORD_ONLY for n, p in parameters.items() if n in CALL_OPTIONS)


def test_executor_signature_is_a_process_pool_drop_in() -> None:
    parameters = inspect.signature(lightwork.Executor).parameters
    assert list(parameters)[:7] == [
        "max_workers",
        "backend",
        "initializer",
        "initargs",
        "max_tasks_per_worker",
        "start_method",
        "retries",
    ]
    assert issubclass(lightwork.Executor, concurrent.futures.Executor)
    map_parameters = inspect.signature(lightwork.Executor.map).parameters
    assert map_parameters["timeout"].default is None
    assert map_parameters["chunksize"].default == 1
    shutdown = inspect.signature(lightwork.Executor.shutdown).parameters
    assert shutdown["wait"].default is True
    assert shutdown["cancel_futures"].kind is inspect.Parameter.KEYWORD_ONLY


def test_errors_subclass_what_users_already_catch() -> None:
    assert issubclass(lightwork.InvalidOptionError, ValueError)
    assert issubclass(lightwork.InvalidArgumentError, TypeError)
    assert issubclass(lightwork.TaskTimeoutError, TimeoutError)
    assert issubclass(lightwork.WorkerCrashedError, concurrent.futures.BrokenExecutor)
    assert issubclass(lightwork.WorkerInitializationError, concurrent.futures.BrokenExecutor)
    assert issubclass(lightwork.ExecutorShutdownError, RuntimeError)
    for name in PUBLIC:
        value = getattr(lightwork, name)
        if isinstance(value, type) and issubclass(value, Exception) and name != "RemoteTraceback":
            assert issubclass(value, lightwork.LightworkError), name


def test_dir_lists_the_public_names_before_they_load() -> None:
    assert set(dir(lightwork)) >= PUBLIC  # tab completion, though names load on first use


def test_every_public_name_has_a_docstring() -> None:
    for name in PUBLIC:
        assert inspect.getdoc(getattr(lightwork, name)), name
