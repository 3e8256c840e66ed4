"""Network messages into a slow database: a producer-consumer with no queue, Event or thread.

Replaces ``multithreading.py``, the producer-consumer program of the Python threading
tutorial: a ``producer`` thread puts random "network messages" into a
``queue.Queue(maxsize=10)``, a ``consumer`` thread takes them out and "stores them in a
database", and the main thread sets a ``threading.Event`` after 0.1 s to stop both. What is
better here:

* the producer is a plain generator, the database writer a plain function, and
  ``lightwork.Pipeline`` joins them: a parsing stage, then a buffer of 10 messages (the
  tutorial's ``maxsize``), then the database stage. A slow database holds the producer back
  instead of filling memory;
* stopping needs no Event: the producer simply ends, after ``--messages`` messages or
  ``--seconds`` seconds, and every message it sent is stored before ``run()`` returns. The
  tutorial's consumer polls ``event.is_set() or not queue.empty()`` and can block forever in
  ``queue.get()`` if the event is set while the queue is empty;
* an exception in the parser or the database stops the producer and is raised by ``run()``;
  the tutorial's ``executor.submit`` futures are never read, so its errors vanish;
* ``run()`` returns statistics that show the database is the bottleneck, and how long the
  parser waited for room in its buffer (the tutorial logged the queue size to guess that);
* ``--writers 2`` writes over two database connections at once (``ordered=False``);
* the messages come from ``random.Random(--seed)`` and each write's latency from
  ``lightwork.random()``, so a run can be repeated::

      python producer_consumer.py                   # 30 messages
      python producer_consumer.py --seconds 0.5     # stop after half a second, like the Event
      python producer_consumer.py --writers 2 --quiet
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import sys
import threading
import time
from collections.abc import Iterator

import lightwork

# A message as it comes off the network: its number in the stream and its bytes.
Message = tuple[int, bytes]


def network(seed: int, count: int | None, seconds: float | None, pause: float) -> Iterator[Message]:
    """Pretend we're getting messages from the network: bursts, with quiet spells between."""
    rng = random.Random(seed)  # a generator in the parent: the stdlib's, seeded
    deadline = None if seconds is None else time.monotonic() + seconds
    sent = 0
    try:
        for number in itertools.count():
            if number == count or (deadline is not None and time.monotonic() >= deadline):
                return  # the end of the source is the stop signal: no Event
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0, pause))  # a quiet spell; then a burst
            value = rng.randint(1, 101)
            logging.info("Producer got message: %s", value)
            sent += 1
            yield number, str(value).encode()
    finally:
        logging.info("Producer exiting after %d messages", sent)


def parse(message: Message) -> tuple[int, int]:
    """Decode and check a message before it reaches the database."""
    number, payload = message
    value = int(payload.decode())
    if not 1 <= value <= 101:
        raise ValueError(f"message {number}: {value} is out of range")
    return number, value


class Database:
    """Pretend we're saving numbers in a database: each write takes a while."""

    def __init__(self, write_seconds: float) -> None:
        self.write_seconds = write_seconds
        self.rows: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def store(self, row: tuple[int, int]) -> None:
        # This write's own random latency: lightwork.random() is the running task's stream.
        time.sleep(self.write_seconds * lightwork.random().uniform(0.5, 1.5))
        with self._lock:
            self.rows.append(row)
        logging.info("Consumer storing message: %s", row[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help="stop after this many")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--write-seconds", type=float, default=0.01, help="one database write")
    parser.add_argument("--writers", type=int, default=1, help="database connections")
    parser.add_argument("--seed", type=int, default=2024, help="seed of messages and latencies")
    parser.add_argument("--quiet", action="store_true", help="don't log every message")
    args = parser.parse_args(argv)
    if args.messages is None and args.seconds is None:
        args.messages = 30
    logging.basicConfig(
        format="%(asctime)s: %(message)s",
        level=logging.WARNING if args.quiet else logging.INFO,
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )

    database = Database(args.write_seconds)
    messages = network(args.seed, args.messages, args.seconds, pause=4 * args.write_seconds)
    pipeline = (
        lightwork.Pipeline(messages, buffer=10)  # the tutorial's Queue(maxsize=10)
        .map(parse, max_workers=1)
        .map(
            database.store,
            max_workers=args.writers,
            ordered=args.writers == 1,  # in arrival order over one connection
            seed=args.seed,
            name="database",
        )
    )
    stats = pipeline.run()  # returns once every message taken from the network is stored

    produced = stats.stages[0].items_in
    numbers = sorted(number for number, _ in database.rows)
    print(f"produced {produced} messages, stored {len(database.rows)}")
    print(f"each stored exactly once: {numbers == list(range(produced))}")
    print(f"bottleneck: {stats.bottleneck!r}")
    print(stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
