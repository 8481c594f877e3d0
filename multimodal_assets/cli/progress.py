"""Progress of the main job in the terminal: one line per asset as it is materialized (with its
row count) and per failed step, read from the instance's event log — the same events the UI
shows, whichever executor ran the steps."""

import threading
import time


class RunProgress:
    """Prints, while the block runs, each asset materialized by runs started in it."""

    def __init__(self, instance, total_assets: int, every_seconds: float = 2.0):
        self._instance = instance
        self._total = total_assets
        self._every = every_seconds
        self._stop = threading.Event()
        self._cursors: dict[str, str | None] = {}
        self._seen: set = set()
        self._started = time.time()

    def __enter__(self):
        self._thread = threading.Thread(target=self._follow, name="run-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._report()  # what the last poll missed

    def _follow(self):
        while not self._stop.wait(self._every):
            self._report()

    def _report(self):
        import dagster as dg

        runs = self._instance.get_runs(
            filters=dg.RunsFilter(created_after=_utc(self._started - 1)), ascending=True
        )
        for run in runs:
            connection = self._instance.get_records_for_run(
                run.run_id,
                cursor=self._cursors.get(run.run_id),
                of_type={
                    dg.DagsterEventType.ASSET_MATERIALIZATION,
                    dg.DagsterEventType.STEP_FAILURE,
                },
            )
            self._cursors[run.run_id] = connection.cursor
            for record in connection.records:
                self._print(record.event_log_entry.dagster_event)

    def _print(self, event):
        elapsed = f"{time.time() - self._started:6.0f} s"
        if event.is_step_failure:
            print(f"[{elapsed}] step failed: {event.step_key} (details in the UI's run page)")
            return
        materialization = event.step_materialization_data.materialization
        key = materialization.asset_key
        if key in self._seen:  # a partitioned asset reports once per delivery
            return
        self._seen.add(key)
        rows = materialization.metadata.get("dagster/row_count")
        counted = f": {rows.value:,} rows" if rows is not None else ""
        done = f"{len(self._seen):>3}/{self._total}"
        print(f"[{elapsed}] {done} assets  {key.to_user_string()}{counted}", flush=True)


def _utc(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)
