"""Spreading work over processes: every worker gets a share, results keep input order."""

import multiprocessing

from multimodal_assets.lib.platform.parallel import map_in_processes


def _meet(barrier, value: int) -> int:
    """Waits until the other item is running too: passes only if the two run at the same time."""
    barrier.wait(timeout=20)
    return value * 10


def test_two_items_run_in_two_processes_at_once():
    with multiprocessing.Manager() as manager:
        barrier = manager.Barrier(2)
        # One worker doing both items would wait alone at the barrier and raise BrokenBarrierError.
        assert map_in_processes(_meet, [(barrier, 1), (barrier, 2)], workers=2) == [10, 20]


def test_one_worker_runs_in_this_process_and_keeps_order():
    seen = []

    def record(value):  # a closure cannot be pickled: it can only run in this process
        seen.append(value)
        return -value

    assert map_in_processes(record, [(v,) for v in range(5)], workers=1) == [0, -1, -2, -3, -4]
    assert seen == [0, 1, 2, 3, 4]


def test_per_item_work_in_processes_keeps_order_and_drops_failures_silently():
    from multimodal_assets.lib.platform.parallel import map_items_in_processes

    def _inverse(x, scale):
        return scale / x

    items = [4, 0, 2, 1]
    assert map_items_in_processes(_inverse, items, (8,), workers=1, batch_size=3) == [
        2.0,
        None,
        4.0,
        8.0,
    ]
