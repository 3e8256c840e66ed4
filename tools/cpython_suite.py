"""Run CPython's own ``test_concurrent_futures`` against ``lightwork.Executor``.

``make cpython-suite`` runs this script. It answers one question: where does lightwork, which
claims to be a drop-in ``concurrent.futures.Executor``, behave differently from the standard
library's executors, as CPython's own tests see it?

How it works:

1. The tests. Debian's ``libpython3.X-testsuite`` package for the running Python's major.minor
   is fetched once with ``apt-get download`` (after ``apt-get update`` if apt cannot find it)
   and unpacked with ``dpkg-deb -x`` into ``~/.cache/lightwork/cpython-testsuite/``. Nothing
   of CPython's is ever copied into this repository. Debian ships ``test/support`` in its
   stdlib package, not in the test suite, so a throw-away ``test`` package is written for the
   run whose ``__path__`` is Debian's test folder first, then the running Python's own: the
   test module comes from Debian, ``test.support`` from this Python. Its patch level may
   differ from the running Python's; that is fine within one major.minor.

2. The adapter. In each test process the test module's executors become ``lightwork.Executor``
   subclasses that only map the constructor (``ThreadPoolExecutor`` and
   ``ProcessPoolExecutor`` below): every mixin's ``executor_type``, the module's ``futures``
   name (a view of ``concurrent.futures`` with these two classes swapped in) and, for tests
   that start a fresh interpreter with ``assert_python_ok('-c', code)``, a line put before
   ``code`` that swaps them in ``concurrent.futures`` there. Exceptions such as
   ``BrokenProcessPool`` stay the standard library's.

3. Running. Each TestCase class runs under unittest in its own process group. The child
   writes a JSON line when each test starts and ends; a ``faulthandler`` watchdog, re-armed at
   every test start and end, dumps every thread's stack and exits if one test (or a fixture,
   or the interpreter's exit) takes longer than ``--timeout``. The parent then names that
   test as hung, with the main thread's stack, kills what is left of the process group, and
   resumes the class after it. A crash of the child is named the same way.

4. Classifying. A test whose own source reads a private attribute of an executor
   (``executor._processes``, ``self.executor._broken``, ...: found in its AST) tests the
   standard library's internals: it is listed with those attributes, neither run (unless
   ``--private``: then each alone, as a failure can leave a blocked pool) nor counted. Tests in
   ``KNOWN_EXCEPTIONS`` are differences lightwork makes on purpose: listed with the reason,
   not counted. Everything else is public behaviour: counted per backend, and any failure
   makes the exit status 1.

Usage: ``tools/cpython_suite.py [-k PATTERN]... [--json PATH] [--timeout SECONDS] [--private]``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import faulthandler
import fnmatch
import functools
import gc
import importlib
import importlib.metadata
import inspect
import json
import multiprocessing.context
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
import traceback
import types
import unittest
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import lightwork

# Tests that lightwork fails on purpose: an fnmatch pattern over "Class.test_method" (the short
# test id printed in the report) -> why lightwork differs there. Listed, not counted as failures.
_ALONE = (
    "lightwork does better than breaking the pool: a task whose {what} cannot be unpickled "
    "fails alone with lightwork.SerializationError, and the executor goes on (the standard "
    "library raises BrokenProcessPool and loses every other pending result)"
)
KNOWN_EXCEPTIONS: dict[str, str] = {
    "*.test_error_at_task_unpickle": _ALONE.format(what="arguments"),
    "*.test_exit_at_task_unpickle": _ALONE.format(what="arguments (by raising SystemExit)"),
    "*.test_error_during_result_unpickle_in_result_handler": _ALONE.format(what="result"),
    "*.test_exit_during_result_unpickle_in_result_handler": _ALONE.format(
        what="result (by raising SystemExit)"
    ),
    "*.test_traceback": (
        "wording of a type: the task's exception has the worker's traceback as __cause__, a "
        "public lightwork.RemoteTraceback (with .tb, as the standard library's), where the "
        "test requires the exact private type concurrent.futures.process._RemoteTraceback"
    ),
    "*.test_submit_after_interpreter_shutdown": (
        "wording of a type: the same message, 'cannot schedule new futures after interpreter "
        "shutdown', raised as lightwork.ExecutorShutdownError (a RuntimeError), so the "
        "traceback the test reads says 'lightwork._core._errors.ExecutorShutdownError: cannot "
        "schedule...' where the test looks for 'RuntimeError: cannot schedule...'"
    ),
}

TEST_MODULE = "test.test_concurrent_futures"  # a module in 3.11, a package from 3.12 on
TOOLS = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 60.0  # seconds for one test; the suite's own deadlock checks wait 30 s
BACKSTOP = 60.0  # more seconds the parent waits on a silent child before it kills it itself
FAILING = ("failed", "error", "hung", "crashed", "not run", "unexpected success")
NOT_RUN_PRIVATE = "not run (private)"  # the status of a private test without --private
BACKENDS = ("threads", "processes/fork", "processes/forkserver", "processes/spawn", "none")
DETAILS_LIMIT = 12_000  # characters of traceback kept per test in the JSON


# ---- the adapter: the standard library's executor constructors over lightwork.Executor -------


class ThreadPoolExecutor(lightwork.Executor):
    """``concurrent.futures.ThreadPoolExecutor``'s constructor, building a lightwork one."""

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        del thread_name_prefix  # lightwork names its threads itself
        super().__init__(max_workers, backend="threads", initializer=initializer, initargs=initargs)


class ProcessPoolExecutor(lightwork.Executor):
    """``concurrent.futures.ProcessPoolExecutor``'s constructor, building a lightwork one."""

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: multiprocessing.context.BaseContext | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        start_method = None if mp_context is None else mp_context.get_start_method()
        super().__init__(
            max_workers,
            backend="processes",
            start_method=start_method or None,
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=max_tasks_per_child,
        )


SWAPPED: dict[type, type] = {
    concurrent.futures.ThreadPoolExecutor: ThreadPoolExecutor,
    concurrent.futures.ProcessPoolExecutor: ProcessPoolExecutor,
}


class FuturesView(types.ModuleType):
    """``concurrent.futures`` as the test modules see it: lightwork's two executors in it."""

    ThreadPoolExecutor = ThreadPoolExecutor
    ProcessPoolExecutor = ProcessPoolExecutor

    def __getattr__(self, name: str) -> Any:
        return getattr(concurrent.futures, name)


def install(modules: Iterable[types.ModuleType]) -> None:
    """Make every test in ``modules`` build lightwork executors."""
    view = FuturesView("concurrent.futures")
    for module in modules:
        names = vars(module)
        if names.get("futures") is concurrent.futures:
            names["futures"] = view
        if callable(names.get("assert_python_ok")):
            names["assert_python_ok"] = through_lightwork(names["assert_python_ok"])
        for value in list(names.values()):
            if isinstance(value, type) and "executor_type" in vars(value):
                current = vars(value)["executor_type"]
                value.executor_type = SWAPPED.get(current, current)  # type: ignore[attr-defined]


def check_installed(tests: Iterable[unittest.TestCase]) -> None:
    """Fail loudly if a test class would still build a standard library executor."""
    left = {
        type(test).__name__
        for test in tests
        if isinstance(getattr(test, "executor_type", None), type)
        and not issubclass(test.executor_type, lightwork.Executor)  # type: ignore[attr-defined]
    }
    if left:
        raise RuntimeError(f"still on the standard library's executors: {sorted(left)}")


def install_into_concurrent_futures() -> None:
    """Swap lightwork's executors into ``concurrent.futures`` (for a test's fresh interpreter)."""
    vars(concurrent.futures).update(
        ThreadPoolExecutor=ThreadPoolExecutor, ProcessPoolExecutor=ProcessPoolExecutor
    )


def through_lightwork(run_script: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``assert_python_ok``: its ``-c`` code first swaps lightwork's executors in.

    That interpreter runs isolated (``-I``: no PYTHONPATH), so the line also puts this folder
    and the run's ``test`` package on its path, and (no PYTHONDONTWRITEBYTECODE either) keeps
    it from writing bytecode into this folder.
    """
    test_root = str(Path(sys.modules["test"].__file__ or "").resolve().parent.parent)
    preamble = (
        f"import sys; sys.dont_write_bytecode = True; sys.path[:0] = {[str(TOOLS), test_root]!r}; "
        "import cpython_suite; cpython_suite.install_into_concurrent_futures()\n"
    )

    @functools.wraps(run_script)
    def run(*args: Any, **env_vars: Any) -> Any:
        if len(args) >= 2 and args[0] == "-c":
            args = ("-c", preamble + args[1], *args[2:])
        return run_script(*args, **env_vars)

    return run


# ---- the tests ----------------------------------------------------------------------------


def load_tests() -> tuple[list[unittest.TestCase], list[types.ModuleType]]:
    """Every test of ``TEST_MODULE`` in unittest's order, and the modules that define them."""
    suite = unittest.TestLoader().loadTestsFromName(TEST_MODULE)
    modules = [
        module
        for name, module in list(sys.modules.items())
        if name == TEST_MODULE or name.startswith(TEST_MODULE + ".")
    ]
    return list(iter_tests(suite)), modules


def iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from iter_tests(item)
    else:
        yield suite


def short_id(test: unittest.TestCase) -> str:
    """``Class.test_method`` (with the submodule first where the tests are a package)."""
    return test.id().removeprefix(TEST_MODULE + ".")


def backend_of(cls: type) -> str:
    """Which executor a test class builds: from its mixin's ``executor_type`` and ``ctx``."""
    if not hasattr(cls, "executor_type"):
        return "none"
    ctx = getattr(cls, "ctx", None)
    return f"processes/{ctx}" if ctx else "threads"


def defining_class(test: unittest.TestCase) -> str:
    """The name of the class (often a mixin) whose body defines the test method."""
    for cls in type(test).__mro__:
        if test._testMethodName in vars(cls):
            return cls.__name__
    return type(test).__name__


# ---- private attributes -------------------------------------------------------------------

# Expressions that are executors in a test's source: other names bound to them are found.
EXECUTOR_EXPRESSIONS = ("self.executor",)
EXECUTOR_FACTORIES = (
    "self.executor_type",
    "futures.ThreadPoolExecutor",
    "futures.ProcessPoolExecutor",
)


def private_reads(function: Callable[..., Any]) -> list[str]:
    """The private attributes of executors that ``function``'s own source reads, sorted."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return []
    names = executor_names(tree)
    return sorted(
        {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and is_executor(node.value, names)
        }
    )


def executor_names(tree: ast.AST) -> set[str]:
    """Local names bound to an executor: by assignment, walrus or ``with ... as``, transitively."""
    bindings: list[tuple[ast.expr, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            bindings += [(target, node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            bindings.append((node.target, node.value))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            bindings.append((node.optional_vars, node.context_expr))
    names: set[str] = set()
    grew = True
    while grew:
        before = len(names)
        names |= {
            target.id
            for target, value in bindings
            if isinstance(target, ast.Name) and is_executor(value, names)
        }
        grew = len(names) > before
    return names


def is_executor(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Call):
        return dotted(node.func) in EXECUTOR_FACTORIES
    return dotted(node) in EXECUTOR_EXPRESSIONS


def dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of names and attributes, else an empty string."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def is_private(attribute: str) -> bool:
    return attribute.startswith("_") and not attribute.endswith("__")


# ---- fetching Debian's test suite ---------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightwork" / "cpython-testsuite"


def testsuite_tree() -> Path:
    """The unpacked package for this Python's major.minor, fetched and unpacked once."""
    package = f"libpython{sys.version_info.major}.{sys.version_info.minor}-testsuite"
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    done = sorted(cache.glob(f"{package}_*/.complete"))
    if done:
        return done[-1].parent
    deb = download(package, cache)
    tree = cache / deb.stem
    partial = Path(tempfile.mkdtemp(dir=cache, prefix=".partial-"))
    run_tool(["dpkg-deb", "-x", str(deb), str(partial)])
    (partial / ".complete").touch()
    shutil.rmtree(tree, ignore_errors=True)
    partial.rename(tree)
    return tree


def download(package: str, into: Path) -> Path:
    """``apt-get download`` the package into ``into``; ``apt-get update`` first if needed."""
    if shutil.which("apt-get") is None:
        sys.exit(f"cpython-suite: apt-get not found: {package} comes from Debian's archive")
    # As root, apt hands downloads to its _apt user, who may not write here: don't.
    command = ["apt-get", "-o", "APT::Sandbox::User=root", "download", package]
    for refreshed in (False, True):
        if refreshed:
            print("cpython-suite: apt-get update", flush=True)
            run_tool(["apt-get", "update"])
        found = subprocess.run(command, cwd=into, capture_output=True, text=True)
        if found.returncode == 0:
            return sorted(into.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)[-1]
    sys.exit(f"cpython-suite: cannot download {package}:\n{found.stderr}")


def run_tool(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"cpython-suite: {' '.join(command)} failed:\n{done.stderr}")


def package_version(tree: Path) -> str:
    """``3.11.2-6+deb12u8`` from ``libpython3.11-testsuite_3.11.2-6+deb12u8_all``."""
    parts = tree.name.split("_")
    return parts[1] if len(parts) > 1 else "?"


def write_test_package(tree: Path, into: Path) -> Path:
    """A ``test`` package under ``into`` that finds Debian's tests, then this Python's."""
    debian = tree / "usr" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = Path(sysconfig.get_path("stdlib")) / "test"
    if (
        not (debian / "test" / "test_concurrent_futures").exists()
        and not (debian / "test" / "test_concurrent_futures.py").exists()
    ):
        sys.exit(f"cpython-suite: no test_concurrent_futures in {debian / 'test'}")
    if not (own / "support").is_dir():
        sys.exit(f"cpython-suite: this Python has no test.support ({own}), needed to run tests")
    package = into / "test"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "# Written by lightwork's tools/cpython_suite.py: Debian's tests, then this Python's.\n"
        f"__path__ = {[str(debian / 'test'), str(own)]!r}\n"
    )
    return into


# ---- the child: runs some tests of one class, writing one JSON line per event -------------


def child_main(argv: list[str]) -> int:
    """Run the named tests (short ids) with lightwork's executors; events go to ``--events``."""
    parser = argparse.ArgumentParser(prog="cpython_suite.py (child)")
    parser.add_argument("--events", required=True)
    parser.add_argument("--hang", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    faulthandler.enable()  # a crash of this process prints its stack to the log
    # Kept open to the end: the watchdog writes here, then exits the process.
    hang_fd = os.open(args.hang, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    def watch() -> None:
        faulthandler.dump_traceback_later(args.timeout, exit=True, file=hang_fd)

    with open(args.events, "a", encoding="utf-8") as sink:
        watch()
        emit(sink, {"event": "hello", "main_thread": threading.main_thread().ident})
        tests, modules = load_tests()
        install(modules)
        check_installed(tests)
        wanted = set(args.ids)
        suite = unittest.TestSuite(test for test in tests if short_id(test) in wanted)
        suite.run(EventResult(sink, watch))
    return 0  # the watchdog stays armed: a hang at exit is reported too


def emit(sink: TextIO, event: dict[str, Any]) -> None:
    sink.write(json.dumps(event) + "\n")
    sink.flush()


class EventResult(unittest.TestResult):
    """A unittest result that writes each test's start and end as a JSON line."""

    def __init__(self, sink: TextIO, watch: Callable[[], None]) -> None:
        super().__init__()
        self._sink = sink
        self._watch = watch
        self._record: dict[str, Any] = {}
        self._started = 0.0

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._watch()
        self._record = {"event": "end", "id": short_id(test), "status": "passed"}
        self._started = time.monotonic()
        emit(self._sink, {"event": "start", "id": short_id(test)})

    def stopTest(self, test: unittest.TestCase) -> None:
        # A test that failed before its executor.shutdown() leaves the executor in a cycle
        # (its traceback -> the frame -> the future -> the exception): collect it now, so its
        # workers stop, as a dropped executor's do, before the module's cleanup waits on them.
        gc.collect()
        self._record["seconds"] = round(time.monotonic() - self._started, 3)
        self._record["altered"] = take_environment_altered()
        emit(self._sink, self._record)
        self._record = {}
        self._watch()  # now watching fixtures, the next test's setUp, or the exit
        super().stopTest(test)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._outcome(test, "error", err)

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._outcome(test, "failed", err)

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._outcome(test, "failed" if failed else "error", err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        if self._record.get("id") == short_id(test):
            self._record.update(status="skipped", reason=reason)
        else:  # a whole class or module skipped: its tests never start
            emit(
                self._sink, {"event": "end", "id": test.id(), "status": "skipped", "reason": reason}
            )

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record.update(status="expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record.update(status="unexpected success")

    def _outcome(self, test: unittest.TestCase, status: str, err: Any) -> None:
        details = "".join(traceback.format_exception(err[1]))[-DETAILS_LIMIT:]
        if self._record.get("id") != short_id(test):  # a class or module fixture failed
            record = {"event": "end", "id": test.id(), "status": status}
            emit(self._sink, record | {"reason": one_line(err[1]), "details": details})
        elif self._record["status"] in FAILING:  # e.g. tearDown failed too: keep the first
            self._record["details"] += "\n" + details
        else:
            self._record.update(status=status, reason=one_line(err[1]), details=details)


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()[:300]


def take_environment_altered() -> bool:
    """Whether test.support saw threads or child processes left behind since the last ask."""
    support: Any = importlib.import_module("test.support")
    altered = bool(support.environment_altered)
    support.environment_altered = False
    return altered


# ---- the parent: one child per class, resumed after a hang or a crash ---------------------


@dataclass
class TestInfo:
    id: str  # Class.test_method
    backend: str  # threads, processes/fork, processes/forkserver, processes/spawn, none
    defined_in: str  # the class whose body defines the test method
    private: list[str]  # private executor attributes its source reads
    known: str | None  # why lightwork fails it on purpose (KNOWN_EXCEPTIONS)

    @property
    def category(self) -> str:
        return "known" if self.known else "private" if self.private else "public"

    @property
    def method(self) -> str:
        return self.id.rsplit(".", 1)[-1]

    @property
    def cls(self) -> str:
        return self.id.rsplit(".", 1)[0]


@dataclass
class Outcome:
    id: str
    status: str
    reason: str = ""
    details: str = ""
    seconds: float = 0.0
    altered: bool = False  # test.support warned of threads or processes left behind
    cls: str = ""  # the class whose run it came from


@dataclass
class ChildRun:
    events: list[dict[str, Any]]
    hang: str  # the watchdog's dump of every thread's stack, if it fired
    returncode: int
    log: str  # the child's stdout and stderr
    killed: bool = False  # the parent's backstop killed it


@dataclass
class Report:
    python: str
    testsuite: str
    lightwork: str
    timeout: float
    seconds: float = 0.0
    tests: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, dict[str, int]] = field(default_factory=dict)


def discover(patterns: list[str]) -> list[TestInfo]:
    """Every test, classified, in unittest's order; only those matching ``patterns`` if any."""
    tests, _ = load_tests()
    infos = []
    for test in tests:
        test_id = short_id(test)
        if patterns and not any(fnmatch.fnmatchcase(test_id, p) for p in patterns):
            continue
        infos.append(
            TestInfo(
                id=test_id,
                backend=backend_of(type(test)),
                defined_in=defining_class(test),
                private=private_reads(getattr(type(test), test._testMethodName)),
                known=known_reason(test_id),
            )
        )
    return infos


def known_reason(test_id: str) -> str | None:
    for pattern, reason in KNOWN_EXCEPTIONS.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


def unittest_pattern(pattern: str) -> str:
    """As ``unittest -k``: a pattern without ``*`` matches as a substring."""
    return pattern if "*" in pattern else f"*{pattern}*"


def run_class(ids: list[str], workdir: Path, env: dict[str, str], timeout: float) -> list[Outcome]:
    """Run one class's tests; after a hang or crash, name the test and resume after it."""
    outcomes: list[Outcome] = []
    pending = list(ids)
    while pending:
        run = run_child(pending, workdir, env, timeout)
        ended = {e["id"]: e for e in run.events if e["event"] == "end"}
        started = [e["id"] for e in run.events if e["event"] == "start"]
        outcomes += [outcome_of(event) for event in ended.values()]
        unfinished = [test_id for test_id in started if test_id not in ended]
        if unfinished:  # it hung or crashed in this test: go on with the next ones
            outcomes.append(stopped_outcome(unfinished[0], run, timeout))
            pending = pending[pending.index(unfinished[0]) + 1 :]
            continue
        not_run = [test_id for test_id in pending if test_id not in ended]
        skip = next(
            (e for e in ended.values() if e["status"] == "skipped" and e["id"] not in ids), None
        )
        if skip and not run.hang and run.returncode == 0:  # setUpClass or setUpModule skipped
            outcomes += [Outcome(t, "skipped", skip.get("reason", "")) for t in not_run]
        elif not_run or run.hang or run.returncode != 0:
            outcomes += stopped_outside_tests(not_run, ids[0], run, timeout)
        pending = []
    return outcomes


def run_child(ids: list[str], workdir: Path, env: dict[str, str], timeout: float) -> ChildRun:
    """Run the tests in a new process group; kill the group if it stays silent too long."""
    events, hang, log = (workdir / name for name in ("events.jsonl", "hang.txt", "log.txt"))
    for path in (events, hang, log):
        path.write_text("")
    code = "import sys, cpython_suite; sys.exit(cpython_suite.child_main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "--events", str(events), "--hang", str(hang)]
    command += ["--timeout", str(timeout), *ids]
    with log.open("wb") as output:
        child = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        try:
            killed = wait_for(child, events, timeout + BACKSTOP)
        finally:  # what it left behind (workers, servers); all of it if we are interrupted
            kill_group(child.pid)
            child.wait()
    return ChildRun(
        events=read_events(events),
        hang=hang.read_text(errors="replace"),
        returncode=child.returncode,
        log=log.read_text(errors="replace"),
        killed=killed,
    )


def read_events(path: Path) -> list[dict[str, Any]]:
    """The child's JSON lines; a last line cut short by a kill is dropped."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return events


def wait_for(child: subprocess.Popen[bytes], events: Path, silence: float) -> bool:
    """Wait for the child; kill it if ``events`` does not grow for ``silence`` seconds."""
    size, last_change = -1, time.monotonic()
    while True:
        try:
            child.wait(timeout=1.0)
            return False
        except subprocess.TimeoutExpired:
            pass
        if events.stat().st_size != size:
            size, last_change = events.stat().st_size, time.monotonic()
        elif time.monotonic() - last_change > silence:
            kill_group(child.pid)
            child.wait()
            return True


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def outcome_of(event: dict[str, Any]) -> Outcome:
    return Outcome(
        id=event["id"],
        status=event["status"],
        reason=event.get("reason", ""),
        details=event.get("details", ""),
        seconds=event.get("seconds", 0.0),
        altered=event.get("altered", False),
    )


def stopped_outcome(test_id: str, run: ChildRun, timeout: float) -> Outcome:
    """The outcome of the test during which the child hung (watchdog) or died."""
    if run.hang or run.killed:
        where = main_thread_at(run)
        reason = f"hung: no result in {timeout:g} s" + (
            f"; main thread at {where}" if where else ""
        )
        return Outcome(test_id, "hung", reason, run.hang or tail(run.log), timeout)
    reason = f"crashed: the test process exited with {exit_name(run.returncode)}"
    return Outcome(test_id, "crashed", reason, tail(run.log))


def stopped_outside_tests(
    not_run: list[str], first_id: str, run: ChildRun, timeout: float
) -> list[Outcome]:
    """A hang or crash outside any test (fixture, cleanup, exit), and the tests it kept."""
    if run.hang or run.killed:
        what = f"hung outside any test (class or module fixture, or exit) for {timeout:g} s"
        where = main_thread_at(run)
        what += f"; main thread at {where}" if where else ""
    else:
        what = f"the test process exited with {exit_name(run.returncode)} outside any test"
    details = run.hang or tail(run.log)
    after = Outcome(f"{first_id.rsplit('.', 1)[0]}.(outside tests)", "error", what, details)
    return [after, *(Outcome(t, "not run", what, details) for t in not_run)]


def exit_name(returncode: int) -> str:
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def main_thread_at(run: ChildRun) -> str:
    """Where the main thread was, from the watchdog's dump: its innermost frame, then the
    innermost frames in lightwork and in the test file (``file:line in function``)."""
    hello = next((e for e in run.events if e["event"] == "hello"), None)
    if not run.hang or hello is None:
        return ""
    for block in re.split(r"\n(?=(?:Current thread|Thread) 0x)", run.hang):
        header = re.match(r"(?:Current thread|Thread) (0x[0-9a-f]+)", block.strip())
        if header and int(header.group(1), 16) == hello["main_thread"]:
            frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', block)
            chosen = [
                next((f for f in frames if test(f[0])), None)
                for test in (bool, lambda path: "/lightwork/" in path, is_test_file)
            ]
            unique = [f for i, f in enumerate(chosen) if f and f not in chosen[:i]]
            return " <- ".join(f"{Path(path).name}:{line} in {name}" for path, line, name in unique)
    return ""


def is_test_file(path: str) -> bool:
    return "test_concurrent_futures" in path


def run_all(
    infos: list[TestInfo], env: dict[str, str], timeout: float, private: bool
) -> list[Outcome]:
    """Run every batch, one after another (the tests time things: no overlap)."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="cpython-suite-") as scratch:
        for cls, ids in batches(infos, private):
            started = time.monotonic()
            done = run_class(ids, Path(scratch), env, timeout)
            bad = sum(o.status in FAILING for o in done)
            seconds = time.monotonic() - started
            print(f"  {cls:<58} {len(ids):3} tests {bad:3} failing {seconds:6.1f} s", flush=True)
            for outcome in done:
                outcome.cls = cls
            outcomes += done
    skipped = [i for i in infos if i.category == "private" and not private]
    return outcomes + [Outcome(i.id, NOT_RUN_PRIVATE, cls=i.cls) for i in skipped]


def batches(infos: list[TestInfo], private: bool) -> list[tuple[str, list[str]]]:
    """(class, test ids) to run in one child each: a class's tests together, but each private
    test alone (if run at all): failing on internals, it can leave a blocked pool behind."""
    by_class: dict[str, list[str]] = {}
    alone: list[tuple[str, list[str]]] = []
    for info in infos:
        if info.category != "private":
            by_class.setdefault(info.cls, []).append(info.id)
        elif private:
            alone.append((info.cls, [info.id]))
    return [*by_class.items(), *alone]


# ---- the report ---------------------------------------------------------------------------


def build_report(infos: list[TestInfo], outcomes: list[Outcome], report: Report) -> None:
    """Fill ``report.tests`` (one entry per test or fixture problem) and ``report.summary``."""
    known = {info.id: info for info in infos}
    backends = {info.cls: info.backend for info in infos}
    summary = {
        b: {"passed": 0, "total": 0, "skipped": 0, "private": 0, "known": 0} for b in BACKENDS
    }
    for outcome in outcomes:
        # a problem outside any test (a fixture, the exit) is public, on its class's backend
        info = known.get(outcome.id) or TestInfo(outcome.id, backends[outcome.cls], "", [], None)
        entry = asdict(info) | asdict(outcome) | {"category": info.category}
        report.tests.append(entry)
        counts = summary[info.backend]
        if info.category != "public":
            counts[info.category] += 1
        elif outcome.status in ("skipped", "expected failure"):
            counts["skipped"] += 1
        else:
            counts["total"] += 1
            counts["passed"] += outcome.status == "passed"
    report.summary = {b: c for b, c in summary.items() if any(c.values())}


def print_report(report: Report) -> int:
    """Print the summary, failures, private and known tests; return the number of failures."""
    tests = report.tests
    public_failures = [t for t in tests if t["category"] == "public" and t["status"] in FAILING]
    print(f"\nCPython's test_concurrent_futures ({report.testsuite}) against lightwork")
    print(f"{report.lightwork} on Python {report.python}: {report.seconds:.0f} s\n")
    print(f"  {'backend':<22}{'public passed/total':>20}{'skipped':>9}{'private':>9}{'known':>7}")
    for backend, c in report.summary.items():
        ratio = f"{c['passed']}/{c['total']}"
        backend = "(no executor)" if backend == "none" else backend
        print(f"  {backend:<22}{ratio:>20}{c['skipped']:>9}{c['private']:>9}{c['known']:>7}")
    print_failures(public_failures)
    print_private(tests)
    print_known(tests)
    print_altered(tests)
    passed = sum(c["passed"] for c in report.summary.values())
    skipped = sum(c["skipped"] for c in report.summary.values())
    print(f"\n{passed} passed, {len(public_failures)} failed, {skipped} skipped")
    return len(public_failures)


def print_failures(failures: list[dict[str, Any]]) -> None:
    print(f"\nFailing public-behaviour tests ({len(failures)}):")
    for t in failures:
        reason = t["reason"] if len(t["reason"]) <= 200 else t["reason"][:199] + "…"
        print(f"  [{t['backend']}] {t['id']} ({t['status']})\n      {reason}")


def print_private(tests: list[dict[str, Any]]) -> None:
    """One line per test method: the attributes it reads and its result on each backend."""
    private = [t for t in tests if t["category"] == "private"]
    by_method: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in private:
        by_method.setdefault((t["defined_in"], t["id"].rsplit(".", 1)[-1]), []).append(t)
    ran = "" if all(t["status"] == NOT_RUN_PRIVATE for t in private) else ", run alone"
    print(f"\nPrivate-internals tests ({len(private)}, not counted{ran}; per test method):")
    for (cls, method), runs in by_method.items():
        attrs = ", ".join(runs[0]["private"])
        results = ", ".join(f"{short_backend(t['backend'])} {t['status']}" for t in runs)
        if all(t["status"] == NOT_RUN_PRIVATE for t in runs):
            results = ", ".join(short_backend(t["backend"]) for t in runs)
        print(f"  {cls}.{method}: reads {attrs}  [{results}]")


def print_known(tests: list[dict[str, Any]]) -> None:
    known = [t for t in tests if t["category"] == "known"]
    print(f"\nKnown exceptions ({len(known)}, not counted):")
    for t in known:
        note = "  (passes now: remove it from KNOWN_EXCEPTIONS?)" if t["status"] == "passed" else ""
        print(f"  [{t['backend']}] {t['id']}: {t['known']}  [{t['status']}]{note}")


def print_altered(tests: list[dict[str, Any]]) -> None:
    altered = [t["id"] for t in tests if t.get("altered")]
    if altered:
        print(f"\nLeft threads or child processes behind (test.support warned; {len(altered)}):")
        print(textwrap.fill(", ".join(altered), 100, initial_indent="  ", subsequent_indent="  "))


def short_backend(backend: str) -> str:
    return backend.removeprefix("processes/")


# ---- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only tests whose Class.test_method matches (as unittest -k); repeatable",
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="also run the private-internals tests (each alone; not counted either way)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds before a test counts as hung (default {DEFAULT_TIMEOUT:g})",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    tree = testsuite_tree()
    report = Report(
        python=sys.version.split()[0],
        testsuite=f"Debian {tree.name.split('_')[0]} {package_version(tree)}",
        lightwork=f"lightwork {importlib.metadata.version('lightwork')}",
        timeout=args.timeout,
    )
    with tempfile.TemporaryDirectory(prefix="cpython-suite-test-") as scratch:
        root = write_test_package(tree, Path(scratch))
        if "test" in sys.modules:
            sys.exit("cpython-suite: a 'test' package is already imported")
        sys.path.insert(0, str(root))
        infos = discover([unittest_pattern(p) for p in args.patterns])
        if not infos:
            sys.exit(f"cpython-suite: no test matches {args.patterns}")
        print(f"{len(infos)} tests from {tree} ({report.testsuite}); timeout {args.timeout:g} s")
        paths = [str(root), str(TOOLS), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(paths)}
        outcomes = run_all(infos, env, args.timeout, args.private)
    report.seconds = time.monotonic() - started
    build_report(infos, outcomes, report)
    failures = print_report(report)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
