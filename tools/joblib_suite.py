"""Run joblib's own ``test_parallel.py`` against the ``"lightwork"`` backend.

    .venv/bin/python tools/joblib_suite.py            # ~1 minute here
    .venv/bin/python tools/joblib_suite.py -k nested  # a part

joblib ships its tests in the installed package (``joblib/test/test_parallel.py``); most of
them take the backend as a parameter, from lists the module builds when it is imported. This
script copies the module into a temporary folder (nothing of joblib's enters this repository)
with three changes, each what a user of the backend would write:

- the module imports ``lightwork.joblib`` first, so that ``"lightwork"`` is in joblib's
  ``BACKENDS`` before the module builds its lists of backends from it (any process that
  imports the module's functions, a loky worker too, registers it as well);
- ``PROCESS_BACKENDS`` (hard-coded to multiprocessing and loky) lists ``"lightwork"`` too;
- the scripts that some tests run in a fresh interpreter import ``lightwork.joblib`` too.

It then runs, under pytest, the tests that get ``"lightwork"`` (or a ``LightworkBackend``
instance) as one of their parameters, and prints each failure with its first error line. A
failure listed in ``KNOWN_DIFFERENCES`` is a difference the backend makes on purpose: shown
with its reason, not counted. Any other failure makes the exit status 1.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

# A failing test id (fnmatch pattern) -> why the lightwork backend differs there, on purpose.
KNOWN_DIFFERENCES = {
    "test_auto_memmap_on_arrays_from_generator*": (
        "checks that workers get np.memmap objects: lightwork maps a large array read-only "
        "into shared memory and passes a plain (read-only) ndarray"
    ),
    "test_memmapping_leaks*": (
        "passes temp_folder=, which lightwork refuses: its arrays go through shared memory, "
        "not files in a folder"
    ),
}

CONFTEST = '''
import lightwork.joblib


def pytest_collection_modifyitems(config, items):
    """Keep the tests that run on lightwork: a parameter is "lightwork" or its backend."""
    def on_lightwork(item):
        params = getattr(getattr(item, "callspec", None), "params", {})
        return any(
            value == "lightwork" or isinstance(value, lightwork.joblib.LightworkBackend)
            for value in params.values()
        )

    kept = [item for item in items if on_lightwork(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
'''


def patched_module(source: str) -> str:
    """joblib's test module, with the three changes in this script's docstring."""
    hard_coded = 'PROCESS_BACKENDS = ["multiprocessing", "loky"]'
    if hard_coded not in source:
        raise SystemExit(f"joblib's test module changed: {hard_coded!r} not found")
    with_lightwork = 'PROCESS_BACKENDS = ["multiprocessing", "loky", "lightwork"]'
    source = source.replace(hard_coded, with_lightwork)
    source = source.replace(
        "\nfrom joblib import Parallel, delayed\n",
        "\nimport lightwork.joblib\nfrom joblib import Parallel, delayed\n",
    )
    return "import lightwork.joblib  # registers the backend\n" + source


def known_reason(test_id: str) -> str | None:
    for pattern, reason in KNOWN_DIFFERENCES.items():
        if fnmatch.fnmatch(test_id, pattern):
            return reason
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-k", dest="pattern", help="run only the tests matching (pytest's -k)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per test")
    args = parser.parse_args(argv)

    import joblib

    tests = Path(joblib.__file__).parent / "test" / "test_parallel.py"
    with tempfile.TemporaryDirectory(prefix="lightwork-joblib-suite-") as folder:
        root = Path(folder)
        (root / "test_parallel_lightwork.py").write_text(patched_module(tests.read_text()))
        (root / "conftest.py").write_text(CONFTEST)
        report = root / "report.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "test_parallel_lightwork.py",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--timeout={args.timeout}",
            f"--junitxml={report}",
            "-o",
            "addopts=",
        ]
        if args.pattern:
            command += ["-k", args.pattern]
        print(f"joblib {joblib.__version__}: {tests}", flush=True)
        subprocess.run(command, cwd=root, stdout=subprocess.DEVNULL, check=False)
        if not report.exists():
            print("pytest wrote no report: the run itself failed")
            return 1
        cases = ElementTree.parse(report).getroot().iter("testcase")
        passed = skipped = 0
        failures: list[tuple[str, str]] = []
        for case in cases:
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if case.find("skipped") is not None:
                skipped += 1
            elif problem is None:
                passed += 1
            else:
                first = (problem.get("message") or "").strip().splitlines()
                failures.append((case.get("name", "?"), first[0] if first else ""))
    unexplained = [(name, line) for name, line in failures if known_reason(name) is None]
    known = [(name, line) for name, line in failures if known_reason(name) is not None]
    print(
        f"{passed} passed, {len(unexplained)} failed, {len(known)} known differences, "
        f"{skipped} skipped"
    )
    for name, line in unexplained:
        print(f"FAILED  {name}\n        {line[:200]}")
    for name, _ in known:
        print(f"KNOWN   {name}\n        {known_reason(name)}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
