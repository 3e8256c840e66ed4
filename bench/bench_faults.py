"""What process pools do when things go wrong: lightwork against the usual suspects.

    python bench/bench_faults.py                       # every library x fault, about 3 minutes
    python bench/bench_faults.py --markdown            # and the tables as Markdown, for a README
    python bench/bench_faults.py --only pebble --fault sigkill,timeout --timeout 10

Each cell maps ``faults_tasks.task`` over ``range(8)`` with 2 workers, in a fresh driver process
of its own (``start_new_session=True``: the driver leads a process group, so the watchdog can
kill it and everything it started in one go). Task 3 misbehaves once (a marker file makes the
first attempt the only bad one, so a retry succeeds):

    sigkill      the worker running task 3 gets SIGKILL
    segfault     task 3 segfaults (ctypes.string_at(0))
    timeout      task 3 sleeps an hour; each library's own time limit is used where it has one
                 (pebble timeout=1, mpire task_timeout=1, joblib timeout=1 [per result wait],
                 lightwork task_timeout=1; Pool and ProcessPoolExecutor have none)
    sigint       Ctrl-C: SIGINT to the driver's whole process group 1 s after both workers
                 started a 30 s task; did the run stop within 2 s, do workers survive 2 s later?
    parent_kill  the driver is SIGKILLed 1 s after both workers started a 30 s task; how many of
                 its descendants (pids recorded from inside the driver) are alive 3 s later?

A driver that is still running ``--timeout`` seconds (default 20) after it started (or after its
SIGINT) is a "hang": its process group is killed. Every process the cell started (found by pid,
process group and an environment tag that all descendants inherit) is killed before the next
cell and again at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
N_TASKS = 8
N_WORKERS = 2
TASK_TIMEOUT = 1.0  # each library's per-task (or per-wait) time limit, for the timeout fault
SIGNAL_DELAY = 1.0  # SIGINT / SIGKILL this long after both workers started a long task
STOP_LIMIT = 2.0  # "stopped" after Ctrl-C means: the driver process exited within this
SIGINT_SURVIVOR_WAIT = 2.0  # look for surviving workers this long after the driver exited
ORPHAN_WAIT = 3.0  # count orphans this long after the driver was SIGKILLed
EXIT_GRACE = 2.0  # after a simple fault: how long processes may take to go away
TAG_VAR = "BENCH_FAULTS_TAG"

LIBRARIES = {
    "pool": "multiprocessing.Pool",
    "ppe": "ProcessPoolExecutor",
    "joblib": "joblib (loky)",
    "mpire": "mpire",
    "pebble": "pebble",
    "lightwork": "lightwork",
}
FAULTS = {
    "sigkill": "worker SIGKILLed",
    "segfault": "segfault",
    "timeout": "over-time task",
    "sigint": "Ctrl-C",
    "parent_kill": "parent SIGKILLed",
}
SIMPLE_FAULTS = ("sigkill", "segfault", "timeout")
LEGEND = (
    f"{N_TASKS} tasks on {N_WORKERS} workers; task 3 misbehaves once, so a retry succeeds. "
    "lightwork: lightwork.map(retries=1, task_timeout=1 for the over-time task). "
    "Time limits: pebble timeout=1, mpire task_timeout=1, joblib timeout=1; Pool and "
    "ProcessPoolExecutor have none. Ctrl-C: SIGINT to the process group 1 s after both workers "
    "started a 30 s task; 'no workers left' is checked 2 s after the process exited. Parent "
    "SIGKILLed: descendants alive 3 s after the kill. Times are wall time from starting the "
    "process until it exited or was killed (interpreter start and imports included)."
)
LONG_FAULTS = ("sigint", "parent_kill")


# ---- the driver: one library, one fault, in its own process -----------------------------------


def run_pool(fn: Callable[[int], int], timeout: float | None) -> list[Any]:
    import multiprocessing

    with multiprocessing.Pool(N_WORKERS) as pool:  # no per-task time limit exists
        return pool.map(fn, range(N_TASKS))


def run_ppe(fn: Callable[[int], int], timeout: float | None) -> list[Any]:
    from concurrent.futures import ProcessPoolExecutor

    # map(timeout=) bounds the caller's wait, but nothing stops the task: no per-task limit.
    with ProcessPoolExecutor(N_WORKERS) as executor:
        return list(executor.map(fn, range(N_TASKS)))


def run_joblib(fn: Callable[[int], int], timeout: float | None) -> list[Any]:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=N_WORKERS, backend="loky", timeout=timeout)
    return list(parallel(delayed(fn)(i) for i in range(N_TASKS)))


def run_mpire(fn: Callable[[int], int], timeout: float | None) -> list[Any]:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=N_WORKERS) as pool:
        return list(pool.map(fn, range(N_TASKS), task_timeout=timeout))


def run_pebble(fn: Callable[[int], int], timeout: float | None) -> list[Any]:
    from pebble import ProcessPool

    results: list[Any] = []
    with ProcessPool(max_workers=N_WORKERS) as pool:
        outcomes = pool.map(fn, range(N_TASKS), timeout=timeout).result()
        while True:  # pebble's iterator raises a task's error and can then be resumed
            try:
                results.append(next(outcomes))
            except StopIteration:
                break
            except Exception as error:
                results.append(error)
    return results


def run_lightwork(fn: Callable[[int], int], timeout: float | None) -> list[Any]:
    import lightwork

    return lightwork.map(fn, range(N_TASKS), max_workers=N_WORKERS, retries=1, task_timeout=timeout)


RUNNERS: dict[str, Callable[[Callable[[int], int], float | None], list[Any]]] = {
    "pool": run_pool,
    "ppe": run_ppe,
    "joblib": run_joblib,
    "mpire": run_mpire,
    "pebble": run_pebble,
    "lightwork": run_lightwork,
}


def _describe(error: BaseException) -> dict[str, str]:
    kind = type(error)
    lines = str(error).strip().splitlines()
    return {
        "type": kind.__qualname__,
        "module": kind.__module__,
        "message": _clip(lines[0]) if lines else "(no message)",
    }


def _clip(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _write_json(path: Path, data: object) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def _record_descendants(path: Path) -> None:
    """Keep ``path`` listing this process's descendants (pid, create time), from inside."""
    me = psutil.Process()
    seen: dict[int, float] = {}
    while True:
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                seen.setdefault(child.pid, child.create_time())
        _write_json(path, seen)
        time.sleep(0.1)


def drive(library: str, fault: str, workdir: Path) -> None:
    # SIGUSR2 dumps every thread's stack to the log: the watchdog asks before killing a hang.
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    (workdir / "main-thread").write_text(str(threading.main_thread().ident))
    sys.path.insert(0, str(HERE))
    import faults_tasks

    fn = functools.partial(faults_tasks.task, fault=fault, workdir=str(workdir))
    timeout = TASK_TIMEOUT if fault == "timeout" else None
    if fault in LONG_FAULTS:
        threading.Thread(
            target=_record_descendants, args=(workdir / "pids.json",), daemon=True
        ).start()
    result: dict[str, Any] = {"pid": os.getpid()}
    started = time.monotonic()
    try:
        values = RUNNERS[library](fn, timeout)
    except KeyboardInterrupt:
        result.update(status="interrupted", caught=time.monotonic())
    except BaseException as error:
        result.update(status="raised", error=_describe(error))
    else:
        result.update(
            status="returned",
            values=[
                {"error": _describe(v)} if isinstance(v, BaseException) else {"value": v}
                for v in values
            ],
        )
    result["map_seconds"] = time.monotonic() - started
    _write_json(workdir / "result.json", result)
    print("driver done", flush=True)  # then the interpreter exits: atexit handlers run


# ---- the benchmark: a watchdog around each driver ---------------------------------------------


@dataclass
class Cell:
    library: str
    fault: str
    outcome: str = ""
    caller_saw: str = "-"
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)
    runs: dict[int, int] = field(default_factory=dict)  # task index: times it started

    @property
    def short(self) -> str:
        """The outcome, the exception type the caller saw if any, the wall time."""
        text = self.outcome
        if self.outcome.startswith("whole run lost (exception)"):
            text = self.outcome.replace("(exception)", f"({self.caller_saw})", 1)
        elif self.fault in SIMPLE_FAULTS and "lost (others kept)" in self.outcome:
            text = f"{self.outcome}: {self.caller_saw.split(' for ')[0]}"
        return f"{text}; {self.wall:.1f} s"


def _role(process: psutil.Process, driver_pid: int) -> str:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "process"
    if process.pid == driver_pid:
        return "driver"
    for marker, role in (
        ("forkserver", "forkserver"),
        ("resource_tracker", "resource tracker"),
        ("semaphore_tracker", "semaphore tracker"),
    ):
        if marker in command:
            return role
    return "worker"


def related_processes(
    pgid: int, tag: str, known: dict[int, float] | None = None
) -> dict[int, psutil.Process]:
    """Live (non-zombie) processes of a cell: known pids, its process group, or its env tag."""
    found: dict[int, psutil.Process] = {}
    known = known or {}
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            same = process.pid in known and abs(process.create_time() - known[process.pid]) < 0.05
            if same or os.getpgid(process.pid) == pgid or process.environ().get(TAG_VAR) == tag:
                found[process.pid] = process
        except (psutil.Error, OSError):
            continue
    return found


def kill_all(pgid: int, tag: str, known: dict[int, float] | None = None) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(3):
        left = related_processes(pgid, tag, known)
        if not left:
            return
        for process in left.values():
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(list(left.values()), timeout=1)


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def _wait_for_tasks(proc: subprocess.Popen[bytes], workdir: Path, deadline: float) -> bool:
    """Wait until both workers run a long task; False if the driver ended or time ran out."""
    log = workdir / "started.log"
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= N_WORKERS:
            return True
        time.sleep(0.02)
    return False


def _where_blocked(proc: subprocess.Popen[bytes], workdir: Path) -> str:
    """Where the driver's main thread is stuck, innermost call first (from faulthandler)."""
    log = workdir / "driver.log"
    try:
        before = log.stat().st_size
        main = int((workdir / "main-thread").read_text())
        os.kill(proc.pid, signal.SIGUSR2)
    except (OSError, ValueError):
        return ""
    time.sleep(0.3)
    with open(log, "rb") as file:
        file.seek(before)
        dump = file.read().decode(errors="replace").splitlines()
    calls: list[str] = []
    in_main = False
    for line in dump:
        if "(most recent call first)" in line:
            ident = line.split("0x", 1)[1].split()[0] if "0x" in line else ""
            in_main = bool(ident) and int(ident, 16) == main
        elif in_main and line.strip().startswith("File "):
            path, _, function = line.strip()[5:].partition(" in ")
            module = Path(path.split('"')[1]).stem
            calls.append(f"{module}.{function.strip()}")
    if not calls:
        return ""
    return "main thread blocked in " + " < ".join(calls[:5])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _runs(workdir: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for line in (workdir / "runs.log").read_text().splitlines():
            index = int(line.split()[0])
            counts[index] = counts.get(index, 0) + 1
    return counts


def _count_roles(processes: Iterable[psutil.Process], driver_pid: int) -> str:
    roles: dict[str, int] = {}
    for process in processes:
        role = _role(process, driver_pid)
        roles[role] = roles.get(role, 0) + 1
    return ", ".join(f"{n} {role}{'s' if n > 1 else ''}" for role, n in sorted(roles.items()))


def _saw(error: dict[str, str]) -> str:
    return error["type"]


def run_cell(library: str, fault: str, watchdog: float, root: Path, tag: str) -> Cell:
    cell = Cell(library, fault)
    workdir = Path(tempfile.mkdtemp(prefix=f"{library}-{fault}-", dir=root))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env[TAG_VAR] = tag
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    command = [sys.executable, str(Path(__file__).resolve()), "--driver", library, fault]
    with open(workdir / "driver.log", "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            [*command, str(workdir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pgid = proc.pid
    known: dict[int, float] = {}
    try:
        if fault in SIMPLE_FAULTS:
            _simple(cell, proc, workdir, started, watchdog, tag)
        elif fault == "sigint":
            _sigint(cell, proc, workdir, started, watchdog, tag, known)
        else:
            _parent_kill(cell, proc, workdir, started, watchdog, tag, known)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait()
        kill_all(pgid, tag, known)
    cell.notes = [note for note in cell.notes if note]
    if cell.outcome.startswith("driver failed"):
        tail = (workdir / "driver.log").read_text(errors="replace").strip().splitlines()[-5:]
        cell.notes.append(" | ".join(tail))
    return cell


def _simple(
    cell: Cell,
    proc: subprocess.Popen[bytes],
    workdir: Path,
    started: float,
    watchdog: float,
    tag: str,
) -> None:
    exited = _wait(proc, started + watchdog)
    cell.wall = time.monotonic() - started
    result = _read_json(workdir / "result.json")
    runs = cell.runs = _runs(workdir)
    fired = (workdir / "fault-fired").exists()
    if not fired:
        cell.notes.append("task 3 never misbehaved")
    if runs:
        repeated = {i: n for i, n in sorted(runs.items()) if n > 1}
        cell.notes.append(
            "runs: "
            + (", ".join(f"task {i} x{n}" for i, n in repeated.items()) or "each once")
            + _never_started(N_TASKS - len(runs))
        )
    if result is None:
        if exited:
            cell.outcome = f"driver failed (exit code {proc.returncode})"
        else:
            cell.outcome = "hang"
            cell.caller_saw = "nothing"
            cell.notes.append(f"map still blocked after {watchdog:g} s: process group killed")
            cell.notes.append(_where_blocked(proc, workdir))
        return
    cell.notes.append(f"map call {result['map_seconds']:.1f} s")
    if result["status"] == "raised":
        cell.outcome = "whole run lost (exception)"
        cell.caller_saw = _saw(result["error"])
        cell.notes.append(f"{result['error']['type']}: {result['error']['message']}")
    elif result["status"] == "returned":
        values = result["values"]
        good = [i for i, v in enumerate(values) if v.get("value") == i * i]
        failed = [i for i, v in enumerate(values) if "error" in v]
        if len(good) == N_TASKS:
            retried = runs.get(3, 0) > 1
            cell.outcome = f"{'retried, ' if retried else ''}all {N_TASKS} results"
            cell.caller_saw = "no error"
        elif failed and len(good) + len(failed) == N_TASKS:
            lost = ", ".join(map(str, failed))
            cell.outcome = f"task {lost} lost (others kept)"
            kinds = sorted({_saw(values[i]["error"]) for i in failed})
            cell.caller_saw = f"{'/'.join(kinds)} for task {lost}"
            for i in failed:
                error = values[i]["error"]
                cell.notes.append(f"task {i}: {error['type']}: {error['message']}")
        else:
            cell.outcome = f"wrong results ({len(good)} of {N_TASKS} right)"
    else:
        cell.outcome = f"unexpected: {result['status']}"
    if not exited:
        cell.outcome += f", then hung at exit (killed at {watchdog:g} s)"
        cell.notes.append(_where_blocked(proc, workdir))
        return
    left, _ = _survivors(proc.pid, tag, {}, EXIT_GRACE, early=True)
    if left:
        cell.outcome += f"; {len(left)} processes left running"
        cell.notes.append("left running after the driver exited: " + _count_roles(left, proc.pid))


def _never_started(count: int) -> str:
    if not count:
        return ""
    return f"; {count} task{'s' if count > 1 else ''} never started"


def _survivors(
    driver_pid: int, tag: str, known: dict[int, float], window: float, early: bool
) -> tuple[list[psutil.Process], float | None]:
    """Poll for ``window`` s: (processes alive at the end, when the last one vanished)."""
    start = time.monotonic()
    gone_at: float | None = None
    while True:
        left = list(related_processes(driver_pid, tag, known).values())
        now = time.monotonic()
        if left:
            gone_at = None
        elif gone_at is None:
            gone_at = now - start
            if early:
                return left, gone_at
        if now - start >= window:
            return left, gone_at
        time.sleep(0.05)


def _ready_to_signal(
    cell: Cell, proc: subprocess.Popen[bytes], workdir: Path, started: float, watchdog: float
) -> bool:
    """Wait until the driver's workers run both tasks, then a moment more; or record that
    they never did."""
    if not _wait_for_tasks(proc, workdir, started + watchdog):
        cell.wall = time.monotonic() - started
        cell.outcome = "driver failed (workers never started both tasks)"
        return False
    time.sleep(SIGNAL_DELAY)
    return True


def _sigint(
    cell: Cell,
    proc: subprocess.Popen[bytes],
    workdir: Path,
    started: float,
    watchdog: float,
    tag: str,
    known: dict[int, float],
) -> None:
    if not _ready_to_signal(cell, proc, workdir, started, watchdog):
        return
    for child in psutil.Process(proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            known[child.pid] = child.create_time()
    known.update({int(k): v for k, v in (_read_json(workdir / "pids.json") or {}).items()})
    signalled = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    exited = _wait(proc, signalled + watchdog)
    stopped = time.monotonic()
    cell.wall = stopped - started
    result = _read_json(workdir / "result.json") or {}
    if result.get("status") == "interrupted":
        cell.caller_saw = "KeyboardInterrupt"
        cell.notes.append(
            f"KeyboardInterrupt reached the caller {result['caught'] - signalled:.2f} s "
            "after SIGINT"
        )
    elif result.get("status") == "raised":
        cell.caller_saw = _saw(result["error"])
        cell.notes.append(f"{result['error']['type']}: {result['error']['message']}")
    elif result.get("status") == "returned":
        cell.caller_saw = "map returned"
    else:
        cell.caller_saw = "nothing"
    if not exited:
        cell.outcome = f"did not stop within {watchdog:g} s (hang)"
        cell.notes.append(_where_blocked(proc, workdir))
        cell.notes.append("process group killed")
        return
    took = stopped - signalled
    if took <= STOP_LIMIT:
        cell.outcome = f"stopped in {took:.2f} s"
    else:
        cell.outcome = f"stopped only after {took:.1f} s"
    time.sleep(max(0.0, SIGINT_SURVIVOR_WAIT - (time.monotonic() - stopped)))
    left = list(related_processes(proc.pid, tag, known).values())
    if left:
        cell.outcome += f"; {len(left)} left running"
        cell.notes.append(
            f"alive {SIGINT_SURVIVOR_WAIT:g} s after the driver exited: "
            + _count_roles(left, proc.pid)
        )
    else:
        cell.outcome += ", no workers left"


def _parent_kill(
    cell: Cell,
    proc: subprocess.Popen[bytes],
    workdir: Path,
    started: float,
    watchdog: float,
    tag: str,
    known: dict[int, float],
) -> None:
    if not _ready_to_signal(cell, proc, workdir, started, watchdog):
        return
    recorded = {int(k): v for k, v in (_read_json(workdir / "pids.json") or {}).items()}
    known.update(recorded)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cell.wall = time.monotonic() - started
    left, gone_at = _survivors(proc.pid, tag, known, ORPHAN_WAIT, early=False)
    cell.caller_saw = "(killed)"
    cell.notes.append(f"{len(recorded)} descendants recorded by the driver")
    if left:
        cell.outcome = f"{len(left)} orphans left"
        cell.notes.append(
            f"alive {ORPHAN_WAIT:g} s after the kill: {_count_roles(left, proc.pid)}; killed"
        )
    else:
        cell.outcome = "no orphans left"
        cell.notes.append(f"all descendants gone {gone_at or 0:.1f} s after the kill")


# ---- output ---------------------------------------------------------------------------------


def _lightwork_issues(cells: list[Cell]) -> list[str]:
    """Where lightwork did not do the best thing possible."""
    issues = []
    once_more = {i: 2 if i == 3 else 1 for i in range(N_TASKS)}  # only task 3 ran again
    for cell in cells:
        if cell.library != "lightwork":
            continue
        why = f"{cell.fault}: {cell.outcome} ({'; '.join(cell.notes)})"
        if cell.fault in SIMPLE_FAULTS:
            if cell.outcome != f"retried, all {N_TASKS} results":
                issues.append(why)
            elif cell.runs != once_more:
                issues.append(f"{cell.fault}: tasks ran more often than needed ({cell.runs})")
        elif cell.fault == "sigint":
            if not (cell.outcome.startswith("stopped in") and "no workers left" in cell.outcome):
                issues.append(why)
        elif cell.outcome != "no orphans left":
            issues.append(why)
    return issues


def _plain(rows: list[list[str]]) -> str:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _markdown(rows: list[list[str]]) -> str:
    def line(row: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in row) + " |"

    return "\n".join([line(rows[0]), line(["---"] * len(rows[0]))] + [line(r) for r in rows[1:]])


def report(cells: list[Cell], markdown: bool) -> None:
    libraries = [lib for lib in LIBRARIES if any(c.library == lib for c in cells)]
    faults = [f for f in FAULTS if any(c.fault == f for c in cells)]
    by_key = {(c.library, c.fault): c for c in cells}
    matrix = [["library", *(FAULTS[f] for f in faults)]]
    for lib in libraries:
        matrix.append([LIBRARIES[lib]] + [by_key[lib, f].short for f in faults])
    details = [["fault", "library", "outcome", "caller saw", "wall", "details"]]
    for f in faults:
        for lib in libraries:
            c = by_key[lib, f]
            details.append(
                [
                    FAULTS[f],
                    LIBRARIES[lib],
                    c.outcome,
                    c.caller_saw,
                    f"{c.wall:.1f} s",
                    "; ".join(c.notes),
                ]
            )
    print(_plain(matrix))
    print()
    print(_plain(details))
    print()
    print(LEGEND)
    if markdown:
        print()
        print(_markdown(matrix))
        print()
        print(_markdown(details))
        print()
        print(LEGEND)
    issues = _lightwork_issues(cells)
    print()
    print("lightwork: " + ("did the best thing everywhere" if not issues else "ISSUES"))
    for issue in issues:
        print("  - " + issue)


def _names(value: str, allowed: dict[str, str], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in allowed:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(allowed)}")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(LIBRARIES), help="libraries, comma-separated")
    parser.add_argument("--fault", default=",".join(FAULTS), help="faults, comma-separated")
    parser.add_argument("--timeout", type=float, default=20.0, help="watchdog seconds (hang)")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--driver", nargs=3, metavar=("LIB", "FAULT", "DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.driver:
        drive(args.driver[0], args.driver[1], Path(args.driver[2]))
        return
    libraries = _names(args.only, LIBRARIES, "library")
    faults = _names(args.fault, FAULTS, "fault")
    run = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    cells: list[Cell] = []
    started = time.monotonic()
    try:
        for fault in faults:
            for lib in libraries:
                tag = f"{run}-{lib}-{fault}"
                cell = run_cell(lib, fault, args.timeout, root, tag)
                cells.append(cell)
                print(f"{FAULTS[fault]:>17} | {LIBRARIES[lib]:<20} | {cell.short}", flush=True)
    finally:
        # A last sweep: anything any cell started that is somehow still alive.
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get(TAG_VAR, "").startswith(run + "-"):
                    process.kill()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{len(cells)} cells in {time.monotonic() - started:.0f} s; "
        f"Python {sys.version.split()[0]}, {_versions()}\n"
    )
    report(cells, args.markdown)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("joblib", "mpire", "pebble", "lightwork"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


if __name__ == "__main__":
    main()
