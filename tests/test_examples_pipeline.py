"""The pipeline examples run, as a user would run them, and print what they promise.

Each runs as its own process (``sys.executable examples/NAME.py ARGS``), which also checks the
``__main__`` guard and the pickling of functions defined in a script.
"""

from __future__ import annotations

import ast
import re

from conftest import run_example


def run(name: str, *args: str) -> str:
    return run_example(name, *args).stdout


def listed_values(output: str) -> list[float]:
    match = re.search(r"^\[.*\]$", output, re.MULTILINE)
    assert match is not None, output
    values = ast.literal_eval(match.group(0))
    assert isinstance(values, list)
    return values


def test_producer_consumer_stores_every_message_once() -> None:
    out = run("producer_consumer.py", "--messages", "40", "--write-seconds", "0.005")
    assert "produced 40 messages, stored 40" in out
    assert "each stored exactly once: True" in out
    assert "bottleneck: 'database'" in out
    assert out.count("Producer got message:") == 40
    assert out.count("Consumer storing message:") == 40
    assert "Producer exiting after 40 messages" in out


def test_producer_consumer_stops_after_a_duration_and_drains() -> None:
    out = run("producer_consumer.py", "--seconds", "0.3", "--quiet", "--writers", "2")
    counts = re.search(r"produced (\d+) messages, stored (\d+)", out)
    assert counts is not None, out
    produced, stored = map(int, counts.groups())
    assert produced > 0
    assert stored == produced
    assert "each stored exactly once: True" in out


# ---- the multiprocessing tutorial's queues ----------------------------------------------------


def test_simple_queue_prints_four_values_repeatable_with_a_seed() -> None:
    first = listed_values(run("simple_queue.py", "--seed", "7"))
    assert len(first) == 4 and all(0 <= v < 1 for v in first)
    assert listed_values(run("simple_queue.py", "--seed", "7", "--backend", "threads")) == first
    assert listed_values(run("simple_queue.py", "--seed", "8")) != first


def test_simple_queue_without_a_seed_gives_fresh_values() -> None:
    assert listed_values(run("simple_queue.py")) != listed_values(run("simple_queue.py"))


def test_simple_queue2_hands_each_word_to_one_worker() -> None:
    out = run("simple_queue2.py", "--seconds", "0.05")
    lines = re.findall(r"^(lightwork-worker-\d+) \(pid \d+\) data received: (\w+)$", out, re.M)
    assert [word for _, word in lines] == ["wood", "sky", "cloud", "ocean"]


def test_simple_queue2_takes_any_number_of_words_and_workers() -> None:
    out = run("simple_queue2.py", "a", "b", "c", "d", "e", "--workers", "2", "--backend", "threads")
    lines = re.findall(r"^(lightwork-thread-[01]) \(pid \d+\) data received: (\w)$", out, re.M)
    assert [word for _, word in lines] == ["a", "b", "c", "d", "e"]
