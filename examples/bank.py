"""Deposits and withdrawals on one shared balance, under its lock: it stays at 100.

Replaces ``bank.py`` from the multithreading and multiprocessing tutorial, which starts a
``withdraw`` and a ``deposit`` process, 10,000 transactions each, on a ``multiprocessing.Value``
guarded by a separate ``multiprocessing.Lock``, and repeats the whole thing 10 times. What is
better here:

* the balance carries its own lock (``balance.get_lock()``), so no second object has to travel
  with it, and both are ordinary task arguments of ``Executor.submit``;
* one warm pool serves all 10 rounds: two worker processes start once, not 20 times;
* the lock is released by the kernel if a worker dies holding it, where the tutorial's
  semaphore would stay taken and hang the other process forever;
* ``--unlocked`` shows why the lock is there: the same transactions without it, and the
  balance drifts away from 100 (read-modify-write from two processes loses updates).

::

    python bank.py                          # Final balance = 100, ten times
    python bank.py --transactions 1000 --unlocked
"""

from __future__ import annotations

import argparse

import lightwork


def withdraw(balance: lightwork.SharedValue[int], transactions: int, locked: bool) -> None:
    for _ in range(transactions):
        if locked:
            with balance.get_lock():
                balance.value = balance.value - 1
        else:
            balance.value = balance.value - 1  # each access locks, the update as a whole not


def deposit(balance: lightwork.SharedValue[int], transactions: int, locked: bool) -> None:
    for _ in range(transactions):
        if locked:
            with balance.get_lock():
                balance.value = balance.value + 1
        else:
            balance.value = balance.value + 1


def perform_transactions(executor: lightwork.Executor, transactions: int, locked: bool) -> int:
    with lightwork.SharedValue("i", 100) as balance:  # initial balance, in shared memory
        futures = [
            executor.submit(withdraw, balance, transactions, locked),
            executor.submit(deposit, balance, transactions, locked),
        ]
        for future in futures:
            future.result()  # re-raises a task's exception here
        return balance.value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000, help="per process")
    parser.add_argument("--rounds", type=int, default=10, help="repeat the whole thing")
    parser.add_argument("--unlocked", action="store_true", help="leave the lock out")
    args = parser.parse_args(argv)

    balances = []
    with lightwork.Executor(2) as executor:
        executor.start()  # both workers up, so the two tasks really run at the same time
        for _ in range(args.rounds):
            balances.append(perform_transactions(executor, args.transactions, not args.unlocked))
            print(f"Final balance = {balances[-1]}")
    if args.unlocked:
        drifted = sum(balance != 100 for balance in balances)
        print(f"without the lock, {drifted} of {args.rounds} rounds lost updates")
        return 0
    return 0 if all(balance == 100 for balance in balances) else 1


if __name__ == "__main__":
    raise SystemExit(main())
