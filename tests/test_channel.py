"""The process backend's pipe: whole messages in multiprocessing.connection's framing."""

from __future__ import annotations

import multiprocessing.connection
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest

from lightwork._backends._processes._channel import Channel, pipe, wait


@pytest.mark.parametrize("duplex", [True, False])
@pytest.mark.parametrize("size", [0, 1, 16384, 16385, 65536, 65537, 3 << 20])
def test_messages_arrive_whole_in_both_kinds_of_pipe(duplex: bool, size: int) -> None:
    read_end, write_end = pipe(duplex=duplex)
    message = os.urandom(size)
    # A writer thread: a message larger than the pipe's buffer arrives in pieces.
    writer = threading.Thread(target=write_end.send_bytes, args=(message,))
    writer.start()
    assert read_end.recv_bytes() == message
    writer.join()
    read_end.close()
    write_end.close()


def test_objects_travel_pickled_and_duplex_goes_both_ways() -> None:
    left, right = pipe(duplex=True)
    left.send(("spec", 3, b"payload"))
    assert right.recv() == ("spec", 3, b"payload")
    right.send({"back": [1, 2]})
    assert left.recv() == {"back": [1, 2]}


def test_the_framing_is_multiprocessing_connections() -> None:
    ours, theirs = pipe(duplex=True)
    peer = multiprocessing.connection.Connection(os.dup(theirs.fileno()))
    theirs.close()
    ours.send_bytes(b"x" * 20000)
    assert peer.recv_bytes() == b"x" * 20000
    peer.send_bytes(b"reply")
    assert ours.recv_bytes() == b"reply"
    peer.close()


def test_a_long_length_header_is_read() -> None:
    # Messages of 2 GiB and more carry -1 and then an 8-byte length.
    read_end, write_end = os.pipe()
    os.write(write_end, struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
    assert Channel(read_end).recv_bytes() == b"hello"
    os.close(write_end)


@pytest.mark.parametrize("sent", [b"", b"abc", b"abc" * 30000])
def test_end_of_file_mid_message_or_between_them_is_eoferror(sent: bytes) -> None:
    read_end, write_end = os.pipe()

    def write_then_close() -> None:
        if sent:  # the length promises more than is written
            os.write(write_end, struct.pack("!i", len(sent) + 10) + sent)
        os.close(write_end)

    writer = threading.Thread(target=write_then_close)  # more than a pipe's buffer blocks
    writer.start()
    with pytest.raises(EOFError):
        Channel(read_end).recv_bytes()
    writer.join()


def test_sending_to_a_closed_peer_is_an_oserror() -> None:
    read_end, write_end = pipe(duplex=False)
    read_end.close()
    with pytest.raises(BrokenPipeError):
        write_end.send_bytes(b"anyone?")


def test_wait_and_poll_report_what_is_ready() -> None:
    a_read, a_write = pipe(duplex=False)
    b_read, b_write = pipe(duplex=False)
    raw_read, raw_write = os.pipe()
    assert wait([a_read, b_read, raw_read], timeout=0.01) == []
    assert not a_read.poll(0)
    b_write.send(1)
    os.write(raw_write, b"!")
    assert set(map(id, wait([a_read, b_read, raw_read], timeout=1))) == {id(b_read), id(raw_read)}
    assert b_read.poll() and b_read.recv() == 1
    a_write.close()  # end-of-file counts as ready: a worker's pipe closing is news
    assert wait([a_read], timeout=1) == [a_read]
    os.close(raw_read)
    os.close(raw_write)


def test_a_closed_channel_says_so() -> None:
    read_end, write_end = pipe(duplex=False)
    read_end.close()
    read_end.close()  # twice is harmless
    assert read_end.closed
    with pytest.raises(OSError, match="closed"):
        read_end.fileno()
    with pytest.raises(OSError, match="closed"):
        read_end.recv_bytes()
    write_end.close()


def test_a_default_socket_timeout_leaves_the_pipes_blocking() -> None:
    socket.setdefaulttimeout(5)
    try:
        ends = [*pipe(duplex=True), *pipe(duplex=False)]
    finally:
        socket.setdefaulttimeout(None)
    assert [os.get_blocking(end.fileno()) for end in ends] == [True] * 4


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_program_with_a_default_socket_timeout_gets_its_large_results(
    start_method: str,
) -> None:
    # Non-blocking pipes made every worker fail on its first empty read or its first
    # message larger than the socket's buffer.
    code = (
        "import socket; socket.setdefaulttimeout(10)\n"
        "import lightwork\n"
        f"with lightwork.Executor(2, start_method={start_method!r}) as ex:\n"
        "    sizes = [len(r) for r in ex.map(bytes, [1 << 20] * 4)]\n"
        "    print(sizes, ex.statistics().workers_started)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["[1048576,", "1048576,", "1048576,", "1048576]", "2"]
    assert done.stderr == ""
