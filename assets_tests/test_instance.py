"""The project's Dagster instance: prepared once, then four runs started at once all succeed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from multimodal_assets.instance_setup import prepare

pytestmark = pytest.mark.slow


def test_four_runs_started_at_once_on_a_fresh_instance_succeed(tmp_path):
    home = tmp_path / "dagster_home"
    prepare(home)
    assert "run_monitoring" in (home / "dagster.yaml").read_text()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MM_DATA_DIR": str(tmp_path / "data")}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "multimodal_assets.definitions",
        "--select",
        "notes/context_evaluation",
    ]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    failures = [r.stderr.read().decode()[-800:] for r in runs if r.wait(300) != 0]
    assert failures == []


SLOW_RUN = """
import time

import dagster as dg


@dg.asset
def waits_to_be_killed():
    time.sleep(600)


defs = dg.Definitions(assets=[waits_to_be_killed])
"""


def test_a_killed_run_is_marked_failed_by_run_monitoring(tmp_path):
    import time

    import dagster as dg

    home = tmp_path / "dagster_home"
    prepare(home)
    # The project's configuration, polled every second instead of every 30 for the test.
    config = home / "dagster.yaml"
    config.write_text(
        config.read_text().replace("poll_interval_seconds: 30", "poll_interval_seconds: 1")
    )
    (tmp_path / "slow_defs.py").write_text(SLOW_RUN)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-f",
            "slow_defs.py",
            "--select",
            "waits_to_be_killed",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon = None
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def the_run(status: dg.DagsterRunStatus, seconds: float):
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    runs = instance.get_runs()
                    if runs and runs[0].status == status:
                        return runs[0]
                    time.sleep(0.5)
                return None

            assert the_run(dg.DagsterRunStatus.STARTED, 120) is not None
            worker.kill()  # kill -9: the run's process ends without a word to Dagster
            worker.wait()
            assert instance.get_runs()[0].status == dg.DagsterRunStatus.STARTED
            daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-f", "slow_defs.py"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            failed = the_run(dg.DagsterRunStatus.FAILURE, 120)
            assert failed is not None, "run monitoring did not mark the killed run"
    finally:
        worker.kill()
        if daemon is not None:
            daemon.terminate()
            daemon.wait(60)
