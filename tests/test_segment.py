"""lightwork's one shared-memory segment type (lightwork._core._segment): call arrays, shared
state and the task slot all use it."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from multiprocessing import resource_tracker
from typing import Any

import pytest

from lightwork._core import _segment

pytestmark = pytest.mark.skipif(_segment.SHM_DIR is None, reason="needs /dev/shm (Linux)")


def _write_in_child(memory: Any) -> None:
    memory[:5] = b"child"


def test_a_named_segment_is_a_file_named_for_its_creator() -> None:
    segment = _segment.create("test", 100)
    try:
        assert segment.name.startswith(f"lightwork-{os.getpid()}-test-")
        assert os.path.exists(segment.path)
        assert len(segment.view) == 100
    finally:
        segment.close()
        segment.unlink()
    assert not os.path.exists(segment.path)


def test_a_write_through_the_file_is_seen_by_an_attached_mapping() -> None:
    segment = _segment.create("test", 4, reserve=False)
    try:
        segment.write(memoryview(b"abcd"))
        attached = _segment.attach(segment.name, writable=False, keep_fd=False)
        assert bytes(attached.view) == b"abcd"
        assert attached.fd == -1
        attached.close()
    finally:
        segment.close()
        segment.unlink()


def test_attaching_never_touches_the_resource_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    segment = _segment.create("test", 8)
    calls: list[str] = []
    monkeypatch.setattr(resource_tracker, "register", lambda *a: calls.append("register"))
    monkeypatch.setattr(resource_tracker, "unregister", lambda *a: calls.append("unregister"))
    try:
        attached = _segment.attach(segment.name)
        attached.close()
        assert calls == []
    finally:
        segment.close()
        segment.unlink()
    assert calls == ["unregister"]  # the creator's unlink, and only that


def test_closing_a_segment_that_numpy_still_views_leaves_the_view_valid() -> None:
    np = pytest.importorskip("numpy")
    segment = _segment.create("test", 16)
    assert segment.mmap is not None
    array = np.frombuffer(segment.mmap, np.float64)
    array[:] = 2.0
    segment.close()
    segment.unlink()
    assert segment.closed
    assert array.sum() == 4.0


def test_an_anonymous_segment_has_no_name_and_leaves_nothing_in_dev_shm() -> None:
    before = set(os.listdir("/dev/shm"))
    segment = _segment.anonymous(8)
    assert segment.name == ""
    assert set(os.listdir("/dev/shm")) <= before
    segment.unlink()  # nothing to do
    segment.close()


def test_only_an_anonymous_segment_pickles() -> None:
    segment = _segment.create("test", 8)
    try:
        with pytest.raises(TypeError):
            pickle.dumps(segment)
    finally:
        segment.close()
        segment.unlink()


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_an_anonymous_segment_reaches_a_process_being_started(start_method: str) -> None:
    segment = _segment.anonymous(8)
    try:
        child = multiprocessing.get_context(start_method).Process(
            target=_write_in_child, args=(segment,)
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert bytes(segment.view[:5]) == b"child"
    finally:
        segment.close()
