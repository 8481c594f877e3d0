"""The main job on two Celery workers (MM_EXECUTOR=celery, Redis broker) builds the tables the
in-process run builds, with the steps spread over both workers."""

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from multimodal_assets.lib.platform import warehouse
from multimodal_assets.lib.platform.celery_workers import celery_workers

from .conftest import KEY, table_rows

# Rows that record who did what when (the audit chain), not what the data is.
RUN_TABLES = {"audit.access_log"}


def _steps_per_worker(dagster_home: Path) -> Counter:
    """Steps each Celery worker executed, from the runs' engine events."""
    per_worker = Counter()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                data = record.dagster_event.event_specific_data
                worker = (data.metadata if data else {}).get("Celery worker")
                if worker is not None:
                    per_worker[worker.value] += 1
    return per_worker


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="no redis-server for the Celery broker (scripts/test.sh installs Debian's "
    "redis-server when it can run apt-get)",
)
def test_two_celery_workers_build_the_tables_the_in_process_run_builds(pipeline, tmp_path):
    data = tmp_path / "data"
    for folder in ("landing", "truth"):
        shutil.copytree(pipeline.data_dir / folder, data / folder)
    settings = {
        **os.environ,
        "MM_DATA_DIR": str(data),
        "DAGSTER_HOME": str(data / "dagster_home"),
        "MM_PSEUDONYM_KEY": KEY.decode(),  # the key the in-process pipeline used
    }
    with celery_workers(settings, 2) as env:
        run = subprocess.run(
            [Path(sys.executable).parent / "mma", "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert "run succeeded" in run.stdout, run.stdout[-2000:]
    # The real DICOM fixtures belong to no generated patient: the one failure nothing planted
    # explains, so the main job exits 1.
    unexpected = re.findall(r"UNEXPECTED failed check: (\S+)", run.stdout)
    assert unexpected == ["silver/imaging_instances:instances_mapped_to_patients"]
    assert run.returncode == 1
    per_worker = _steps_per_worker(data / "dagster_home")
    assert len(per_worker) == 2 and min(per_worker.values()) > 0, per_worker

    with warehouse.connect(pipeline.lakehouse) as conn:
        expected = sorted(set(conn.versions) - RUN_TABLES)
    with warehouse.connect(data / "lakehouse") as conn:
        built = sorted(set(conn.versions) - RUN_TABLES)
    assert built == expected
    differing = [
        table
        for table in expected
        if table_rows(data / "lakehouse", table) != table_rows(pipeline.lakehouse, table)
    ]
    assert differing == []
