"""The public surface: a change here is a change for every user, so it must be deliberate."""

from __future__ import annotations

import ast
import builtins
import concurrent.futures
import inspect
import sys
import types
import typing
from pathlib import Path

import pytest

import lightwork
import lightwork.lab
import lightwork.workloads

PUBLIC = {
    "BrokenWorkerError",
    "CheckpointError",
    "CheckpointInUseError",
    "CheckpointMismatchError",
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
    "SubinterpreterImportError",
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


# Public, but not in __all__: a star import would shadow the builtin and the standard module.
NOT_STARRED = {"map", "random"}
LAB_PUBLIC = {
    "scale",
    "ScalingReport",
    "ScalingPoint",
    "TimeBreakdown",
    "AmdahlFit",
    "GustafsonFit",
    "fit_amdahl",
    "fit_gustafson",
    "karp_flatt",
    "WORKLOADS",
    "Workload",
    "resolve",
}
WORKLOADS_PUBLIC = {
    "KERNELS",
    "TASK_SAMPLES",
    "PiEstimate",
    "bbp_pi",
    "bbp_pi_decimal",
    "count_inside_numpy",
    "count_inside_python",
    "monte_carlo_pi",
    "pi_hex",
    "pi_hex_digits",
    "split_samples",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(lightwork.__all__) == PUBLIC - NOT_STARRED
    assert all(hasattr(lightwork, name) for name in PUBLIC)


def test_a_star_import_shadows_no_builtin_and_no_standard_module() -> None:
    namespace: dict[str, object] = {}
    exec("from lightwork import *", namespace)
    names = set(namespace) - {"__builtins__"}
    assert names == PUBLIC - NOT_STARRED
    assert not names & (set(dir(builtins)) | set(sys.stdlib_module_names))


def test_type_checkers_see_exactly_the_names_that_load() -> None:
    # The TYPE_CHECKING imports mirror the one runtime list, _PUBLIC: both name each public
    # object and the module that defines it.
    tree = ast.parse(Path(lightwork.__file__).read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    seen = {
        (node.module, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = {
        (module.lstrip("."), name) for module, names in lightwork._PUBLIC.items() for name in names
    }
    assert seen == lazy
    assert {name for _, name in lazy} == PUBLIC


@pytest.mark.parametrize(
    ("module", "public"), [(lightwork.lab, LAB_PUBLIC), (lightwork.workloads, WORKLOADS_PUBLIC)]
)
def test_lab_and_workloads_surfaces(module: types.ModuleType, public: set[str]) -> None:
    assert set(module.__all__) == public
    for name in public:
        value = getattr(module, name)
        if callable(value) or isinstance(value, type):
            assert inspect.getdoc(value), f"{module.__name__}.{name}"


def test_statistics_auto_is_typed() -> None:
    hints = typing.get_type_hints(lightwork.ExecutorStatistics)
    assert "AutoChoice" in str(hints["auto"])


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
    assert issubclass(lightwork.CheckpointMismatchError, ValueError)
    for name in PUBLIC:
        value = getattr(lightwork, name)
        if isinstance(value, type) and issubclass(value, Exception) and name != "RemoteTraceback":
            assert issubclass(value, lightwork.LightworkError), name


def test_the_checkpoint_module_loads_on_first_access() -> None:
    import lightwork.checkpoint

    assert lightwork.checkpoint.__all__ == sorted(lightwork.checkpoint.__all__)
    for name in lightwork.checkpoint.__all__:
        assert getattr(lightwork.checkpoint, name).__doc__, name


def test_dir_lists_the_public_names_before_they_load() -> None:
    assert set(dir(lightwork)) >= PUBLIC  # tab completion, though names load on first use


def test_every_public_name_has_a_docstring() -> None:
    for name in PUBLIC:
        assert inspect.getdoc(getattr(lightwork, name)), name
