"""The project's Dagster instance: prepared once, then four runs started at once all succeed."""

import os
import subprocess
import sys

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
