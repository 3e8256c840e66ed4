"""Waiting tasks: lightwork against asyncio and thread pools, side by side in one run.

    cd /work/main && .venv/bin/python bench/bench_async.py              # ~1 minute
    cd /work/main && .venv/bin/python bench/bench_async.py --quick      # smoke run, < 20 s
    cd /work/main && .venv/bin/python bench/bench_async.py --markdown   # Markdown tables

400 tasks that each sleep 20 ms (ideal: 20 ms in all, every task waiting at once).

  a  ``async def`` tasks: ``lightwork.map(fn, range(400))`` (coroutines run on lightwork's event
     loop, at most max_workers at once, default 1000) against a bare ``asyncio.gather`` on a
     reused event loop (``loop.run_until_complete``) and ``asyncio.run(gather(...))``, which
     makes a new loop per call.  Target: lightwork within 1.2x of the bare gather.
  b  blocking ``time.sleep`` tasks: ``lightwork.map(fn, range(400), backend="threads",
     max_workers=400)`` against ``ThreadPoolExecutor(400).map``, both WARM (the pool made once,
     warmed by one run, reused for every round); also both COLD (pool made and shut down inside
     the clock), and mpire's threading mode (``WorkerPool(n_jobs=400,
     start_method="threading")``) warm (keep_alive=True) and cold, for reference.
     Target: lightwork (warm) within 1.2x of ThreadPoolExecutor (warm).

Every row runs once per round; the order rotates each round; the tables give the median and
the minimum over rounds and the ratio of medians to the reference row.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import _measure
from _measure import Table, fmt_s, fmt_x, interleaved, log, med, stopwatch, verdict

import lightwork

TASKS = 400
SLEEP = 0.02
FULL = {"rounds": 25, "mpire_rounds": 5}
QUICK = {"rounds": 4, "mpire_rounds": 1}
# mpire is measured on fewer tasks, scaled linearly, if one warm run of 400 takes longer than this.
MPIRE_SLOW_SECONDS = 8.0
TARGET = 1.2


async def async_sleep(x: int) -> int:
    await asyncio.sleep(SLEEP)
    return x


def blocking_sleep(x: int) -> int:
    time.sleep(SLEEP)
    return x


def check(out: list[int], n: int = TASKS) -> None:
    if out != list(range(n)):
        raise AssertionError("wrong results")


def _sleep_table(
    title: str, times: dict[str, list[float]], reference: float, reference_name: str
) -> Table:
    """One row per variant: its times, against the reference row's and the ideal (SLEEP)."""
    table = Table(title, ["variant", "median", "min", f"x {reference_name}", "x ideal"])
    for name, values in times.items():
        table.add(
            name,
            fmt_s(med(values)),
            fmt_s(min(values)),
            fmt_x(med(values) / reference),
            fmt_x(med(values) / SLEEP),
        )
    return table


def section_a(cfg: dict[str, int], markdown: bool) -> tuple[Table, float]:
    log("(a) async def tasks")
    loop = asyncio.new_event_loop()

    async def gather() -> list[int]:
        return list(await asyncio.gather(*(async_sleep(i) for i in range(TASKS))))

    def lw() -> None:
        check(lightwork.map(async_sleep, range(TASKS)))

    def bare() -> None:
        check(loop.run_until_complete(gather()))

    def fresh() -> None:
        check(asyncio.run(gather()))

    variants = {
        "lightwork.map(async fn, range(400))": stopwatch(lw),
        "asyncio.gather, reused loop": stopwatch(bare),
        "asyncio.run(asyncio.gather(...))": stopwatch(fresh),
    }
    for fn in variants.values():  # warm-up: lightwork's loop thread, the reused loop
        fn()
    times = interleaved(variants, cfg["rounds"], label="(a)")
    loop.close()
    reference = med(times["asyncio.gather, reused loop"])
    table = _sleep_table(
        f"(a) {TASKS} async tasks sleeping {SLEEP * 1e3:.0f} ms (ideal {SLEEP * 1e3:.0f} ms)",
        times,
        reference,
        "bare gather",
    )
    lw_times = times["lightwork.map(async fn, range(400))"]
    ratio = med(lw_times) / reference
    ratio_min = min(lw_times) / min(times["asyncio.gather, reused loop"])
    table.notes.append(
        f"lightwork / bare gather = {ratio:.2f}x (median; target <= {TARGET}x: "
        f"{verdict(ratio <= TARGET)}); min/min = {ratio_min:.2f}x"
    )
    table.notes.append(
        f"{cfg['rounds']} rounds; lightwork's event loop runs in a daemon thread and is warm "
        "(one warm-up call before the rounds)"
    )
    return table, ratio


def _mpire_rows(cfg: dict[str, int]) -> tuple[dict[str, list[float]], list[str]]:
    """mpire's threading mode, cold then warm, measured apart from the fast rows (it is slow),
    and never with a second mpire pool alive (its idle threads would slow the other's)."""
    notes: list[str] = []
    try:
        from mpire import WorkerPool
    except ImportError as error:
        return {}, [f"mpire skipped: {error}"]
    cold_name = "mpire WorkerPool(400, threading), cold"
    warm_name = "mpire WorkerPool(400, threading), warm"
    n = TASKS

    def cold() -> None:
        with WorkerPool(n_jobs=TASKS, start_method="threading") as pool:
            check(pool.map(blocking_sleep, range(n)), n)

    first = stopwatch(cold)()
    if first > MPIRE_SLOW_SECONDS:
        n = TASKS // 4
        notes.append(
            f"mpire: its first run took {first:.1f} s, so its rows ran {n} tasks and were "
            f"scaled x{TASKS / n:g} (linear scaling: assumes its per-task overhead dominates)"
        )
    scale = TASKS / n
    times = interleaved(
        {cold_name: stopwatch(cold)},
        cfg["mpire_rounds"],
        label="(b) mpire cold",
        scale={cold_name: scale},
    )
    warm_pool = WorkerPool(n_jobs=TASKS, start_method="threading", keep_alive=True)
    try:
        check(warm_pool.map(blocking_sleep, range(n)), n)  # warm-up: starts the 400 threads

        def warm() -> None:
            check(warm_pool.map(blocking_sleep, range(n)), n)

        times.update(
            interleaved(
                {warm_name: stopwatch(warm)},
                cfg["mpire_rounds"],
                label="(b) mpire warm",
                scale={warm_name: scale},
            )
        )
    finally:
        warm_pool.stop_and_join()
        warm_pool.terminate()
    notes.append(
        f"mpire: {cfg['mpire_rounds']} rounds cold, then {cfg['mpire_rounds']} warm "
        "(keep_alive=True, one warm-up run first), after the other rows"
    )
    return {warm_name: times[warm_name], cold_name: times[cold_name]}, notes


def section_b(cfg: dict[str, int], markdown: bool) -> tuple[Table, float, float]:
    log("(b) blocking sleep tasks on threads")
    tpe = ThreadPoolExecutor(TASKS)

    def lw_warm() -> None:
        check(lightwork.map(blocking_sleep, range(TASKS), backend="threads", max_workers=TASKS))

    def tpe_warm() -> None:
        check(list(tpe.map(blocking_sleep, range(TASKS))))

    def lw_cold() -> None:
        with lightwork.Executor(TASKS, backend="threads") as ex:
            check(list(ex.imap(blocking_sleep, range(TASKS))))

    def tpe_cold() -> None:
        with ThreadPoolExecutor(TASKS) as ex:
            check(list(ex.map(blocking_sleep, range(TASKS))))

    names = {
        "lw_warm": "lightwork.map(threads, max_workers=400), warm",
        "tpe_warm": "ThreadPoolExecutor(400).map, warm",
        "lw_cold": "lightwork.Executor(400, threads) .imap, cold",
        "tpe_cold": "ThreadPoolExecutor(400) .map, cold",
    }
    variants = {
        names["lw_warm"]: stopwatch(lw_warm),
        names["tpe_warm"]: stopwatch(tpe_warm),
        names["lw_cold"]: stopwatch(lw_cold),
        names["tpe_cold"]: stopwatch(tpe_cold),
    }
    lw_warm()  # warm-up: the 400 threads of each warm pool exist from here on
    tpe_warm()
    times = interleaved(variants, cfg["rounds"], label="(b)")
    tpe.shutdown()
    mpire_times, mpire_notes = _mpire_rows(cfg)
    times.update(mpire_times)
    reference = med(times[names["tpe_warm"]])
    table = _sleep_table(
        f"(b) {TASKS} blocking tasks sleeping {SLEEP * 1e3:.0f} ms on 400 threads "
        f"(ideal {SLEEP * 1e3:.0f} ms)",
        times,
        reference,
        "TPE warm",
    )
    warm_ratio = med(times[names["lw_warm"]]) / reference
    cold_ratio = med(times[names["lw_cold"]]) / med(times[names["tpe_cold"]])
    table.notes.append(
        f"warm: lightwork / ThreadPoolExecutor = {warm_ratio:.2f}x (median; target <= {TARGET}x: "
        f"{verdict(warm_ratio <= TARGET)}); min/min = "
        f"{min(times[names['lw_warm']]) / min(times[names['tpe_warm']]):.2f}x"
    )
    table.notes.append(f"cold (pool made and shut down in the clock): {cold_ratio:.2f}x")
    table.notes.append(f"{cfg['rounds']} rounds for the lightwork and ThreadPoolExecutor rows")
    table.notes += mpire_notes
    return table, warm_ratio, cold_ratio


def main() -> int:
    args = _measure.parse_args(__doc__)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    table_a, ratio_a = section_a(cfg, args.markdown)
    table_b, ratio_b, _ = section_b(cfg, args.markdown)
    targets = Table("Targets", ["target", "measured", "verdict"])
    targets.add(
        "async: lightwork.map within 1.2x of bare asyncio.gather",
        fmt_x(ratio_a),
        verdict(ratio_a <= TARGET),
    )
    targets.add(
        "threads: lightwork.map within 1.2x of ThreadPoolExecutor(400).map (warm)",
        fmt_x(ratio_b),
        verdict(ratio_b <= TARGET),
    )
    _measure.print_report(
        header,
        _measure.versions("lightwork", "mpire"),
        (table_a, table_b, targets),
        started,
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
