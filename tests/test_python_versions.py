"""What differs between the Pythons lightwork is tested on (3.11 and 3.14, see the README)."""

from __future__ import annotations

import sys
import warnings

import pytest

import lightwork

from tasks import square

FORK_WARNING = "is multi-threaded, use of fork() may lead to deadlocks"


def fork_warnings(**options: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # past the suite's filter for this very warning
        with lightwork.Executor(2, **options) as ex:  # type: ignore[arg-type]
            assert list(ex.map(square, range(8))) == [x * x for x in range(8)]
    return [str(w.message) for w in caught if FORK_WARNING in str(w.message)]


def test_fork_pools_get_pythons_warning_from_3_12_on() -> None:
    # The parent always has the supervisor thread when it forks a worker: the warning is true.
    found = fork_warnings(start_method="fork")
    assert bool(found) == (sys.version_info >= (3, 12))


@pytest.mark.parametrize(
    "options",
    [{"start_method": "forkserver"}, {"start_method": "spawn"}, {"backend": "threads"}],
    ids=["forkserver", "spawn", "threads"],
)
def test_other_pools_fork_nothing_from_a_threaded_parent(options: dict[str, str]) -> None:
    assert fork_warnings(**options) == []
