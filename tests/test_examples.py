"""Every script in examples/ runs, with small arguments, and prints what it promises.

Each example runs as its own process (``sys.executable examples/NAME.py ARGS``), as a user
would run it, so the tests also check the ``__main__`` guard and pickling of functions defined
in a script. Only lower bounds of times are asserted: a loaded machine may be slow, never fast.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest

from conftest import EXAMPLES
from conftest import run_example as run

TESTED = {
    "calc_pi.py",
    "calc_pi2.py",
    "monte_carlo_pi.py",
    "monte_carlo_pi_mul.py",
    "montecarlo.py",
    "montecarlo2.py",
    "multi_args.py",
    "multiple_functions.py",
    "pooling.py",
    "queue_order.py",
    "thread_pool.py",
    "worker_pool.py",
}


def estimates(output: str, pattern: str) -> list[float]:
    found = [float(value) for value in re.findall(pattern, output)]
    assert found, f"no estimate matching {pattern!r} in:\n{output}"
    return found


def number(pattern: str, output: str) -> float:
    match = re.search(pattern, output)
    assert match is not None, f"nothing matching {pattern!r} in:\n{output}"
    return float(match.group(1))


def assert_near_pi(values: list[float], tolerance: float = 0.03) -> None:
    for value in values:
        assert abs(value - math.pi) < tolerance, values


# ---- every example -------------------------------------------------------------------------


ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.py"))


def test_every_example_is_tested() -> None:
    """Each example is run by this file or by another tests/test_examples_*.py file."""
    here = Path(__file__).parent
    tests = "".join(path.read_text() for path in here.glob("test_examples*.py"))
    assert [name for name in ALL_EXAMPLES if f'"{name}"' not in tests] == []


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_has_main_and_guard(name: str) -> None:
    tree = ast.parse((EXAMPLES / name).read_text(), filename=name)
    docstring = ast.get_docstring(tree)
    assert docstring and "tutorial" in docstring, "the docstring names the tutorial program"
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert mains, "a main() function"
    arguments = mains[0].args
    assert [a.arg for a in arguments.args] == ["argv"], "main(argv=None)"
    assert len(arguments.defaults) == 1
    assert isinstance(arguments.defaults[0], ast.Constant) and arguments.defaults[0].value is None
    guards = [
        n
        for n in tree.body
        if isinstance(n, ast.If)
        and isinstance(n.test, ast.Compare)
        and isinstance(n.test.left, ast.Name)
        and n.test.left.id == "__name__"
    ]
    assert guards, 'an if __name__ == "__main__": guard'


# ---- the Python multiprocessing tutorial --------------------------------------------------


def test_worker_pool() -> None:
    out = run("worker_pool.py", "--seconds", "0.1").stdout
    assert "[4, 16, 36, 64]" in out
    assert "= 1 round " in out
    assert re.search(r"elapsed time: \d+\.\d\d s", out)


def test_worker_pool_five_tasks_take_two_rounds() -> None:
    out = run("worker_pool.py", "5", "--seconds", "0.1").stdout
    assert "[4, 16, 36, 64, 100]" in out
    assert "5 tasks of 0.1 s on 4 workers = 2 rounds" in out
    computing = number(r"computing: (\d+\.\d+) s", out)
    assert computing >= 0.19  # two rounds of 0.1 s, whatever the machine


def test_multi_args() -> None:
    out = run("multi_args.py", "--seconds", "0.1").stdout
    assert out.count("[4, 64, 3125]") == 2  # starmap and Executor.map


def test_multiple_functions() -> None:
    out = run("multiple_functions.py").stdout
    assert "\n[5, 1, 7]\n" in f"\n{out}"
    assert "with submit(): [5, 1, 7]" in out
    assert "with a failing function: [5, ValueError(" in out
    assert "lightwork: raised by task 1" in out
    assert "invalid literal for int() with base 10: 'four'" in out


def test_queue_order() -> None:
    out = run("queue_order.py", "--seconds", "0.05").stdout
    expected = [4, 16, 36, 9, 25, 64, 81, 49]
    assert f"in input order: {expected}" in out
    completion = re.search(r"in completion order \(ordered=False\): (\[.*\])", out)
    assert completion is not None, out
    assert sorted(ast.literal_eval(completion.group(1))) == sorted(expected)


def test_monte_carlo_pi_serial() -> None:
    out = run("monte_carlo_pi.py", "1000000", "--seed", "1").stdout
    assert "1000000 samples" in out
    assert_near_pi(estimates(out, r"π estimate: (\d\.\d+)"))
    assert "95% confidence interval" in out


def test_monte_carlo_pi_mul() -> None:
    out = run("monte_carlo_pi_mul.py", "1000000", "--workers", "2").stdout
    assert "1000000 samples in 4 tasks" in out
    assert_near_pi(estimates(out, r"π estimate: (\d\.\d+)"))
    assert "serial and parallel estimates identical: True" in out


def test_calc_pi_sequential() -> None:
    out = run("calc_pi.py").stdout
    for precision in (1000, 1500, 2000):
        assert f"{precision:5} digits: 3.14159265358979323846" in out
    assert "every value is the more precise ones rounded: True" in out
    right = [int(n) for n in re.findall(r"the tutorial's first (\d+) digits are right", out)]
    assert len(right) == 3
    assert all(p - 5 <= n <= p for p, n in zip((1000, 1500, 2000), right, strict=True))


def test_calc_pi2_parallel_digits_agree() -> None:
    out = run("calc_pi2.py").stdout
    assert "2000 digits: 3.14159265358979323846" in out
    assert "digits agree with the sequential run: True" in out
    assert "digits agree across precisions: True" in out
    assert re.search(r"paralelly: \d+\.\d{3} s", out)


# ---- the multithreading and multiprocessing tutorial --------------------------------------


def test_thread_pool() -> None:
    log = run("thread_pool.py", "--seconds", "0.1").stderr
    for name in range(3):
        assert f"Thread {name}: starting" in log
        assert f"Thread {name}: finishing" in log
    assert "[lightwork-thread-" in log
    assert "results [0, 1, 2]" in log
    assert "0 of 3 calls failed" in log


def test_thread_pool_reports_a_failure_with_its_traceback() -> None:
    log = run("thread_pool.py", "--seconds", "0.1", "--fail", "1", returncode=1).stderr
    assert "Thread 1: finishing" not in log
    assert "Thread 0: finishing" in log and "Thread 2: finishing" in log
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: thread 1 failed on purpose" in log
    assert "1 of 3 calls failed" in log


def test_pooling() -> None:
    out = run("pooling.py", "--workers", "2").stdout
    assert "\n[1, 4, 9, 16, 25]\n" in out
    main_pid = int(number(r"main process id: (\d+)", out))
    worker_pids = {int(pid) for pid in re.findall(r"Worker process id for \d+: (\d+)", out)}
    assert worker_pids and main_pid not in worker_pids
    tasks = [int(n) for n in re.findall(r"worker \d+ \(pid \d+\): (\d+) tasks", out)]
    assert sum(tasks) == 5


def test_montecarlo_one_vs_five_processes() -> None:
    out = run("montecarlo.py", "500000", "--repeats", "2").stdout
    values = [float(v) for v in re.findall(r"^(\d\.\d{7})  in ", out, flags=re.MULTILINE)]
    assert len(values) == 4, out  # 2 runs on 1 process, 2 on 5 (capped to the tasks)
    assert_near_pi(values)
    assert values[:2] == values[2:]
    assert "same estimates for every process count: True" in out


def test_montecarlo2_argv_n_and_p() -> None:
    outputs = [
        run("montecarlo2.py", "1000000", processes, "--repeats", "2", "--seed", "1").stdout
        for processes in ("1", "2")
    ]
    runs = []
    for out in outputs:
        values = [float(v) for v in re.findall(r"^(\d\.\d{5}) ± ", out, flags=re.MULTILINE)]
        assert len(values) == 2, out
        assert_near_pi(values)
        runs.append(values)
    assert runs[0] == runs[1]  # seeded: the same estimates on 1 process and on 2
    assert "1000000 total iterations with 1 processes" in outputs[0]
    assert "1000000 total iterations with 2 processes" in outputs[1]
