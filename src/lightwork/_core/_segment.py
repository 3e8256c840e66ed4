"""Shared memory: the one segment type of lightwork, for call arrays, shared state and the slot.

A segment is a file of memory mapped in this process. It is made one of two ways:

    create(kind, size)   named:     /dev/shm/lightwork-<pid>-<kind>-<hex>, found by name
                         users:     a call's large arrays (_processes._arrays), shared state
                                    (lightwork._shared); another process attaches by name
    anonymous(size)      unnamed:   a memfd (Linux), or a file unlinked at once elsewhere
                         user:      a worker's task slot (_processes._wire); the worker gets
                                    its descriptor (pickled as multiprocessing's DupFd)

    attach(name)         another process maps a named segment: os.open + mmap, read-only or not
    segment.write(data)  fill it through its file (pwrite): twice the speed of a copy through
                         the mapping (the kernel fills the pages as it copies, no page faults)
    segment.close()      unmap and close; views that NumPy still holds keep the memory mapped
    segment.unlink()     the creator removes the name; the memory goes with the last mapping

Resource tracker, done one way: the creator of a named segment registers it as SharedMemory
does (a ``/dev/shm`` file is what ``shm_open`` makes, so the tracker's ``shm_unlink`` removes it
if the creator is killed) and unregisters it when it unlinks it; a process that attaches never
touches the tracker. Attaching with ``SharedMemory(name=...)`` would register the segment again
before Python 3.13 (cpython#82300), and both ways out break something (measured, see
lightwork._shared's docstring): unregistering erases the parent's registration too, so the
segment leaks when the parent is killed; not unregistering lets a fork worker's own tracker
unlink the parent's segment when the worker exits. Anonymous segments have no name to leak.

Not ``multiprocessing.shared_memory``: it cannot attach without the tracker (above), nor make an
anonymous segment; not ``RawArray``: its heap imports ctypes, tempfile and shutil, a few
milliseconds that every new pool's first result would wait for. A worker imports this module
(unpickling an array or its slot), so it imports only ``os`` and ``mmap``: no typing.

Where ``/dev/shm`` is missing (macOS) named segments are files in the temporary directory, and a
killed creator leaves them there: the tracker only knows how to remove ``shm_open`` names.
POSIX only, as lightwork is: Windows can neither unlink an open file (``anonymous``) nor map
with ``PROT_READ``; it would need ``mmap``'s tagname API here, and nowhere else.
"""

from __future__ import annotations

import mmap
import os

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import Any

# tmpfs: a segment is memory, never written to disk. glibc's shm_open() creates its objects here
# too, which is why the resource tracker's shm_unlink("/name") can remove our files.
_DEV_SHM = "/dev/shm"
SHM_DIR = _DEV_SHM if os.path.isdir(_DEV_SHM) and os.access(_DEV_SHM, os.W_OK) else None
PREFIX = "lightwork-"  # every named segment: lightwork-<creator pid>-<kind>-<random>

# pwrite() calls of this size: bounded so a call can't pin a huge slice, large enough that the
# system calls cost nothing against the copy.
_WRITE_BYTES = 64 << 20


class Segment:
    """A block of shared memory mapped in this process (see the module docstring).

    ``name`` is empty for an anonymous segment; ``fd`` is -1 once closed, or when the segment
    was attached without keeping its descriptor; ``size`` is what was asked for (the file has
    at least one byte: mmap refuses an empty one).
    """

    def __init__(self, name: str, path: str, fd: int, size: int, mapping: mmap.mmap) -> None:
        self.name = name
        self.path = path
        self.fd = fd
        self.size = size
        self.mmap: mmap.mmap | None = mapping

    @property
    def closed(self) -> bool:
        return self.mmap is None

    @property
    def view(self) -> memoryview:
        """The mapping's bytes; release the view before closing the segment."""
        if self.mmap is None:
            raise ValueError("the segment is closed")
        return memoryview(self.mmap)

    def write(self, data: memoryview) -> None:
        """Copy ``data`` (bytes) to the start of the segment through its file: see above."""
        offset = 0
        while offset < len(data):
            offset += os.pwrite(self.fd, data[offset : offset + _WRITE_BYTES], offset)

    def released(self) -> bool:
        """Whether the creator has unlinked the file: this mapping is the last use of it."""
        if self.fd < 0:
            return True
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return True

    def close(self) -> None:
        """Unmap and close; memory that NumPy views still use stays mapped until they go."""
        mapping, self.mmap = self.mmap, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # views hold the mapping alive; it is unmapped when the last one dies
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def unlink(self) -> None:
        """Remove a named segment's name (its creator does): see the module docstring."""
        if not self.name:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if _tracked():
            try:
                from multiprocessing import resource_tracker

                resource_tracker.unregister("/" + self.name, "shared_memory")
            except Exception:
                pass  # at worst the tracker warns at exit about a file that is already gone

    def __reduce__(self) -> tuple[Any, ...]:
        """An anonymous segment travels as its descriptor, to a process being started."""
        if self.name or self.fd < 0:
            raise TypeError("only an open anonymous segment pickles (a named one attaches)")
        from multiprocessing import reduction

        return (_attach_fd, (reduction.DupFd(self.fd), self.size))


def _shm_dir() -> str:
    if SHM_DIR is not None:
        return SHM_DIR
    import tempfile  # only where there is no /dev/shm: keep `import lightwork` cheap

    return tempfile.gettempdir()


def _tracked() -> bool:
    return SHM_DIR == _DEV_SHM


def path_of(name: str) -> str:
    """Where the named segment ``name`` lives."""
    return os.path.join(_shm_dir(), name)


def create(kind: str, size: int, *, reserve: bool = True) -> Segment:
    """A new zeroed named segment of ``size`` bytes, mapped here, registered with the tracker.

    ``reserve``: allocate its pages now, so a full tmpfs fails here with ENOSPC rather than
    with a SIGBUS at a first write through the mapping (``write`` fails cleanly by itself).
    """
    name = f"{PREFIX}{os.getpid()}-{kind}-{os.urandom(8).hex()}"
    path = path_of(name)
    length = max(size, 1)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, length)
        if reserve:
            _reserve(fd, length, path)
        mapping = mmap.mmap(fd, length)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    if _tracked():
        from multiprocessing import resource_tracker

        # As SharedMemory(create=True) does: if this process is killed, the tracker (which
        # outlives it) unlinks the file.
        resource_tracker.register("/" + name, "shared_memory")
    return Segment(name, path, fd, size, mapping)


def anonymous(size: int) -> Segment:
    """A new zeroed segment with no name, to pass to a process being started (it pickles)."""
    length = max(size, 1)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("lightwork-slot", os.MFD_CLOEXEC)
    else:
        path = path_of(f"{PREFIX}{os.getpid()}-anonymous-{os.urandom(8).hex()}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)  # nothing to leak: the memory goes with the last descriptor or mapping
    try:
        os.ftruncate(fd, length)
        mapping = mmap.mmap(fd, length)
    except BaseException:
        os.close(fd)
        raise
    return Segment("", "", fd, size, mapping)


def attach(name: str, *, writable: bool = True, keep_fd: bool = True) -> Segment:
    """Map the named segment ``name`` (FileNotFoundError if it is gone); never tracked.

    ``keep_fd=False``: close the descriptor at once, the mapping outlives it.
    """
    path = path_of(name)
    fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        prot = mmap.PROT_READ | mmap.PROT_WRITE if writable else mmap.PROT_READ
        mapping = mmap.mmap(fd, size, prot=prot)
    except BaseException:
        os.close(fd)
        raise
    if not keep_fd:
        os.close(fd)
        fd = -1
    return Segment(name, path, fd, size, mapping)


def _attach_fd(handle: Any, size: int) -> mmap.mmap:
    """In a started process: the mapping of an anonymous segment (unpickling calls this)."""
    fd = handle.detach()
    try:
        return mmap.mmap(fd, max(size, 1))
    finally:
        os.close(fd)


def _reserve(fd: int, length: int, path: str) -> None:
    """Allocate the pages now: a full tmpfs fails here, not with SIGBUS on first write."""
    if not hasattr(os, "posix_fallocate"):
        return
    import errno

    try:
        os.posix_fallocate(fd, 0, length)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            free = os.statvfs(path)
            raise OSError(
                errno.ENOSPC,
                f"no room for {length:,} bytes of shared memory in {os.path.dirname(path)} "
                f"({free.f_bavail * free.f_frsize:,} bytes free); in a Docker container, "
                "raise it with --shm-size",
            ) from error
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
