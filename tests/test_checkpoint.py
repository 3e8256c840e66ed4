"""checkpoint=PATH: outcomes kept in SQLite, a re-run skips them, another run is refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lightwork
import lightwork.checkpoint
from lightwork.checkpoint import Checkpoint

SRC = str(Path(__file__).resolve().parent.parent / "src")
BACKENDS = ["serial", "threads", "processes", "auto", "dask"]


def logged_square(item: tuple[int, str]) -> int:
    """Square the number, noting each execution in the log file named in the item."""
    index, log = item
    with open(log, "a") as f:
        f.write(f"{index}\n")
    return index * index


def runs(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def fails_on_three(x: int) -> int:
    if x == 3:
        raise KeyError(x)
    return x


def draw(_: int) -> float:
    return lightwork.random().random()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_finished_checkpoint_is_a_cache_on_every_backend(backend: str, tmp_path: Path) -> None:
    if backend == "dask":
        pytest.importorskip("distributed")
    log = tmp_path / "log"
    items = [(i, str(log)) for i in range(30)]
    path = tmp_path / "run.db"
    first = lightwork.map(logged_square, items, backend=backend, checkpoint=path)
    assert first == [i * i for i in range(30)]
    assert sorted(runs(log)) == list(range(30))
    again = lightwork.map(logged_square, items, backend=backend, checkpoint=path)
    assert again == first
    assert sorted(runs(log)) == list(range(30))  # nothing ran again
    assert lightwork.checkpoint.load(path).results == dict(enumerate(first))


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "auto"])
@pytest.mark.parametrize("ordered", [True, False])
def test_a_stopped_imap_resumes_running_only_what_is_not_stored(
    backend: str, ordered: bool, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    path = tmp_path / "run.db"

    def items() -> Iterator[tuple[int, str]]:
        return ((i, str(log)) for i in range(200))

    # The executor's exit waits for the tasks still running when the loop stopped: they are
    # not stored (they end after close()), so they count among what the second run must run.
    with lightwork.Executor(2, backend=backend) as executor:
        stream = executor.imap(
            logged_square, items(), checkpoint=path, chunksize=5, ordered=ordered
        )
        seen = [next(stream) for _ in range(50)]
        stream.close()
    stored = lightwork.checkpoint.summary(path).done
    assert stored >= 50
    before = len(runs(log))
    rest = list(
        lightwork.imap(
            logged_square, items(), backend=backend, checkpoint=path, chunksize=5, ordered=ordered
        )
    )
    if ordered:
        assert rest == [i * i for i in range(200)]
    else:  # the stored results as the input reaches them, the others as they finish
        assert sorted(rest) == [i * i for i in range(200)]
        assert set(rest) >= set(seen)
    assert len(runs(log)) - before == 200 - stored  # each task not stored ran once


FAILING = {3, 50, 51, 120}


def logged_failing_at_some(item: tuple[int, str]) -> int:
    index, log = item
    with open(log, "a") as f:
        f.write(f"{index}\n")
    if index in FAILING and not os.path.exists(log + ".fixed"):
        raise ValueError(index)
    return index * index


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "auto"])
def test_resuming_runs_the_gaps_between_stored_runs(backend: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    items = [(i, str(log)) for i in range(200)]
    path = tmp_path / "run.db"
    first = lightwork.map(
        logged_failing_at_some, items, backend=backend, checkpoint=path, return_exceptions=True
    )
    assert [i for i, r in enumerate(first) if isinstance(r, ValueError)] == sorted(FAILING)
    (tmp_path / "log.fixed").touch()
    before = len(runs(log))
    again = lightwork.map(logged_failing_at_some, items, backend=backend, checkpoint=path)
    assert again == [i * i for i in range(200)]
    assert sorted(runs(log)[before:]) == sorted(FAILING)  # only the failed tasks ran again


def thread_after_a_nap(_: int) -> int:
    time.sleep(0.002)  # (mostly waiting: auto chooses threads)
    return threading.get_ident()


def test_auto_with_a_checkpoint_reads_lazily_and_runs_in_parallel(tmp_path: Path) -> None:
    read = 0

    def numbers() -> Iterator[int]:
        nonlocal read
        for i in range(5000):
            read += 1
            yield i

    path = tmp_path / "run.db"
    with lightwork.Executor(2, backend="auto") as executor:
        stream = executor.imap(thread_after_a_nap, numbers(), checkpoint=path)
        next(stream)
        assert read < 100  # not thousands read ahead before the probe
        idents = {next(stream) for _ in range(150)}
        stream.close()
    assert len(idents - {threading.get_ident()}) >= 2  # not one chunk on one worker


def logged_nap_from_600(item: tuple[int, str]) -> int:
    index, log = item
    with open(log, "a") as f:
        f.write(f"{index}\n")
    if index >= 600:
        time.sleep(0.002)
    return index


def test_a_resumed_run_sizes_its_chunks_as_a_fresh_one(tmp_path: Path) -> None:
    log = tmp_path / "log"
    path = tmp_path / "run.db"
    items = [(i, str(log)) for i in range(3000)]
    with lightwork.Executor(2, backend="threads") as executor:
        first = executor.imap(logged_nap_from_600, items, checkpoint=path)
        for _ in range(600):
            next(first)
        first.close()
        stored = len(lightwork.checkpoint.load(path).results)
        before = len(settle(log))
        again = executor.imap(logged_nap_from_600, items, checkpoint=path)
        for _ in range(stored + 1):  # the stored results, and the first one run again
            next(again)
        ran = len(runs(log)) - before
        again.close()
    # Replaying stored tasks must not grow the chunks as a run that measured nothing does
    # (1, 2, 4, ...): the first task to run came in one chunk with hundreds of others.
    assert ran < 200


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_loop_broken_early_keeps_the_results_finished_but_not_consumed(
    backend: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    path = tmp_path / "run.db"
    items = [(i, str(log)) for i in range(200)]
    stream = lightwork.imap(logged_square, items, backend=backend, checkpoint=path, chunksize=2)
    for index, _ in enumerate(stream):
        if index == 3:
            settled = settle(log)
            break
    stream.close()
    assert len(settled) > 4
    assert sorted(lightwork.checkpoint.load(path).results) == sorted(settled)


def settle(log: Path) -> list[int]:
    """The tasks logged once those sent so far have all finished (the log stops growing)."""
    seen = -1
    while len(runs(log)) != seen:
        seen = len(runs(log))
        time.sleep(0.2)
    return runs(log)


def test_a_replayed_call_shows_its_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.db"
    lightwork.map(abs, range(7), backend="threads", checkpoint=path)
    capsys.readouterr()
    assert lightwork.map(abs, range(7), backend="threads", checkpoint=path, progress=True) == list(
        range(7)
    )
    assert "7/7" in capsys.readouterr().err  # (a finished checkpoint: replayed, no worker)


async def async_square(x: int) -> int:
    return x * x


def test_an_async_function_takes_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    assert lightwork.map(async_square, range(5), backend="threads", checkpoint=path) == [
        0,
        1,
        4,
        9,
        16,
    ]
    assert lightwork.checkpoint.load(path).results == {i: i * i for i in range(5)}


def test_remove_deletes_the_checkpoint_but_not_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    stream = lightwork.imap(abs, range(100), backend="serial", checkpoint=path, chunksize=1)
    next(stream)
    with pytest.raises(lightwork.CheckpointInUseError):
        lightwork.checkpoint.remove(path)
    stream.close()
    lightwork.checkpoint.remove(path)
    assert list(tmp_path.iterdir()) == []
    text = write_text(tmp_path / "notes.txt", "keep me")
    with pytest.raises(lightwork.CheckpointError, match="not a lightwork checkpoint"):
        lightwork.checkpoint.remove(text)
    assert text.read_text() == "keep me"


def test_starmap_and_the_executor_take_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "star.db"
    assert lightwork.starmap(pow, [(2, 3), (3, 2)], backend="threads", checkpoint=path) == [8, 9]
    with lightwork.Executor(2, backend="threads") as ex:
        assert ex.starmap(pow, [(2, 3), (3, 2)], checkpoint=path) == [8, 9]
        assert list(ex.imap(abs, [-1, -2], checkpoint=tmp_path / "imap.db")) == [1, 2]
    with pytest.raises(lightwork.CheckpointMismatchError, match="another function"):
        lightwork.map(pow, [(2, 3), (3, 2)], backend="threads", checkpoint=path)


def test_failed_tasks_run_again_unless_told_to_keep_them(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    out = lightwork.map(
        fails_on_three, range(5), backend="threads", checkpoint=path, return_exceptions=True
    )
    assert isinstance(out[3], KeyError)
    contents = lightwork.checkpoint.load(path)
    assert list(contents.failures) == [3] and isinstance(contents.failures[3], KeyError)
    assert "KeyError" in str(contents.failures[3].__cause__)  # the traceback text
    assert lightwork.checkpoint.summary(path).failed == 1
    kept = Checkpoint(path, rerun_failed=False)
    with pytest.raises(KeyError) as raised:  # stored, raised in its place
        lightwork.map(fails_on_three, range(5), backend="serial", checkpoint=kept)
    assert "lightwork: raised by task 3" in raised.value.__notes__


def test_a_failed_task_that_now_succeeds_replaces_its_failure(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    flaky = tmp_path / "flaky.py"
    flaky.write_text(
        "FAIL = True\n"
        "def f(x):\n    if FAIL and x == 1:\n        raise ValueError(x)\n    return x\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import flaky as module  # type: ignore[import-not-found]

        lightwork.map(module.f, range(3), backend="serial", checkpoint=path, return_exceptions=True)
        module.FAIL = False
        assert lightwork.map(module.f, range(3), backend="serial", checkpoint=path) == [0, 1, 2]
        assert lightwork.checkpoint.load(path).failures == {}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("flaky", None)


def test_seed_none_resumes_with_the_same_random_streams(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    stream = lightwork.imap(draw, range(40), backend="threads", checkpoint=path, chunksize=4)
    head = [next(stream) for _ in range(10)]
    stream.close()
    resumed = lightwork.map(draw, range(40), backend="threads", checkpoint=path, chunksize=4)
    assert resumed[:10] == head
    assert lightwork.map(draw, range(40), backend="serial", checkpoint=path) == resumed


def changed_generator(change_at: int | None) -> Iterator[int]:
    for i in range(20):
        yield -1 if i == change_at else i


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda p: lightwork.map(str, range(20), backend="serial", checkpoint=p),
            "another function",
        ),
        (
            lambda p: lightwork.map(abs, changed_generator(7), backend="serial", checkpoint=p),
            "input item 7 differs",
        ),
        (
            lambda p: lightwork.map(abs, range(20), backend="serial", seed=1, checkpoint=p),
            "seed=None",
        ),
        (
            lambda p: lightwork.map(abs, range(21), backend="serial", checkpoint=p),
            "over 20 input items",
        ),
        (lambda p: lightwork.map(abs, iter(range(19)), backend="serial", checkpoint=p), "has 19"),
    ],
    ids=["function", "input item", "seed", "longer", "shorter"],
)
def test_another_run_is_refused_and_nothing_stored_changes(
    call, message: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.db"
    lightwork.map(abs, changed_generator(None), backend="serial", checkpoint=path)
    before = lightwork.checkpoint.load(path)
    with pytest.raises(lightwork.CheckpointMismatchError, match=message) as raised:
        call(path)
    assert "fresh=True" in str(raised.value)
    assert lightwork.checkpoint.load(path) == before
    # fresh=True starts over
    assert lightwork.map(
        str, range(3), backend="serial", checkpoint=Checkpoint(path, fresh=True)
    ) == ["0", "1", "2"]


def test_items_of_mixed_kinds_resume_whatever_the_chunk_sizes(tmp_path: Path) -> None:
    # (an int read in a batch of ints was its own fingerprint, read among other kinds the
    # CRC of its pickle: chunks cut elsewhere on resume made the same input "changed")
    path = tmp_path / "run.db"
    items = [1, 2, "a", 3, 4, None, 5, 6, 7, 8, 9, 2**70]
    stream = lightwork.imap(repr, items, backend="serial", checkpoint=path, chunksize=1)
    assert [next(stream) for _ in range(7)] == [repr(item) for item in items[:7]]
    stream.close()
    resumed = lightwork.map(repr, items, backend="serial", checkpoint=path, chunksize=5)
    assert resumed == [repr(item) for item in items]


def test_a_changed_function_body_is_noticed(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec("def f(x):\n    return x + 1\n", namespace)
    path = tmp_path / "run.db"
    lightwork.map(namespace["f"], range(3), backend="serial", checkpoint=path)  # type: ignore[arg-type]
    exec("def f(x):\n    return x + 2\n", namespace)
    with pytest.raises(lightwork.CheckpointMismatchError, match="have changed since"):
        lightwork.map(namespace["f"], range(3), backend="serial", checkpoint=path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "define",
    [
        "import functools\n@functools.lru_cache\ndef f(x):\n    return x + {k}\n",
        "class F:\n    def __call__(self, x):\n        return x + {k}\nf = F()\n",
    ],
    ids=["lru_cache", "callable instance"],
)
def test_a_changed_body_behind_a_wrapper_is_noticed(define: str, tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    for k, outcome in [(1, None), (2, lightwork.CheckpointMismatchError)]:
        namespace: dict[str, Any] = {}
        exec(define.format(k=k), namespace)
        if outcome is None:
            lightwork.map(namespace["f"], range(3), backend="threads", checkpoint=path)
        else:
            with pytest.raises(outcome, match="have changed since"):
                lightwork.map(namespace["f"], range(3), backend="threads", checkpoint=path)


def multiply_by(k: int) -> Callable[[int], int]:
    def times(x: int) -> int:
        return x * k

    return times


def test_a_closure_over_another_value_is_another_function(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    assert lightwork.map(multiply_by(2), range(3), backend="threads", checkpoint=path) == [0, 2, 4]
    with pytest.raises(lightwork.CheckpointMismatchError, match="have changed since"):
        lightwork.map(multiply_by(3), range(3), backend="threads", checkpoint=path)
    assert lightwork.map(multiply_by(2), range(3), backend="threads", checkpoint=path) == [0, 2, 4]


def test_a_function_with_a_set_literal_is_the_same_in_the_next_process(tmp_path: Path) -> None:
    # (its code holds a frozenset of str, whose order changes with PYTHONHASHSEED)
    program = tmp_path / "fruit.py"
    program.write_text(
        "import sys, lightwork\n"
        "def is_fruit(word):\n"
        "    return word in {'apple', 'banana', 'cherry', 'date', 'elderberry'}\n"
        "print(lightwork.map(is_fruit, ['apple', 'kale'], backend='serial', "
        "checkpoint=sys.argv[1]))\n"
    )
    for hash_seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, str(program), str(tmp_path / "run.db")],
            env={**os.environ, "PYTHONPATH": SRC, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "[True, False]\n"


def test_a_second_user_of_a_checkpoint_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    stream = lightwork.imap(abs, range(100), backend="threads", checkpoint=path, chunksize=1)
    next(stream)
    with pytest.raises(lightwork.CheckpointInUseError, match="in use"):
        lightwork.map(abs, range(100), backend="threads", checkpoint=path)
    assert lightwork.checkpoint.summary(path).running
    stream.close()
    assert lightwork.map(abs, range(100), backend="threads", checkpoint=path) == list(range(100))


def test_asking_about_a_run_in_its_own_process_keeps_its_sqlite_locks(tmp_path: Path) -> None:
    # (a descriptor of the file opened and closed here dropped the POSIX locks of the run's
    # connections: another process's reader, closing, then deleted the WAL under the run)
    path = tmp_path / "run.db"
    stream = lightwork.imap(abs, range(1000), backend="threads", checkpoint=path, chunksize=1)
    for _ in range(10):
        next(stream)
    assert lightwork.checkpoint.summary(path).running
    with pytest.raises(lightwork.CheckpointInUseError):
        lightwork.map(abs, range(1000), backend="threads", checkpoint=str(path))
    reader = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM meta'); c.close()"
    )
    subprocess.run([sys.executable, "-c", reader, str(path)], check=True)
    assert Path(f"{path}-wal").exists()
    assert len(lightwork.checkpoint.load(path).results) >= 10
    assert list(stream) == list(range(10, 1000))


def test_forked_workers_do_not_keep_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with lightwork.Executor(2, backend="processes", start_method="fork") as executor:
        assert executor.starmap(pow, [(2, 3), (3, 2)], checkpoint=path) == [8, 9]
        assert not lightwork.checkpoint.summary(path).running  # (the pool still lives)
        assert executor.starmap(pow, [(2, 3), (3, 2)], checkpoint=path) == [8, 9]


def test_the_lock_goes_with_a_sigkilled_holder(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time, lightwork
            stream = lightwork.imap(abs, range(10), backend="serial", checkpoint={str(path)!r})
            next(stream)
            print("holding", flush=True)
            time.sleep(60)
        """),
        ],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    with pytest.raises(lightwork.CheckpointInUseError):
        lightwork.map(abs, range(10), backend="serial", checkpoint=path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert lightwork.map(abs, range(10), backend="serial", checkpoint=path) == list(range(10))


class Unpicklable:
    def __reduce__(self) -> object:
        raise TypeError("this result won't pickle")


def unpicklable_at_two(x: int) -> object:
    return Unpicklable() if x == 2 else x


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def other_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing" / "run.db", "directory .* does not exist"),
        (
            lambda d: write_text(d / "notes.txt", "not a database\n" * 100),
            "not a lightwork checkpoint",
        ),
        (lambda d: other_sqlite(d / "other.db"), "not a lightwork checkpoint"),
    ],
    ids=["no directory", "a text file", "another database"],
)
def test_a_path_that_is_no_checkpoint_is_refused_untouched(
    make, message: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(lightwork.CheckpointError, match=message):
        lightwork.map(abs, range(3), backend="serial", checkpoint=path)
    assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in path.parent.glob("*")) == (
        [path.name] if before is not None else []
    )


@pytest.mark.parametrize(
    "use",
    [
        lambda p: lightwork.map(abs, range(3), backend="serial", checkpoint=p),
        lightwork.checkpoint.load,
        lightwork.checkpoint.summary,
        lightwork.checkpoint.remove,
    ],
    ids=["map", "load", "summary", "remove"],
)
def test_a_directory_is_named_as_one(use, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lightwork.CheckpointError, match="is a directory"):
        use(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_left_by_a_run_killed_at_once_is_named_and_usable(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    path.touch()  # (the lock creates the file; SIGKILL before the schema is committed)
    with pytest.raises(lightwork.CheckpointError, match="is empty"):
        lightwork.checkpoint.summary(path)
    lightwork.checkpoint.remove(path)
    assert not path.exists()
    path.touch()
    assert lightwork.map(abs, [-1, -2], backend="serial", checkpoint=path) == [1, 2]


def test_a_read_only_checkpoint_is_refused_but_readable(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    lightwork.map(abs, range(3), backend="serial", checkpoint=path)
    path.chmod(0o444)
    with pytest.raises(lightwork.CheckpointError, match="read-only"):
        lightwork.map(abs, range(3), backend="serial", checkpoint=path)
    assert lightwork.checkpoint.load(path).results == {0: 0, 1: 1, 2: 2}


def test_an_unpicklable_result_is_yielded_and_stored_as_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    out = lightwork.map(unpicklable_at_two, range(4), backend="threads", checkpoint=path)
    assert isinstance(out[2], Unpicklable)
    contents = lightwork.checkpoint.load(path)
    assert contents.results == {0: 0, 1: 1, 3: 3}
    assert "can't be pickled" in str(contents.failures[2])
    assert lightwork.checkpoint.summary(path).left == 1  # (not a failure of the task's)
    # Its result is computed again on resume, even when stored failures are kept.
    again = lightwork.map(
        unpicklable_at_two,
        range(4),
        backend="serial",
        checkpoint=Checkpoint(path, rerun_failed=False),
    )
    assert isinstance(again[2], Unpicklable) and again[:2] == [0, 1] and again[3] == 3


def test_a_bad_checkpoint_option_is_named() -> None:
    with pytest.raises(lightwork.InvalidOptionError, match="checkpoint must be a path"):
        lightwork.map(abs, [1], backend="serial", checkpoint=3)  # type: ignore[call-overload]


def test_the_cli_reports_done_failed_and_left(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    stream = lightwork.imap(
        fails_on_three,
        iter(range(100)),
        backend="serial",
        checkpoint=path,
        return_exceptions=True,
        chunksize=1,
    )
    [next(stream) for _ in range(10)]
    stream.close()
    run = [sys.executable, "-m", "lightwork", "checkpoint", str(path)]
    env = {**os.environ, "PYTHONPATH": SRC}
    text = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert "total not known yet" in text and "failed    1" in text
    report = json.loads(
        subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert report["failed"] == 1 and report["done"] >= 9 and report["total"] is None
    list(
        lightwork.imap(
            fails_on_three,
            iter(range(100)),
            backend="serial",
            checkpoint=path,
            return_exceptions=True,
        )
    )
    report = json.loads(
        subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert (report["done"], report["failed"], report["total"], report["left"]) == (99, 1, 100, 1)
    assert report["rate"] > 0 and report["eta_seconds"] >= 0
    bad = subprocess.run(
        [*run[:-1], str(tmp_path / "none.db")], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_a_call_without_checkpoint_imports_no_sqlite() -> None:
    code = (
        "import sys, lightwork; lightwork.map(abs, range(9), backend='threads'); "
        "print('sqlite3' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "False\n"


# ---- the proof: a program killed at 90% finishes, when run again, with only the rest -------

KILLED_PROGRAM = """
import os, signal, sys, time
import lightwork

def task(i):
    with open(os.environ["CHECKPOINT_LOG"], "a") as log:  # every execution, from every worker
        log.write(f"{i}\\n")
    deadline = time.perf_counter() + 2e-4
    while time.perf_counter() < deadline:
        pass
    return i, lightwork.random().random()

def items(n):
    yield from range(n)  # a generator: its length is unknown until it ends

if __name__ == "__main__":
    db, out, n, kill_at, signal_name = sys.argv[1:]
    results = lightwork.imap(
        task, items(int(n)), backend="processes", max_workers=2, seed=7, chunksize=10,
        checkpoint=db,
    )
    with open(out, "w") as f:
        for k, (i, value) in enumerate(results):
            f.write(f"{i} {value!r}\\n")
            if k == int(kill_at):
                f.flush()
                os.kill(os.getpid(), getattr(signal, signal_name))
"""
PROOF_TASKS = 6000
KILL_AT = PROOF_TASKS * 9 // 10


def run_program(tmp: Path, db: Path, out: Path, kill_at: int, signal_name: str = "SIGKILL") -> int:
    program = tmp / "program.py"
    program.write_text(KILLED_PROGRAM)
    env = {**os.environ, "PYTHONPATH": SRC, "CHECKPOINT_LOG": str(tmp / "log")}
    command = [sys.executable, str(program), str(db), str(out), str(PROOF_TASKS), str(kill_at)]
    return subprocess.run([*command, signal_name], env=env, capture_output=True).returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("uninterrupted")
    assert run_program(tmp, tmp / "run.db", tmp / "out", -1) == 0
    return (tmp / "out").read_text()


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_a_run_killed_at_90_percent_resumes_with_only_the_rest(
    signal_name: str, uninterrupted: str, tmp_path: Path
) -> None:
    db, log = tmp_path / "run.db", tmp_path / "log"
    code = run_program(tmp_path, db, tmp_path / "first", KILL_AT, signal_name)
    assert code != 0  # killed, or ended by the KeyboardInterrupt
    assert len((tmp_path / "first").read_text().splitlines()) == KILL_AT + 1
    stored = lightwork.checkpoint.summary(db)
    assert stored.total is None  # the generator was not read to its end
    ran_before = len(runs(log))
    assert run_program(tmp_path, db, tmp_path / "second", -1) == 0
    ran_again = len(runs(log)) - ran_before
    # Only the tasks without a stored outcome ran again...
    assert ran_again == PROOF_TASKS - stored.done
    # ...which are the last 10% and what was in flight: 2 workers x a few chunks of 10, and
    # the chunks queued for the commit under way.
    assert ran_again <= PROOF_TASKS - (KILL_AT + 1) + 300
    # Every result exactly once, in order, the same as a run never interrupted.
    assert (tmp_path / "second").read_text() == uninterrupted
    contents = lightwork.checkpoint.load(db)
    assert contents.total == PROOF_TASKS and len(contents.results) == PROOF_TASKS


DISK_FULL_PROGRAM = """
import sys, time
import lightwork

def big(i):
    time.sleep(0.005)  # commits come one batch at a time until the disk is full
    return bytes(20_000) + i.to_bytes(4, "little")

if __name__ == "__main__":
    try:
        out = lightwork.map(
            big, range(300), backend="threads", max_workers=2, chunksize=5, checkpoint=sys.argv[1]
        )
        print("finished", len(out), out[299][-4:] == (299).to_bytes(4, "little"))
    except lightwork.CheckpointError as error:
        print("error:", error)
    import sqlite3
    db = sqlite3.connect(sys.argv[1])
    print("integrity:", db.execute("PRAGMA integrity_check").fetchone()[0])
    print("stored:", lightwork.checkpoint.summary(sys.argv[1]).done)
"""


def test_a_full_disk_is_a_clear_error_and_the_database_stays_valid(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("SKIPPED LOUDLY: a full disk is simulated with a tiny tmpfs: needs root")
    program = tmp_path / "program.py"
    program.write_text(DISK_FULL_PROGRAM)
    disk = tmp_path / "disk"
    disk.mkdir()
    db = disk / "run.db"
    python = f"{sys.executable} {program} {db}"
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {disk} && {python} && "
        f"mount -o remount,size=32m {disk} && {python}"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
    )
    if "mount:" in result.stderr or (result.returncode and "unshare:" in result.stderr):
        pytest.skip(f"SKIPPED LOUDLY: can't mount a tmpfs here: {result.stderr.strip()}")
    full, then = result.stdout.split("stored:", 1)[0], result.stdout
    assert "error:" in full and "database or disk is full" in full, result.stdout + result.stderr
    assert "holds every outcome committed before" in full
    assert result.stdout.count("integrity: ok") == 2
    stored_when_full = int(then.split("stored:")[1].split()[0])
    assert 0 < stored_when_full < 300
    assert "finished 300 True" in then  # the same call, given room, resumes and finishes
