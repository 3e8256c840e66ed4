"""Per-task random streams: the same numbers whatever runs the task."""

from __future__ import annotations

import pytest

import lightwork

from conftest import MakeExecutor


def draw_numpy(_: int) -> list[float]:
    return [float(x) for x in lightwork.rng().random(3)]


def draw_python(_: int) -> float:
    return lightwork.random().random()


def draw_twice(_: int) -> tuple[float, float]:
    return float(lightwork.rng().random()), float(lightwork.rng().random())


@pytest.fixture(scope="module")
def serial_reference() -> list[list[float]]:
    return lightwork.map(draw_numpy, range(40), backend="serial", seed=2024)


def test_seeded_numpy_streams_match_serial(
    make_executor: MakeExecutor, serial_reference: list[list[float]]
) -> None:
    with make_executor() as ex:
        if ex.backend == "interpreters":
            pytest.skip("NumPy cannot load in a subinterpreter (test_interpreters.py tests that)")
        assert list(ex.imap(draw_numpy, range(40), seed=2024)) == serial_reference


@pytest.mark.parametrize("chunksize", [1, 3, 40])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_seeded_streams_ignore_worker_count_and_chunking(
    workers: int, chunksize: int, serial_reference: list[list[float]]
) -> None:
    with lightwork.Executor(workers, backend="threads") as ex:
        assert list(ex.imap(draw_numpy, range(40), seed=2024, chunksize=chunksize)) == (
            serial_reference
        )


def test_seeded_python_streams_match_across_backends(make_executor: MakeExecutor) -> None:
    expected = lightwork.map(draw_python, range(20), backend="serial", seed=5)
    with make_executor() as ex:
        assert list(ex.imap(draw_python, range(20), seed=5)) == expected


def test_executor_seed_is_the_default_for_its_calls() -> None:
    expected = lightwork.map(draw_python, range(5), backend="serial", seed=9)
    with lightwork.Executor(2, backend="threads", seed=9) as ex:
        assert list(ex.imap(draw_python, range(5))) == expected


def test_tasks_get_different_streams() -> None:
    values = lightwork.map(draw_python, range(100), backend="serial", seed=1)
    assert len(set(values)) == 100


def test_a_task_keeps_one_stream_across_calls() -> None:
    ((first, second),) = lightwork.map(draw_twice, [0], backend="serial", seed=3)
    assert first != second  # the generator continues, it is not re-created


def test_unseeded_runs_differ_and_never_repeat_across_workers(
    make_executor: MakeExecutor,
) -> None:
    with make_executor() as ex:
        a = list(ex.imap(draw_python, range(50)))
        b = list(ex.imap(draw_python, range(50)))
    assert a != b
    assert len(set(a)) == 50


def test_different_seeds_give_different_streams() -> None:
    a = lightwork.map(draw_python, range(5), backend="serial", seed=1)
    b = lightwork.map(draw_python, range(5), backend="serial", seed=2)
    assert a != b


def test_rng_outside_a_task_says_why_it_fails() -> None:
    with pytest.raises(lightwork.LightworkError, match="only available inside a task"):
        lightwork.rng()
    with pytest.raises(lightwork.LightworkError, match="only available inside a task"):
        lightwork.random()


def test_submitted_tasks_are_reproducible_by_submission_order() -> None:
    with (
        lightwork.Executor(backend="serial", seed=11) as a,
        lightwork.Executor(2, backend="threads", seed=11) as b,
    ):
        first = [a.submit(draw_python, 0).result() for _ in range(4)]
        second = [f.result() for f in [b.submit(draw_python, 0) for _ in range(4)]]
    assert first == second


def test_a_repeated_seeded_run_repeats_exactly(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        runs = [list(ex.imap(draw_python, [0, 1], seed=5)) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


class Flaky(Exception):
    pass


_attempts: dict[int, int] = {}


def draw_then_fail_once(x: int) -> float:
    value = lightwork.random().random()
    _attempts[x] = _attempts.get(x, 0) + 1
    if _attempts[x] == 1:
        raise Flaky
    return value


def test_a_retried_task_sees_its_stream_from_the_start() -> None:
    _attempts.clear()
    (retried,) = lightwork.map(
        draw_then_fail_once, [0], backend="serial", seed=8, retries=1, retry_on=Flaky
    )
    assert retried == lightwork.map(draw_python, [0], backend="serial", seed=8)[0]


def draw_then_fail_once_at_three(x: int) -> float:
    return draw_then_fail_once(x) if x == 3 else draw_python(x)


def test_streams_stay_with_their_tasks_around_a_failure_inside_a_chunk() -> None:
    # A chunk runs its tasks in one C-level map; after task 3 fails and is retried in place,
    # the map resumes at task 4, and every task still draws from its own stream.
    _attempts.clear()
    with lightwork.Executor(1, backend="threads") as ex:
        drawn = list(
            ex.imap(draw_then_fail_once_at_three, range(8), chunksize=8, seed=4, retry_on=Flaky)
        )
        _attempts.clear()
        failed = list(
            ex.imap(
                draw_then_fail_once_at_three,
                range(8),
                chunksize=8,
                seed=4,
                retries=0,
                retry_on=Flaky,
                return_exceptions=True,
            )
        )
    _attempts.clear()
    expected = lightwork.map(draw_python, range(8), backend="serial", seed=4, chunksize=1)
    assert drawn == expected
    assert isinstance(failed[3], Flaky) and failed[:3] + failed[4:] == expected[:3] + expected[4:]


def draw_after_a_nested_map(x: int) -> float:
    if x == 1:  # a nested map in the same thread, over one task of its own
        lightwork.map(draw_python, [0], backend="serial", seed=99)
    return draw_python(x)


@pytest.mark.parametrize("backend", ["serial", "threads"])
def test_a_nested_map_leaves_the_enclosing_chunks_streams_alone(backend: str) -> None:
    expected = lightwork.map(draw_python, range(6), backend="serial", seed=3, chunksize=1)
    got = lightwork.map(
        draw_after_a_nested_map, range(6), backend=backend, max_workers=1, seed=3, chunksize=6
    )
    assert got == expected
