"""What every benchmark script shares: running one measurement in a fresh process, so each
figure has its own peak memory (and pysam and cyvcf2, which bundle separate htslib copies,
never share a process), the best of several such runs, and reading the peak."""

import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor


def isolated(fn, *args):
    """`fn(*args)` in a fresh spawned process; its return value."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def peak_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(repeats: int, fn, *args):
    """The fastest of `repeats` isolated runs of `fn(*args)`, whose result is seconds or a tuple
    starting with seconds: on a shared machine the fastest run is the least disturbed one."""
    results = [isolated(fn, *args) for _ in range(repeats)]
    return min(results, key=lambda r: r[0] if isinstance(r, tuple) else r)
