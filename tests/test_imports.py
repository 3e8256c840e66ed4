"""What each process imports: ``import lightwork`` in a program, and a worker's start.

A worker imports only its task loop (lightwork._core._run and the wire format): every
spawned worker, and a forkserver before its first worker, pays for each module before the
first task runs, so typing, dataclasses, inspect, logging and the parent's bookkeeping stay out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Modules a worker must not need: the standard library's slow imports (concurrent.futures
# brings logging) and lightwork's parent-side modules.
NOT_IN_A_WORKER = (
    "typing",
    "dataclasses",
    "inspect",
    "logging",
    "concurrent.futures",
    "cloudpickle",
    "lightwork._core._tasks",
    "lightwork._engine._executor",
    "lightwork._core._errors",
    "lightwork._core._options",
)


def run_python(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.splitlines()


def test_import_is_cheap_and_loads_no_heavy_module() -> None:
    seconds, heavy = run_python(
        "import sys, time; t = time.perf_counter(); import lightwork; "
        "print(time.perf_counter() - t); "
        "print(sorted(m for m in ('numpy', 'tqdm', 'dask', 'matplotlib', 'cloudpickle') "
        "if m in sys.modules))"
    )
    assert heavy == "[]"
    assert float(seconds) < 1.0  # the 100 ms target is measured in bench/, not in a unit test


def test_the_worker_loop_imports_nothing_it_does_not_need() -> None:
    (loaded,) = run_python(
        "import sys; import lightwork._backends._processes._worker; "
        f"print([m for m in {NOT_IN_A_WORKER!r} if m in sys.modules])"
    )
    assert loaded == "[]"


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_started_worker_has_imported_only_its_loop(start_method: str) -> None:
    # eval, a builtin, travels by reference and runs in the worker's task loop; the session
    # (python -c) has no main module for the worker to import.
    (loaded,) = run_python(
        "import lightwork\n"
        f"with lightwork.Executor(1, start_method={start_method!r}) as ex:\n"
        "    modules = ex.submit(eval, \"sorted(__import__('sys').modules)\").result()\n"
        f"print([m for m in {NOT_IN_A_WORKER!r} if m in modules])\n"
    )
    assert loaded == "[]"


def test_a_session_sends_importable_functions_without_cloudpickle() -> None:
    # In python -c, a library function travels by reference; one the session defines travels
    # by value (workers cannot import the session), and only that loads cloudpickle.
    lines = run_python(
        "import operator, sys, lightwork\n"
        "with lightwork.Executor(1) as ex:\n"
        "    print(list(ex.map(operator.neg, [1, 2])), 'cloudpickle' in sys.modules)\n"
        "    def session_function(x):\n"
        "        return x * 10\n"
        "    print(list(ex.map(session_function, [1, 2])), 'cloudpickle' in sys.modules)\n"
    )
    assert lines == ["[-1, -2] False", "[10, 20] True"]


def test_a_worker_mapping_a_large_array_loads_no_parent_side_module() -> None:
    # NumPy itself imports typing and inspect; what must stay out is the parent's array
    # machinery (cloudpickle, the segment bookkeeping).
    (loaded,) = run_python(
        "import numpy as np, lightwork\n"
        "with lightwork.Executor(1) as ex:\n"
        "    expr = \"(a.sum(), sorted(__import__('sys').modules))\"\n"
        "    total, modules = ex.submit(eval, expr, {'a': np.ones(1 << 18)}).result()\n"
        "assert total == 1 << 18\n"
        "parent_side = ('cloudpickle', 'lightwork._backends._processes._arrays', "
        "'lightwork._core._tasks')\n"
        "print([m for m in parent_side if m in modules])\n"
    )
    assert loaded == "[]"


def test_a_module_registered_to_travel_by_value_does(tmp_path: Path) -> None:
    # The module is not on the workers' path: by reference, they could not import it.
    (tmp_path / "elsewhere.py").write_text("def tenfold(x):\n    return 10 * x\n")
    lines = run_python(
        "import importlib.util, sys, cloudpickle, lightwork\n"
        f"spec = importlib.util.spec_from_file_location('elsewhere', {str(tmp_path)!r} + "
        "'/elsewhere.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['elsewhere'] = module\n"
        "spec.loader.exec_module(module)\n"
        "cloudpickle.register_pickle_by_value(module)\n"
        "with lightwork.Executor(1) as ex:\n"
        "    print(list(ex.map(module.tenfold, [1, 2])))\n"
    )
    assert lines == ["[10, 20]"]


def test_a_script_runs_where_the_working_directory_shadows_a_preloaded_module(
    tmp_path: Path,
) -> None:
    # The fork server preloads what a script's workers import, from its own sys.path, which
    # starts with the working directory: a pkgutil.py there must not be what workers get.
    script = tmp_path / "job.py"
    script.write_text(
        "import lightwork\n"
        "if __name__ == '__main__':\n"
        "    with lightwork.Executor(2, start_method='forkserver') as ex:\n"
        "        print(list(ex.map(abs, [-1, -2])))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pkgutil.py").write_text("NOT_THE_STANDARD_PKGUTIL = True\n")
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=elsewhere,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1, 2]"


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_pool_does_without_multiprocessing_connection(start_method: str) -> None:
    # Its import (tempfile, shutil, bz2, lzma...) is ~4 ms before a first pool's first result;
    # lightwork's own channel does the job. (A fork server imports it itself.)
    (loaded,) = run_python(
        "import sys, lightwork\n"
        "name = 'multiprocessing.connection'\n"
        f"with lightwork.Executor(1, start_method={start_method!r}) as ex:\n"
        "    in_worker = ex.submit(eval, f'{name!r} in __import__(\"sys\").modules').result()\n"
        "print([in_worker, name in sys.modules])\n"
    )
    assert loaded == "[False, False]"
