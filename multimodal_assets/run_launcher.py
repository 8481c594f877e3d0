"""The instance's run launcher: Dagster's default one, plus a health check of each run's process,
so that run monitoring marks a run whose process was killed as failed.

Dagster's DefaultRunLauncher cannot tell whether a run's worker is alive, so the monitoring
daemon leaves a run whose process died (kill -9, a machine that lost power, a main job stopped
by the OS) STARTED forever. A run's RUN_START event records its process id; on one machine
that process either still exists (started before the event) or the run is dead. On a cluster,
use that cluster's launcher (Kubernetes, ECS, Docker), which checks its own workers.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


class LocalProcessRunLauncher(dg.DefaultRunLauncher):
    """DefaultRunLauncher whose run workers are checked by process id (this machine's runs)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        import psutil

        starts = self._instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
        if not starts or starts[-1].dagster_event.pid is None:
            # STARTED is set by RUN_START: without one there is nothing to check, not a death.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no process recorded yet")
        start = starts[-1]
        pid = start.dagster_event.pid
        try:
            process = psutil.Process(pid)
            # A process created after the run started is another one that reuses the id.
            alive = process.status() != psutil.STATUS_ZOMBIE and (
                process.create_time() <= start.timestamp + 1
            )
        except psutil.NoSuchProcess:
            alive = False
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"the run's process (pid {pid}) is no longer running"
        )
