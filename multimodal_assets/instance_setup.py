"""The project's Dagster instance: its configuration and its storage, made before anything runs.

Four runs started at once on a fresh DAGSTER_HOME all failed: each created Dagster's SQLite
storage and they raced ('table secondary_indexes already exists'). The main job (and anything
else that starts runs) calls `prepare` first, so the storage exists, migrated, before runs start
concurrently; `dagster dev` then opens the same instance.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

# Telemetry off (no network here); run monitoring on, with a launcher that can tell a dead run
# process, so that a run whose process was killed is marked failed by the daemon `dagster dev`
# starts instead of staying STARTED forever.
INSTANCE_YAML = """\
telemetry:
  enabled: false
run_launcher:
  module: multimodal_assets.run_launcher
  class: LocalProcessRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
"""


def prepare(dagster_home: Path) -> None:
    """Write the instance configuration if there is none and create (or migrate) its storage."""
    import dagster as dg

    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    # Every storage table, once, in this one process (its progress lines are not for the user).
    with contextlib.redirect_stdout(io.StringIO()):
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.upgrade()
