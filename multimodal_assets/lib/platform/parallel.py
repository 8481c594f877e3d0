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


def _each(function, items: list, shared: tuple) -> list:
    out = []
    for item in items:
        try:
            out.append(function(item, *shared))
        except Exception:  # noqa: BLE001 - counted by the caller; its text could quote the data
            out.append(None)
    return out


def map_items_in_processes(
    function, items: list, shared: tuple = (), workers: int = 1, batch_size: int = 256
) -> list:
    """`function(item, *shared)` for each item, in batches spread over `workers` processes,
    results in input order; None for an item whose call raised. One bad item never stops the
    others, and its exception is dropped, not logged: the text could quote the item's data."""
    batches = [
        (function, items[i : i + batch_size], shared) for i in range(0, len(items), batch_size)
    ]
    return [result for batch in map_in_processes(_each, batches, workers) for result in batch]


def map_query_in_chunks(
    conn, query: str, function, shared: tuple, workers: int, chunk_rows: int, batch_size: int = 256
):
    """For each chunk of `chunk_rows` rows of `query` (streamed: the rows never sit in memory
    at once), yield (rows as dicts, `map_items_in_processes` of `function` over them)."""
    for batch in conn.stream(query, chunk_rows):
        items = batch.to_pylist()
        yield items, map_items_in_processes(function, items, shared, workers, batch_size)
