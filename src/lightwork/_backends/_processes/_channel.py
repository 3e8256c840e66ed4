"""A worker's pipe: whole messages over a file descriptor, and ``wait`` on many of them.

The framing is ``multiprocessing.connection``'s (a 4-byte big-endian length, or -1 then an
8-byte length for 2 GiB and more), but that module is not imported: it pulls in tempfile,
shutil, bz2, lzma and more, about 4 ms that a program's first pool would wait for before its
first result (and every spawned worker again), for the few lines below. Windows, whose pipes are
not file descriptors, uses ``multiprocessing.connection`` itself.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import socket
import struct
import sys

from .._pickling import dumps

TYPE_CHECKING = False  # a worker imports this module: not typing (see lightwork._core._run)
if TYPE_CHECKING:
    from typing import Any

_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")
_ONE_WRITE = 16384  # up to this, length and message go in one write, as multiprocessing does
_READ_AT_ONCE = 65536  # up to this, one read of the whole length usually gets it all (a pipe)


class Channel:
    """One end of a pipe or socket pair carrying whole messages (bytes, or pickled objects).

    A drop-in for the parts of ``multiprocessing.connection.Connection`` that the supervisor
    and its workers use. Blocking; end-of-file on receive raises ``EOFError``, a send to a
    closed peer ``BrokenPipeError`` (an ``OSError``).
    """

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        if self._fd < 0:
            raise OSError("the channel is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, TypeError):  # TypeError: at interpreter exit, os may be gone
            pass

    def __reduce__(self) -> tuple[Any, ...]:
        """Sent to a spawned or fork-server child as Process arguments: the descriptor goes
        with it (duplicated for the child by multiprocessing, as it does for a Connection)."""
        from multiprocessing import reduction

        return (_rebuild, (reduction.DupFd(self.fileno()),))

    def send_bytes(self, data: bytes) -> None:
        size = len(data)
        if size > 0x7FFFFFFF:
            header = _LENGTH.pack(-1) + _LONG_LENGTH.pack(size)
        else:
            header = _LENGTH.pack(size)
        if size > _ONE_WRITE:  # two writes rather than a copy of a large message
            self._write(header)
            self._write(data)
        else:
            self._write(header + data)

    def recv_bytes(self) -> bytes | bytearray:
        (size,) = _LENGTH.unpack(self._read(4))
        if size == -1:
            (size,) = _LONG_LENGTH.unpack(self._read(8))
        return self._read(size)

    def send(self, obj: Any) -> None:
        self.send_bytes(dumps(obj))

    def recv(self) -> Any:
        return pickle.loads(self.recv_bytes())

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message (or end-of-file) is waiting, within ``timeout`` seconds."""
        return bool(wait([self], timeout))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        fd = self.fileno()
        while view:
            view = view[os.write(fd, view) :]

    def _read(self, size: int) -> bytes | bytearray:
        fd = self.fileno()
        if size <= _READ_AT_ONCE:
            data = os.read(fd, size)
            if len(data) == size:
                return data
            if not data:
                raise EOFError
            got = len(data)
            buffer = bytearray(size)
            buffer[:got] = data
        else:  # read straight into one buffer: no large read buffer cut down, no joining
            got = 0
            buffer = bytearray(size)
        view = memoryview(buffer)
        while got < size:
            count = os.readv(fd, [view[got:]])
            if count == 0:
                raise EOFError
            got += count
        return buffer


def _rebuild(handle: Any) -> Channel:
    return Channel(handle.detach())


def _pipe(duplex: bool = True) -> tuple[Channel, Channel]:
    """Two connected ends; one-way (read end first) unless ``duplex``."""
    if duplex:
        left, right = socket.socketpair()
        # Blocking even when the program set socket.setdefaulttimeout(), as multiprocessing.Pipe
        left.setblocking(True)
        right.setblocking(True)
        return Channel(left.detach()), Channel(right.detach())
    read_end, write_end = os.pipe()
    return Channel(read_end), Channel(write_end)


def _wait(objects: list[Any], timeout: float | None = None) -> list[Any]:
    """Those of ``objects`` (channels or file descriptors) ready to read or at end-of-file,
    waiting up to ``timeout`` seconds (None: until one is): multiprocessing.connection.wait."""
    poller = select.poll()
    owners: dict[int, Any] = {}
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        owners[fd] = obj
        poller.register(fd, select.POLLIN)
    milliseconds = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [owners[fd] for fd, _ in poller.poll(milliseconds)]


if sys.platform == "win32":
    from multiprocessing.connection import Pipe as pipe
    from multiprocessing.connection import wait
else:
    pipe = _pipe
    wait = _wait
