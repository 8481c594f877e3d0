"""Spreading CPU-bound per-item work over processes (results in input order)."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def map_in_processes(function, argument_lists: list[tuple], workers: int) -> list:
    """`function(*args)` for each args tuple, in `workers` processes (forkserver: no inherited
    DuckDB handles or threads); in this process when one worker or one item."""
    if workers <= 1 or len(argument_lists) < 2:
        return [function(*args) for args in argument_lists]
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(function, *zip(*argument_lists, strict=True), chunksize=8))
