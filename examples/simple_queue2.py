"""Words handed out to workers, each word to exactly one of them.

Replaces ``simple_queue2.py`` from the Python multiprocessing tutorial, which puts four words
on a ``multiprocessing.Queue`` and starts four ``Process`` objects that each ``get()`` one word
and print it with their process name. What is better here:

* the words go in as a plain list: a ``lightwork.Pipeline`` stage hands each word to one of
  its workers, exactly once, however many words and workers there are (the tutorial needs one
  process per word: a fifth word would stay in the queue, a fifth process would block in
  ``get()`` forever);
* each worker returns what it received and the main process prints it, so the lines come out
  in word order instead of interleaving as the processes happen to run;
* a worker that crashes is replaced and its word handed out again, so no word is lost::

      python simple_queue2.py                    # wood, sky, cloud, ocean
      python simple_queue2.py sun moon stars --workers 2
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import threading
import time

import lightwork


def receive(word: str, seconds: float = 0.1) -> tuple[str, int, str]:
    """What the tutorial's worker did: take one word and say which worker got it."""
    time.sleep(seconds)  # hold the word a moment, so the other workers take the next ones
    name = multiprocessing.current_process().name
    if name == "MainProcess":  # the threads and serial backends run in this process
        name = threading.current_thread().name
    return name, os.getpid(), word


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("words", nargs="*", default=["wood", "sky", "cloud", "ocean"])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--backend", default="processes", help="processes, threads or serial")
    parser.add_argument("--seconds", type=float, default=0.1, help="how long a worker holds a word")
    args = parser.parse_args(argv)

    received = lightwork.Pipeline(args.words).map(
        functools.partial(receive, seconds=args.seconds),
        backend=args.backend,
        max_workers=args.workers,
        name="receive",
    )
    for name, pid, word in received:
        print(f"{name} (pid {pid}) data received: {word}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
