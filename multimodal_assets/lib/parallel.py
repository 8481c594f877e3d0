"""Spreading CPU-bound per-item work over processes (results in input order)."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def map_in_processes(function, argument_lists: list[tuple], workers: int) -> list:
    """`function(*args)` for each args tuple, in `workers` processes (forkserver: no inherited
    DuckDB handles or threads); in this process when one worker or one item."""
    if workers <= 1 or len(argument_lists) < 2:
        return [function(*args) for args in argument_lists]
    context = multiprocessing.get_context("forkserver")
    # About four chunks per worker: few enough to keep pickling cheap, and never so large that a
    # short list lands whole on one worker (a fixed chunk of 8 sent 2 items to the same process).
    chunksize = max(1, len(argument_lists) // (workers * 4))
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(function, *zip(*argument_lists, strict=True), chunksize=chunksize))
