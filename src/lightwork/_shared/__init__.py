"""Shared state across processes: ``SharedValue``, ``SharedArray`` and ``share()``.

They replace ``multiprocessing.Value`` + ``Lock`` and ``Array``, but are passed to tasks as
ordinary arguments, on every backend and start method::

    parent: owns the memory                              worker: forkserver, spawn or fork
    -----------------------                              ---------------------------------
    SharedValue("i", 0)
      creates /dev/shm/lightwork-<pid>-value-<hex>  <--- maps the same file (os.open + mmap),
      registers it with the resource tracker             once per process, cached by name
      pickles as ("lightwork-...", "i") --task arguments--> _attach_value("lightwork-...", "i")
      close() / GC / exit: unlinks the file              a crash: the kernel drops its mapping
                                                         and releases the lock it held

Every shared object is a *segment* (lightwork._core._segment, the one kind that call arrays and
the task slot use too): a file in ``/dev/shm`` (tmpfs: memory, never disk) that each
process maps with ``mmap``. The object in the parent owns it; everything else holds a handle that
pickles as the segment's name, so it travels with pickle, cloudpickle, ``functools.partial`` or
an ``initargs`` tuple, to a worker started before or after it was created. On the serial and
threads backends nothing is pickled: tasks get the parent's object itself.

Why not ``multiprocessing.Value``: its pickling is refused outside process start-up
("Synchronized objects should only be shared between processes through inheritance"), so it
cannot be a task argument for a pool; and its lock is a POSIX semaphore, which stays taken
forever when a process holding it is killed: one SIGKILLed worker deadlocks all the others.

The lock is ``flock`` on the segment's file, plus a ``threading.Lock`` per process: the kernel
releases a file lock when its holder dies, however it dies; and since a file lock belongs to an
open file, two threads using the same one would not exclude each other without the thread lock.
``flock`` rather than ``fcntl``/``lockf`` record locks: those are dropped when the process closes
*any* descriptor of the file, and ``mmap`` keeps a duplicate descriptor of its own. A killed
holder may leave the value as its last completed write; it never leaves the lock taken.

Why workers don't attach with ``multiprocessing.shared_memory.SharedMemory(name=...)``: before
Python 3.13 that registers the segment with the resource tracker (cpython#82300), and both ways
out break something. Measured on 3.11: the tracker workers share with their parent (forkserver,
spawn, and fork once the tracker runs) keeps one *set* of names, so a worker's ``unregister``
also erases the parent's registration, and the segment leaks when the parent is killed; a fork
worker started before the parent's first segment starts a tracker of its own, which unlinks the
parent's segment when that worker exits. So workers open and map the file themselves and never
touch the tracker, while the owner registers the file as SharedMemory does (a ``/dev/shm`` file
is what ``shm_open`` creates; the tracker's ``shm_unlink`` removes it). That also gives the lock
a descriptor, and lets ``close()`` drop a mapping that NumPy views still use without an error.

Lifetime: the owner releases its segment (file unlinked) on ``close()``, at the end of its
``with`` block, when it is garbage-collected, at interpreter exit, and, through the resource
tracker, when its process is killed. Workers never own anything, so a crashed worker leaks
nothing (create shared objects in the parent: one made in a task is released when the task
drops it). A worker keeps its mappings cached; it drops those whose owner has released them the
next time it attaches a new segment, or when it exits. Memory stays valid for views still using
it after a release: the kernel frees it with the last mapping.

After ``os.fork()`` (the fork start method) the child inherits the parent's open files, and an
inherited file lock would be the parent's own: the child reopens each segment and resets its
thread locks, and it never releases segments its parent owns. Space in ``/dev/shm`` is reserved
when a segment is created, so a full ``/dev/shm`` (64 MB in a default Docker container) fails
then with ``ENOSPC`` rather than later with a SIGBUS in whichever process first touches a page.

Where ``/dev/shm`` is missing (macOS) the files go to the temporary directory, and a killed
parent leaves them there: the resource tracker only knows how to remove ``/dev/shm`` entries.
"""

# The modules, from the bottom up: _errors, _lock, _segments (a mapped file and the handle that
# owns or attaches one), then one per kind of object: _value, _array, _object (share()).
from ._array import SharedArray as SharedArray
from ._array import _attach_array as _attach_array
from ._errors import SharedClosedError as SharedClosedError
from ._lock import SharedLock as SharedLock
from ._object import Shared as Shared
from ._object import _attach_shared as _attach_shared
from ._object import share as share
from ._value import SharedValue as SharedValue
from ._value import _attach_value as _attach_value

__all__ = [
    "SharedValue",
    "SharedArray",
    "Shared",
    "share",
    "SharedLock",
    "SharedClosedError",
]

# A handle pickles as lightwork._shared._attach_*(name, ...): a reference that stays as short
# (a task argument crosses to a worker with every task) and as valid (pickles made before this
# package was split into modules name it too) whichever module defines the function.
for _attach in (_attach_array, _attach_shared, _attach_value):
    _attach.__module__ = __name__
del _attach
